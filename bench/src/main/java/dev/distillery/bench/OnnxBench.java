package dev.distillery.bench;

import ai.djl.Model;
import ai.djl.ndarray.types.Shape;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.Evaluation;
import dev.distillery.common.ml.InferenceCost;
import dev.distillery.common.ml.Int8Quantization;
import dev.distillery.common.ml.JobModel;
import dev.distillery.common.ml.Models;
import dev.distillery.common.ml.OnnxExport;
import dev.distillery.common.ml.OnnxRuntime;
import dev.distillery.common.ml.Preprocessing;
import dev.distillery.schemas.DatasetSpec;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Issue 17's benchmarks 1 and 3 on full Fashion-MNIST: each built-in model in DJL (libtorch), as
 * the float ONNX export and as the int8 QDQ model in ONNX Runtime, side by side in one process with
 * the same thread count: test accuracy, file and weight bytes, median latency at batch 1 and 256.
 *
 * <p>Options: {@code --models lenet5=FILE,convnet=FILE,resnet20=train:15000:3} (a checkpoint of the
 * architecture, or {@code train:<images>:<epochs>} to train one, cached under {@code var/bench}),
 * {@code --calibration 512}, {@code --threads 2}.
 */
public final class OnnxBench {
  private OnnxBench() {}

  public static void main(String[] args) throws Exception {
    Map<String, String> o = new TreeMap<>();
    for (int i = 0; i + 1 < args.length; i += 2) {
      o.put(args[i].replaceFirst("^--", ""), args[i + 1]);
    }
    int threads = Integer.parseInt(o.getOrDefault("threads", "2"));
    DjlRuntime.start(threads);
    int calibration = Integer.parseInt(o.getOrDefault("calibration", "512"));
    DatasetSpec full = DatasetSpec.newBuilder().setLocation("/usr/share/datasets/fashion-mnist").build();
    Datasets.TrainTest sets = Datasets.load(full);
    Shape image = sets.train().imageShape();
    List<String> rows = new ArrayList<>();
    for (String entry : o.getOrDefault("models", "lenet5=train:60000:15").split(",")) {
      String arch = entry.substring(0, entry.indexOf('='));
      String source = entry.substring(entry.indexOf('=') + 1);
      Path checkpoint = source.startsWith("train:") ? trained(arch, source, full) : Path.of(source);
      try (Model model = Models.load(arch, 1.0, 10, image, checkpoint)) {
        JobModel job = JobModel.builtIn(model, arch, 1.0);
        double djl = Evaluation.accuracy(model, sets.test());
        String djlRow = String.format("| %s | DJL (libtorch) | %,d | %.4f | %.3f | %.2f |", arch,
            Files.size(checkpoint), djl, InferenceCost.latencyMillis(job, image, 1, 50),
            InferenceCost.latencyMillis(job, image, 256, 20));
        byte[] floatModel = OnnxExport.floatModel(model, image);
        long start = System.nanoTime();
        byte[] int8Model = Int8Quantization.quantize(model, sets.train(), calibration, 42);
        double quantizeSeconds = (System.nanoTime() - start) / 1e9;
        rows.add(djlRow);
        rows.add(measure(arch, "ONNX Runtime, float", floatModel, sets, image, threads));
        rows.add(measure(arch, "ONNX Runtime, int8", int8Model, sets, image, threads));
        long weights = 0;
        long int8 = 0;
        for (var w : Models.prunableWeights(model)) {
          Shape shape = w.getValue().getArray().getShape();
          weights += 4 * shape.size();
          int8 += shape.size() + 4 * shape.get(0);
        }
        StudentTrainingBench.say("%s: weights %,d -> %,d bytes (%.2fx); quantization %.1f s on %d images", arch,
            weights, int8, (double) weights / int8, quantizeSeconds, calibration);
        rows.forEach(System.out::println);
      }
    }
    System.out.println("| model | runtime | file bytes | test accuracy | batch 1 ms | batch 256 ms |");
    System.out.println("|---|---|---|---|---|---|");
    rows.forEach(System.out::println);
  }

  private static String measure(String arch, String label, byte[] onnx, Datasets.TrainTest sets, Shape image,
      int threads) throws Exception {
    try (OnnxRuntime runtime = new OnnxRuntime(onnx, image.getShape(), threads)) {
      return String.format("| %s | %s | %,d | %.4f | %.3f | %.2f |", arch, label, onnx.length,
          runtime.accuracy(sets.test(), Preprocessing.BUILT_IN), runtime.latencyMillis(1, 50),
          runtime.latencyMillis(256, 20));
    }
  }

  /** {@code train:<images>:<epochs>}: a model of {@code arch} trained on the first images, cached. */
  private static Path trained(String arch, String source, DatasetSpec full) throws Exception {
    String[] parts = source.split(":");
    int images = Integer.parseInt(parts[1]);
    int epochs = Integer.parseInt(parts[2]);
    return StudentTrainingBench.trained(arch, arch + "-" + images + "-" + epochs,
        DatasetSpec.newBuilder(full).setTrainLimit(images).build(), epochs);
  }
}
