package dev.distillery.bench;

import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.DatasetSpec;
import dev.distillery.schemas.DistillationSettings;
import dev.distillery.schemas.JobResult;
import dev.distillery.schemas.ModelFormat;
import dev.distillery.schemas.PruningMethod;
import dev.distillery.schemas.PruningReport;
import dev.distillery.schemas.PruningSettings;
import dev.distillery.schemas.SoftLabelSource;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.StudentSpec;
import dev.distillery.schemas.TeacherSpec;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Accuracy, size and latency against sparsity for one pruning method, each sparsity a PRUNING job
 * through the real pipeline on the full Fashion-MNIST. The model to prune is trained once with
 * hard labels and cached under {@code var/bench}, unless {@code --model} names a checkpoint of the
 * architecture. Options: {@code --arch lenet5}, {@code --epochs 15} (of that training), {@code --method L1_UNSTRUCTURED}, {@code --sparsities 0.5,0.8,0.9,0.95},
 * {@code --steps 4}, {@code --fine-tune 2} (epochs after each step), {@code --final 0} (epochs of
 * annealed fine-tuning after the last step's), {@code --lr 0.0005}.
 */
public final class PruningBench {
  private PruningBench() {}

  public static void main(String[] args) throws Exception {
    Map<String, String> o = new TreeMap<>();
    for (int i = 0; i + 1 < args.length; i += 2) {
      o.put(args[i].replaceFirst("^--", ""), args[i + 1]);
    }
    DjlRuntime.start(2);
    String arch = o.getOrDefault("arch", "lenet5");
    int epochs = Integer.parseInt(o.getOrDefault("epochs", "15"));
    DatasetSpec data = DatasetSpec.newBuilder().setLocation("/usr/share/datasets/fashion-mnist").build();
    // --model: a checkpoint of arch trained elsewhere (a baseline of another benchmark, say).
    Path model = o.containsKey("model") ? Path.of(o.get("model"))
        : Boolean.parseBoolean(o.getOrDefault("hold-out", "false"))
            ? StudentTrainingBench.trained(arch, arch + "-holdout-" + epochs, data, epochs, true)
            : StudentTrainingBench.trained(arch, arch + "-full-" + epochs, data, epochs);
    List<String> rows = new ArrayList<>();
    for (String sparsity : o.getOrDefault("sparsities", "0.5,0.8,0.9,0.95").split(",")) {
      PruningSettings pruning = PruningSettings.newBuilder()
          .setMethod(PruningMethod.valueOf(o.getOrDefault("method", "L1_UNSTRUCTURED")))
          .setTargetSparsity(Double.parseDouble(sparsity))
          .setSteps(Integer.parseInt(o.getOrDefault("steps", "4")))
          .setFineTuneEpochs(Integer.parseInt(o.getOrDefault("fine-tune", "2")))
          .setFinalFineTuneEpochs(Integer.parseInt(o.getOrDefault("final", "0")))
          .setLearningRate(Double.parseDouble(o.getOrDefault("lr", "0.0005")))
          .setDistillFrom(SoftLabelSource.valueOf(o.getOrDefault("distill-from", "NONE")))
          .setMaxAccuracyLoss(o.containsKey("budget") ? Double.parseDouble(o.get("budget")) : null)
          .build();
      CompressionRequest request = CompressionRequest.newBuilder()
          .setJobId("bench-prune-" + System.currentTimeMillis())
          .setTeacher(TeacherSpec.newBuilder().setFormat(ModelFormat.BUILT_IN).setArchitecture(arch).setWidth(1.0)
              .setCheckpointUri(model.toUri().toString()).build())
          .setDataset(data)
          .setStudent(StudentSpec.newBuilder().setArchitecture(arch).setWidth(1.0).build())
          // The split and seed of a student the bench trained (validation 0.1, seed 42), so that a
          // budget is judged on samples a --model student never trained on.
          .setDistillation(DistillationSettings.newBuilder().setBatchSize(128)
              .setTemperature(Double.parseDouble(o.getOrDefault("temperature", "4")))
              .setAlpha(Double.parseDouble(o.getOrDefault("alpha", "0.9")))
              .setSeed(Long.parseLong(o.getOrDefault("seed", "42"))).build())
          .setPruning(pruning)
          .setStages(List.of(Stage.PRUNING))
          .build();
      JobResult result = StudentTrainingBench.runThroughPipeline(request);
      PruningReport p = result.getPruning();
      rows.add(String.format("| %.0f%% | %s | %,d | %.4f | %.4f | %.4f | %+.2f | %,d | %,d | %.1fx | %.3f / %.3f | %.2f / %.2f | %.2fx |",
          100 * result.getSparsity(),
          result.getPruned().getHiddenUnits().isEmpty() ? "as before" : result.getPruned().getHiddenUnits().toString(),
          result.getPruned().getNonZeroParameters(), p.getAccuracyBefore(), p.getAccuracyPruned(), p.getAccuracyFineTuned(),
          100 * (p.getAccuracyFineTuned() - p.getAccuracyBefore()), result.getTeacher().getCheckpointBytes(),
          result.getSparseCheckpoint().getSizeBytes(),
          (double) result.getTeacher().getCheckpointBytes() / result.getSparseCheckpoint().getSizeBytes(),
          p.getLatencyMsBatch1Before(), p.getLatencyMsBatch1After(),
          p.getLatencyMsBatch256Before(), p.getLatencyMsBatch256After(),
          p.getLatencyMsBatch256Before() / p.getLatencyMsBatch256After()));
      StudentTrainingBench.say("settings: %s", pruning);
    }
    StudentTrainingBench.say("%s, %s", arch, o);
    System.out.println("| sparsity | hidden layers | non-zero parameters | before | pruned | fine-tuned | change (points)"
        + " | dense bytes before | sparse bytes | smaller by | latency batch 1, ms (before / after)"
        + " | latency batch 256, ms (before / after) | speed-up at 256 |");
    System.out.println("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    rows.forEach(System.out::println);
  }
}
