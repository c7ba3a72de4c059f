package dev.distillery.bench;

import ai.djl.Model;
import ai.djl.pytorch.jni.JniUtils;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.Evaluation;
import dev.distillery.common.ml.ImageDataset;
import dev.distillery.common.ml.Losses;
import dev.distillery.common.ml.Models;
import dev.distillery.common.ml.Preprocessing;
import dev.distillery.common.ml.TrainingLoop;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;

/**
 * Trains a built-in architecture with the services' own {@link TrainingLoop} (Adam 0.001, constant
 * rate), or runs it for inference with {@link Evaluation#forEachBatch} as the teacher and the
 * evaluations do, and prints samples per second and peak resident memory on one line, for
 * bench/training-speed.sh to compare with bench/torch/speed.py on the same model, data, batch and
 * threads.
 *
 * <p>Arguments are {@code key=value}: {@code arch=lenet5|convnet mode=train|infer samples=60000
 * epochs=1 warmup=20 threads=2 batch=128 seed=1 dir=/usr/share/datasets/fashion-mnist}. The kernels
 * are the services' own choice ({@link DjlRuntime}): pass {@code -Ddistillery.kernels=native} (what
 * shipped before the kernel probe), {@code onednn-forward} or {@code onednn} to the JVM to force one.
 * {@code warmup} steps run untimed first, as on the torch side.
 */
public final class TrainingSpeedBench {
  private TrainingSpeedBench() {}

  public static void main(String[] args) throws Exception {
    Map<String, String> opt = new HashMap<>();
    Set<String> known = Set.of("arch", "mode", "samples", "epochs", "warmup", "threads", "batch", "seed", "dir");
    for (String a : args) {
      int eq = a.indexOf('=');
      if (eq < 0 || !known.contains(a.substring(0, eq))) {
        // mkldnn=on|off was removed: the kernels are -Ddistillery.kernels=... now.
        throw new IllegalArgumentException("unknown argument " + a + "; known: " + known);
      }
      opt.put(a.substring(0, eq), a.substring(eq + 1));
    }
    String arch = opt.getOrDefault("arch", "lenet5");
    boolean training = !"infer".equals(opt.getOrDefault("mode", "train"));
    int samples = Integer.parseInt(opt.getOrDefault("samples", "60000"));
    int epochs = Integer.parseInt(opt.getOrDefault("epochs", "1"));
    int warmup = Integer.parseInt(opt.getOrDefault("warmup", "20"));
    int threads = Integer.parseInt(opt.getOrDefault("threads", "2"));
    int batch = Integer.parseInt(opt.getOrDefault("batch", "128"));
    long seed = Long.parseLong(opt.getOrDefault("seed", "1"));
    Path dir = Path.of(opt.getOrDefault("dir", "/usr/share/datasets/fashion-mnist"));

    DjlRuntime.start(threads);
    ImageDataset train = Datasets.read(dir, "train").limit(samples);
    TrainingLoop.BatchLoss crossEntropy = (logits, indices, manager) ->
        Losses.crossEntropy(logits, train.labels(manager, indices));
    try (Model model = Models.create(arch, 1.0, 10, train.imageShape(), seed)) {
      double[] lastLoss = {Double.NaN};
      long start;
      if (training) {
        ImageDataset warmupSet = train.limit(warmup * batch);
        new TrainingLoop(model, warmupSet, TrainingLoop.Plan.adam(1, batch, 0.001, seed), crossEntropy).run();
        start = System.nanoTime();
        new TrainingLoop(model, train, TrainingLoop.Plan.adam(epochs, batch, 0.001, seed), crossEntropy)
            .onEpoch(e -> lastLoss[0] = e.meanLoss())
            .run();
      } else {
        Evaluation.forEachBatch(model, train, Preprocessing.BUILT_IN, 0, Math.min(train.size(), warmup * batch), batch,
            (first, logits, count, classes) -> { });
        start = System.nanoTime();
        for (int e = 0; e < epochs; e++) {
          Evaluation.forEachBatch(model, train, Preprocessing.BUILT_IN, 0, train.size(), batch,
              (first, logits, count, classes) -> { });
        }
      }
      double seconds = (System.nanoTime() - start) / 1e9;
      // meanLoss is NaN for inference; peakRssMB includes the start-up kernel probe's float64 work.
      System.out.printf("djl samples/s=%.1f seconds=%.2f meanLoss=%.4f peakRssMB=%.0f threads=%d/%d arch=%s mode=%s"
              + " batch=%d kernels=%s malloc=%s%n",
          (double) train.size() * epochs / seconds, seconds, lastLoss[0], peakRssMb(), JniUtils.getNumThreads(),
          JniUtils.getNumInteropThreads(), arch, training ? "train" : "infer", batch, DjlRuntime.kernels().active().id(),
          System.getenv("MALLOC_MMAP_MAX_") != null ? "tuned" : "default");
    }
  }

  static double peakRssMb() throws IOException {
    for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
      if (line.startsWith("VmHWM:")) {
        return Long.parseLong(line.replaceAll("[^0-9]", "")) / 1024.0;
      }
    }
    return -1;
  }
}
