package dev.distillery.bench;

import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.DatasetSpec;
import dev.distillery.schemas.DistillationSettings;
import dev.distillery.schemas.InputSpec;
import dev.distillery.schemas.JobResult;
import dev.distillery.schemas.LearningRateSchedule;
import dev.distillery.schemas.ModelFormat;
import dev.distillery.schemas.ModelMetrics;
import dev.distillery.schemas.PruningMethod;
import dev.distillery.schemas.PruningReport;
import dev.distillery.schemas.PruningSettings;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.StudentSpec;
import dev.distillery.schemas.TeacherSpec;
import dev.distillery.schemas.TransferSettings;
import dev.distillery.common.ml.DjlRuntime;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The user's own model through the real pipeline on the full Fashion-MNIST: a TorchScript
 * ResNet-18 made by {@code datasets/torchscript/resnet18.py}. Modes:
 *
 * <ul>
 *   <li>{@code distil --teacher resnet18.pt --student resnet20|lenet5 --epochs 10}: distilled, beside
 *       its hard-label baseline
 *   <li>{@code prune --model resnet18.pt --sparsity 0.9 --steps 3 --fine-tune 1 --final 1
 *       --train-limit 0}: the module pruned unstructured (L1 per layer) with fine-tuning
 *   <li>{@code transfer --model resnet18_0-4.pt --epochs 10 --train-limit 1000}: to classes 5-9, against
 *       the same network from scratch
 * </ul>
 *
 * Other options: {@code --lr}, {@code --batch 128}, {@code --method L1_UNSTRUCTURED}.
 */
public final class UserModelBench {
  /** The preprocessing resnet18.py trains with. */
  static final InputSpec INPUT = InputSpec.newBuilder().setMean(0.5).setStd(0.25).build();

  private UserModelBench() {}

  public static void main(String[] args) throws Exception {
    String mode = args.length > 0 ? args[0] : "distil";
    Map<String, String> o = new TreeMap<>();
    for (int i = 1; i + 1 < args.length; i += 2) {
      o.put(args[i].replaceFirst("^--", ""), args[i + 1]);
    }
    DjlRuntime.start(2);
    int epochs = Integer.parseInt(o.getOrDefault("epochs", "10"));
    DatasetSpec data = DatasetSpec.newBuilder().setLocation("/usr/share/datasets/fashion-mnist")
        .setTrainLimit(Integer.parseInt(o.getOrDefault("train-limit", "0"))).build();
    DistillationSettings training = DistillationSettings.newBuilder().setEpochs(epochs)
        .setBatchSize(Integer.parseInt(o.getOrDefault("batch", "128")))
        .setLearningRate(Double.parseDouble(o.getOrDefault("lr", "0.002"))).setSchedule(LearningRateSchedule.COSINE)
        .setTemperature(4).setAlpha(0.9).setHardLabelBaseline(true).build();
    CompressionRequest.Builder request = CompressionRequest.newBuilder()
        .setJobId("bench-user-" + mode + "-" + System.currentTimeMillis())
        .setDataset(data).setDistillation(training);
    switch (mode) {
      case "distil" -> request.setTeacher(module(o.getOrDefault("teacher", "/tmp/resnet18.pt")))
          .setStudent(StudentSpec.newBuilder().setArchitecture(o.getOrDefault("student", "resnet20")).build())
          .setPruning(PruningSettings.newBuilder().build())
          .setStages(List.of(Stage.TEACHER_INFERENCE, Stage.DISTILLATION));
      case "prune" -> request.setTeacher(module(o.getOrDefault("model", "/tmp/resnet18.pt")))
          .setStudent(StudentSpec.newBuilder().setArchitecture("resnet18").build())
          .setPruning(PruningSettings.newBuilder()
              .setMethod(PruningMethod.valueOf(o.getOrDefault("method", "L1_UNSTRUCTURED")))
              .setTargetSparsity(Double.parseDouble(o.getOrDefault("sparsity", "0.9")))
              .setSteps(Integer.parseInt(o.getOrDefault("steps", "3")))
              .setFineTuneEpochs(Integer.parseInt(o.getOrDefault("fine-tune", "1")))
              .setFinalFineTuneEpochs(Integer.parseInt(o.getOrDefault("final", "1")))
              .setLearningRate(Double.parseDouble(o.getOrDefault("lr", "0.0005"))).build())
          .setStages(List.of(Stage.PRUNING));
      case "transfer" -> request.setTeacher(module(o.getOrDefault("model", "/tmp/resnet18_0-4.pt")))
          .setStudent(StudentSpec.newBuilder().setArchitecture("resnet18").build())
          .setDataset(DatasetSpec.newBuilder(data).setClasses(List.of(5, 6, 7, 8, 9))
              .setTrainLimit(Integer.parseInt(o.getOrDefault("train-limit", "1000"))).build())
          .setTransfer(TransferSettings.newBuilder().setHeadParameters(List.of("fc.weight", "fc.bias"))
              .setBackboneLearningRateFactor(Double.parseDouble(o.getOrDefault("backbone", "0.1"))).build())
          .setPruning(PruningSettings.newBuilder().build())
          .setStages(List.of(Stage.TRANSFER));
      default -> throw new IllegalArgumentException("mode must be distil, prune or transfer, was " + mode);
    }
    JobResult result = StudentTrainingBench.runThroughPipeline(request.build());
    StudentTrainingBench.say("%s %s", mode, o);
    System.out.println("| model | architecture | test accuracy | parameters | non-zero | bytes |");
    System.out.println("|---|---|---|---|---|---|");
    row("teacher", result.getTeacher());
    row("baseline", result.getBaseline());
    row("student", result.getStudent());
    row("pruned", result.getPruned());
    PruningReport p = result.getPruning();
    if (p != null) {
      StudentTrainingBench.say("pruning: %.4f before, %.4f pruned, %.4f fine-tuned; sparse %d bytes against dense %d;"
              + " latency batch 1 %.3f -> %.3f ms, batch 256 %.2f -> %.2f ms; %d parameters left dense",
          p.getAccuracyBefore(), p.getAccuracyPruned(), p.getAccuracyFineTuned(), result.getSparseCheckpoint().getSizeBytes(),
          result.getFinalCheckpoint().getSizeBytes(), p.getLatencyMsBatch1Before(), p.getLatencyMsBatch1After(),
          p.getLatencyMsBatch256Before(), p.getLatencyMsBatch256After(), p.getUnprunedParameters());
    }
    StudentTrainingBench.say("seconds per stage %s", result.getStageSeconds());
  }

  private static TeacherSpec module(String path) {
    return TeacherSpec.newBuilder().setFormat(ModelFormat.TORCHSCRIPT).setArchitecture("resnet18")
        .setCheckpointUri(Path.of(path).toAbsolutePath().toUri().toString()).setInput(INPUT).build();
  }

  private static void row(String name, ModelMetrics m) {
    if (m != null) {
      System.out.printf("| %s | %s | %.4f | %,d | %,d | %,d |%n", name, m.getArchitecture(), m.getTestAccuracy(),
          m.getParameters(), m.getNonZeroParameters(), m.getCheckpointBytes());
    }
  }
}
