package dev.distillery.launcher;

import static org.assertj.core.api.Assertions.assertThat;

import dev.distillery.cli.JobWatcher;
import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.kafka.KafkaTopics;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.Evaluation;
import dev.distillery.common.ml.ImageDataset;
import dev.distillery.common.ml.JobModel;
import dev.distillery.common.ml.Preprocessing;
import dev.distillery.common.testing.PyTorch;
import dev.distillery.kafka.embedded.EmbeddedKafkaBroker;
import dev.distillery.kafka.embedded.EmbeddedKafkaExtension;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.DatasetSpec;
import dev.distillery.schemas.DistillationSettings;
import dev.distillery.schemas.InputSpec;
import dev.distillery.schemas.JobResult;
import dev.distillery.schemas.LayerSparsity;
import dev.distillery.schemas.ModelFormat;
import dev.distillery.schemas.PruningMethod;
import dev.distillery.schemas.PruningSettings;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.StudentSpec;
import dev.distillery.schemas.TeacherSpec;
import dev.distillery.schemas.TransferSettings;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * The user's own PyTorch models through the whole pipeline on the in-process broker: a TorchScript
 * ResNet-18 (torchvision's, at 1/8 width; datasets/torchscript/resnet18.py) as teacher, another as
 * the student, pruned, and TorchScript out; a TRANSFER from a TorchScript ResNet-18 trained on
 * classes 0-4 to classes 5-9; and a student module the job cannot use, refused before any compute.
 * Every TorchScript output is loaded by real PyTorch and must give Distillery's logits.
 */
@ExtendWith(EmbeddedKafkaExtension.class)
class UserModelPipelineTest {
  static final Path MODELS = Path.of("../../datasets/torchscript").toAbsolutePath().normalize();
  static final InputSpec INPUT = InputSpec.newBuilder().setMean(0.5).setStd(0.25).build();

  @Test
  void torchScriptModelsGoInAndComeOut(EmbeddedKafkaBroker broker, @TempDir Path work) throws Exception {
    DjlRuntime.start(2);
    String bootstrap = broker.bootstrapServers();
    KafkaTopics.ensure(bootstrap, 2);
    ArtifactStore store = new ArtifactStore(work.resolve("artifacts"));
    DatasetSpec data = DatasetSpec.newBuilder().setLocation(PipelineScenario.SUBSET.toString())
        .setTrainLimit(1000).setTestLimit(500).build();
    String suffix = UUID.randomUUID().toString().substring(0, 8);

    CompressionRequest distil = CompressionRequest.newBuilder()
        .setJobId("ts-distil-" + suffix)
        .setTeacher(module("resnet18_w8.pt"))
        .setDataset(data)
        .setStudent(StudentSpec.newBuilder().setFormat(ModelFormat.TORCHSCRIPT).setArchitecture("resnet18-w8")
            .setCheckpointUri(MODELS.resolve("resnet18_w8_init.pt").toUri().toString()).setInput(INPUT).build())
        .setDistillation(DistillationSettings.newBuilder().setEpochs(1).setBatchSize(64).setLearningRate(0.002)
            .setHardLabelBaseline(true).build())
        .setPruning(PruningSettings.newBuilder().setMethod(PruningMethod.GLOBAL_UNSTRUCTURED).setTargetSparsity(0.6)
            .setFineTuneEpochs(1).build())
        .setStages(List.of(Stage.TEACHER_INFERENCE, Stage.DISTILLATION, Stage.PRUNING))
        .build();
    CompressionRequest transfer = CompressionRequest.newBuilder(distil)
        .setJobId("ts-transfer-" + suffix)
        .setTeacher(module("resnet18_w8_classes0-4.pt"))
        .setDataset(DatasetSpec.newBuilder(data).setClasses(List.of(5, 6, 7, 8, 9)).build())
        .setDistillation(DistillationSettings.newBuilder(distil.getDistillation()).setEpochs(2).build())
        .setTransfer(TransferSettings.newBuilder().setHeadParameters(List.of("fc.weight", "fc.bias")).build())
        .setPruning(PruningSettings.newBuilder().setMethod(PruningMethod.L1_UNSTRUCTURED).setTargetSparsity(0.5)
            .setSkipLayers(List.of("conv1.weight")).setFineTuneEpochs(1).build())
        .setStages(List.of(Stage.TRANSFER, Stage.PRUNING))
        .build();
    // A five-class module as the student of a ten-class task.
    CompressionRequest unusable = CompressionRequest.newBuilder(distil)
        .setJobId("ts-unusable-" + suffix)
        .setStudent(StudentSpec.newBuilder(distil.getStudent())
            .setCheckpointUri(MODELS.resolve("resnet18_w8_classes0-4.pt").toUri().toString()).build())
        .build();
    CompressionRequest noSuchLayer = CompressionRequest.newBuilder(distil)
        .setJobId("ts-no-layer-" + suffix)
        .setPruning(PruningSettings.newBuilder(distil.getPruning()).setMethod(PruningMethod.L1_UNSTRUCTURED)
            .setSkipLayers(List.of("layer9.conv.weight")).build())
        .build();

    try (LocalPipeline pipeline = LocalPipeline.start(LocalPipeline.keys(bootstrap, store.root(), 2,
            List.of(MODELS), List.of(PipelineScenario.SUBSET.getParent())));
        JobWatcher watcher = new JobWatcher(bootstrap);
        KafkaProducer<String, byte[]> producer = PipelineScenario.producer(bootstrap, store)) {
      for (CompressionRequest request : List.of(unusable, noSuchLayer, distil, transfer)) {
        PipelineScenario.send(producer, request);
      }
      JobWatcher.Outcome refused = watcher.await(unusable.getJobId(), Duration.ofMinutes(1), p -> {});
      assertThat(refused.failure()).isNotNull();
      assertThat(refused.failure().getStage()).isEqualTo(Stage.TEACHER_INFERENCE);
      assertThat(refused.failure().getField()).isEqualTo("student.checkpointUri");
      assertThat(refused.failure().getReason()).contains("(1, 5)", "10 classes");

      JobWatcher.Outcome missing = watcher.await(noSuchLayer.getJobId(), Duration.ofMinutes(1), p -> {});
      assertThat(missing.failure()).isNotNull();
      assertThat(missing.failure().getStage()).isEqualTo(Stage.TEACHER_INFERENCE);
      assertThat(missing.failure().getField()).isEqualTo("pruning.skipLayers");
      assertThat(missing.failure().getReason()).contains("layer9.conv.weight", "layer1.0.conv1.weight");

      JobWatcher.Outcome distilled = watcher.await(distil.getJobId(), Duration.ofMinutes(10), p -> {});
      assertThat(distilled.failure()).as("failure of the TorchScript distillation").isNull();
      JobResult result = distilled.result();
      assertThat(result.getTeacher().getArchitecture()).isEqualTo(JobModel.TORCHSCRIPT);
      assertThat(result.getStudent().getArchitecture()).isEqualTo("resnet18-w8");
      assertThat(result.getStudent().getParameters()).isEqualTo(176_258).isEqualTo(result.getBaseline().getParameters());
      // Chance is 0.1 on ten classes; one epoch on 900 images.
      assertThat(result.getStudent().getTestAccuracy()).isGreaterThan(0.3);
      assertThat(result.getSparsity()).isCloseTo(0.6, org.assertj.core.data.Offset.offset(1e-4));
      assertThat(result.getLayers()).hasSize(21).extracting(LayerSparsity::getName).contains("layer3.0.downsample.0.weight");
      // Batch-norm scales and shifts and the head's bias: 176,258 parameters, of which 172,952 in the 21 weights.
      assertThat(result.getPruning().getUnprunedParameters())
          .isEqualTo(176_258 - result.getLayers().stream().mapToLong(LayerSparsity::getWeights).sum()).isPositive();
      checkTorchScriptOutput(result, Datasets.load(distil.getDataset()), 10);

      JobWatcher.Outcome transferred = watcher.await(transfer.getJobId(), Duration.ofMinutes(10), p -> {});
      assertThat(transferred.failure()).as("failure of the TorchScript transfer").isNull();
      JobResult moved = transferred.result();
      System.out.printf("TorchScript transfer to classes 5-9: transferred %.4f, from scratch %.4f, pruned %.4f%n",
          moved.getStudent().getTestAccuracy(), moved.getBaseline().getTestAccuracy(), moved.getPruned().getTestAccuracy());
      // Chance is 0.2 on five classes.
      assertThat(moved.getStudent().getTestAccuracy()).isGreaterThan(0.5);
      assertThat(moved.getBaseline().getTestAccuracy()).isGreaterThan(0.2);
      assertThat(moved.getLayers()).hasSize(20).extracting(LayerSparsity::getName).doesNotContain("conv1.weight");
      checkTorchScriptOutput(moved, Datasets.load(transfer.getDataset()), 5);
    }
  }

  private static TeacherSpec module(String file) {
    return TeacherSpec.newBuilder().setFormat(ModelFormat.TORCHSCRIPT).setArchitecture(null)
        .setCheckpointUri(MODELS.resolve(file).toUri().toString()).setInput(INPUT).build();
  }

  /**
   * The final checkpoint is TorchScript that Distillery scores as the result says and that real
   * PyTorch loads with Distillery's logits on the same images.
   */
  private static void checkTorchScriptOutput(JobResult result, Datasets.TrainTest data, int classes) throws Exception {
    assertThat(result.getFinalFormat()).isEqualTo(ModelFormat.TORCHSCRIPT);
    Path file = ArtifactStore.open(result.getFinalCheckpoint());
    assertThat(file.getFileName().toString()).endsWith(".pt");
    int count = 64;
    float[] ours = new float[count * classes];
    // PyTorch reads the first images of the training file itself, without the job's class filter.
    ImageDataset firstImages = Datasets.read(PipelineScenario.SUBSET, "train").limit(count);
    try (JobModel pruned = JobModel.load(new JobModel.Source("checkpoint", ModelFormat.TORCHSCRIPT, "out", 1,
        file.toUri().toString(), INPUT), classes, data.train().imageShape())) {
      assertThat(Evaluation.accuracy(pruned.model(), data.test(), pruned.input()))
          .isEqualTo(result.getPruned().getTestAccuracy());
      Evaluation.forEachBatch(pruned.model(), firstImages, pruned.input(), 0, count, 32,
          (first, logits, n, c) -> System.arraycopy(logits, 0, ours, first * c, logits.length));
    }
    float[] theirs = PyTorch.torchScriptLogits(file, PipelineScenario.SUBSET, count, Preprocessing.of(INPUT));
    assertThat(theirs).hasSameSizeAs(ours);
    for (int i = 0; i < ours.length; i++) {
      assertThat(theirs[i]).as("logit %d of %s", i, file).isCloseTo(ours[i], org.assertj.core.data.Offset.offset(1e-4f));
    }
  }
}
