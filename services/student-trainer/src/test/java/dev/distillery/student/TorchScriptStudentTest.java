package dev.distillery.student;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import ai.djl.util.Pair;
import dev.distillery.common.JobFailedException;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.DistillationLoss;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.Evaluation;
import dev.distillery.common.ml.ImageDataset;
import dev.distillery.common.ml.JobModel;
import dev.distillery.common.ml.TrainingLoop;
import dev.distillery.common.testing.GoldenFixtures;
import dev.distillery.schemas.InputSpec;
import dev.distillery.schemas.LearningRateSchedule;
import dev.distillery.schemas.ModelFormat;
import dev.distillery.schemas.OptimizerKind;
import io.vertx.core.json.JsonObject;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A user's TorchScript module as the student: one distillation step through DJL gives real
 * PyTorch's loss and gradients ({@code golden/torchscript_student_step.py}), and one step of
 * Distillery's own training loop leaves the weights and batch-norm statistics PyTorch's leaves.
 */
class TorchScriptStudentTest {
  static final Path MODELS = Path.of("../../datasets/torchscript").toAbsolutePath().normalize();
  static final Path SUBSET = Path.of("../../datasets/fashion-mnist-subset").toAbsolutePath().normalize();
  /** The preprocessing the fixture modules were trained with (datasets/torchscript/resnet18.py). */
  static final InputSpec INPUT = InputSpec.newBuilder().setMean(0.5).setStd(0.25).build();

  private static JsonObject golden;
  private static ImageDataset train;

  @BeforeAll
  static void load() throws Exception {
    DjlRuntime.start(1);
    golden = GoldenFixtures.read("torchscript_student_step.json");
    train = Datasets.read(SUBSET, "train");
  }

  static JobModel.Source student(String file) {
    return new JobModel.Source("student", ModelFormat.TORCHSCRIPT, "resnet18", 1, MODELS.resolve(file).toUri().toString(),
        INPUT);
  }

  @Test
  void oneStepGivesPyTorchsLossAndGradients() throws Exception {
    int batch = golden.getInteger("batch");
    DistillationLoss loss = new DistillationLoss(golden.getDouble("temperature"), golden.getDouble("alpha"), 0);
    try (JobModel model = JobModel.load(student("resnet18_w8_init.pt"), 10, train.imageShape());
        Trainer trainer = model.model().newTrainer(new DefaultTrainingConfig(Loss.l2Loss()))) {
      int[] first = ImageDataset.range(0, batch);
      NDManager manager = trainer.getManager();
      NDArray images = train.images(manager, first, train.batchBuffer(batch), model.input());
      float value;
      try (GradientCollector collector = trainer.newGradientCollector()) {
        NDArray logits = trainer.forward(new NDList(images)).singletonOrThrow();
        NDArray objective = loss.compute(logits,
            manager.create(GoldenFixtures.floats(golden.getJsonArray("teacher_scaled_logits")), new Shape(batch, 10)),
            train.labels(manager, first));
        value = objective.getFloat();
        DjlRuntime.backward(collector, objective);
      }
      assertThat((double) value).isCloseTo(golden.getDouble("loss"), org.assertj.core.data.Offset.offset(1e-5));
      Map<String, Parameter> parameters = new HashMap<>();
      model.model().getBlock().getParameters().forEach(p -> parameters.put(p.getKey(), p.getValue()));
      JsonObject norms = golden.getJsonObject("gradient_norms");
      assertThat(parameters.keySet()).containsExactlyInAnyOrderElementsOf(norms.fieldNames());
      for (String name : norms.fieldNames()) {
        double norm = parameters.get(name).getArray().getGradient().norm().getFloat();
        assertThat(norm).as("gradient norm of %s", name).isCloseTo(norms.getDouble(name),
            org.assertj.core.data.Offset.offset(1e-5 * Math.max(1, norms.getDouble(name))));
      }
      JsonObject gradients = golden.getJsonObject("gradients");
      for (String name : gradients.fieldNames()) {
        float[] expected = GoldenFixtures.floats(gradients.getJsonArray(name));
        float[] actual = parameters.get(name).getArray().getGradient().toFloatArray();
        assertThat(actual).as("gradient of %s", name).hasSameSizeAs(expected);
        for (int i = 0; i < expected.length; i++) {
          // 3e-5: on a CPU whose oneDNN fails the backward probe (this session's), oneDNN's forward
          // convolutions feed libtorch's own backward ones (DjlRuntime), and conv1's gradients then
          // differ from PyTorch's by up to 1.9e-5 (measured; 1e-5 held with oneDNN throughout).
          // A wrong kernel is off by far more (the probe's failures: 28-56% relative).
          assertThat(actual[i]).as("gradient %d of %s", i, name).isCloseTo(expected[i],
              org.assertj.core.data.Offset.offset(3e-5f));
        }
      }
    }
  }

  @Test
  void oneStepOfTheTrainingLoopLeavesPyTorchsWeightsAndStatistics() throws Exception {
    int batch = golden.getInteger("batch");
    ImageDataset firstBatch = train.subset(ImageDataset.range(0, batch));
    float[] teacher = GoldenFixtures.floats(golden.getJsonArray("teacher_scaled_logits"));
    DistillationLoss loss = new DistillationLoss(golden.getDouble("temperature"), golden.getDouble("alpha"), 0);
    float[] after = new float[8 * 10];
    try (JobModel model = JobModel.load(student("resnet18_w8_init.pt"), 10, train.imageShape())) {
      new TrainingLoop(model.model(), firstBatch, new TrainingLoop.Plan(1, batch, golden.getDouble("learning_rate"),
          OptimizerKind.SGD, 0, 0, LearningRateSchedule.CONSTANT, 1, 1, 42),
          (logits, indices, manager) -> loss.compute(logits, manager.create(rows(teacher, indices), new Shape(indices.length, 10)),
              firstBatch.labels(manager, indices)))
          .input(model.input()).run();
      Evaluation.forEachBatch(model.model(), firstBatch, model.input(), 0, 8, 8,
          (from, logits, count, classes) -> System.arraycopy(logits, 0, after, 0, logits.length));
    }
    float[] expected = GoldenFixtures.floats(golden.getJsonArray("logits_after_step"));
    for (int i = 0; i < expected.length; i++) {
      assertThat(after[i]).as("logit %d after one step", i).isCloseTo(expected[i], org.assertj.core.data.Offset.offset(1e-4f));
    }
  }

  /**
   * A TorchScript student's run stopped after epoch 1 resumes from its saved module and ends where
   * the uninterrupted run ends (SGD without momentum keeps no optimizer state): the restored module
   * is the one trained afterwards. And the best validation epoch's module is the one kept.
   */
  @Test
  void aStoppedRunResumesAndTheBestEpochIsKept(@org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
    ImageDataset few = train.subset(ImageDataset.range(0, 192));
    TrainingLoop.Plan plan = new TrainingLoop.Plan(3, 64, 0.05, OptimizerKind.SGD, 0, 0, LearningRateSchedule.CONSTANT,
        1, 1, 5);
    TrainingLoop.BatchLoss crossEntropy = (logits, indices, manager) ->
        dev.distillery.common.ml.Losses.crossEntropy(logits, few.labels(manager, indices));
    float[] uninterrupted;
    try (JobModel model = JobModel.load(student("resnet18_w8_init.pt"), 10, train.imageShape())) {
      new TrainingLoop(model.model(), few, plan, crossEntropy).input(model.input()).run();
      uninterrupted = logits(model, few);
    }
    dev.distillery.common.ml.TrainingCheckpoint state = new dev.distillery.common.ml.TrainingCheckpoint(
        dir.resolve("run"), "ts");
    try (JobModel model = JobModel.load(student("resnet18_w8_init.pt"), 10, train.imageShape())) {
      assertThatThrownBy(() -> new TrainingLoop(model.model(), few, plan, crossEntropy).input(model.input())
          .checkpoint(state).onEpoch(e -> {
            if (e.epoch() == 1) {
              throw new IllegalStateException("process killed");
            }
          }).run()).hasMessage("process killed");
    }
    try (JobModel model = JobModel.load(student("resnet18_w8_init.pt"), 10, train.imageShape())) {
      TrainingLoop.Outcome outcome = new TrainingLoop(model.model(), few, plan, crossEntropy).input(model.input())
          .checkpoint(state).run();
      assertThat(outcome.resumedAfter()).isEqualTo(1);
      float[] resumed = logits(model, few);
      for (int i = 0; i < resumed.length; i++) {
        assertThat(resumed[i]).as("logit %d", i).isCloseTo(uninterrupted[i], org.assertj.core.data.Offset.offset(1e-5f));
      }
    }
    float[] afterOneEpoch;
    try (JobModel model = JobModel.load(student("resnet18_w8_init.pt"), 10, train.imageShape())) {
      new TrainingLoop(model.model(), few, new TrainingLoop.Plan(1, 64, 0.05, OptimizerKind.SGD, 0, 0,
          LearningRateSchedule.CONSTANT, 1, 1, 5), crossEntropy).input(model.input()).run();
      afterOneEpoch = logits(model, few);
    }
    try (JobModel model = JobModel.load(student("resnet18_w8_init.pt"), 10, train.imageShape())) {
      double[] scores = {0.9, 0.5, 0.4};
      int[] epoch = {0};
      TrainingLoop.Outcome outcome = new TrainingLoop(model.model(), few, plan, crossEntropy).input(model.input())
          .validation(m -> scores[epoch[0]++]).run();
      assertThat(outcome.bestEpoch()).isEqualTo(1);
      float[] kept = logits(model, few);
      for (int i = 0; i < kept.length; i++) {
        assertThat(kept[i]).as("logit %d", i).isCloseTo(afterOneEpoch[i], org.assertj.core.data.Offset.offset(1e-5f));
      }
    }
  }

  private static float[] logits(JobModel model, ImageDataset data) throws Exception {
    float[] all = new float[data.size() * 10];
    Evaluation.forEachBatch(model.model(), data, model.input(), 0, data.size(), 64,
        (first, logits, count, classes) -> System.arraycopy(logits, 0, all, first * classes, logits.length));
    return all;
  }

  private static float[] rows(float[] matrix, int[] indices) {
    float[] rows = new float[indices.length * 10];
    for (int i = 0; i < indices.length; i++) {
      System.arraycopy(matrix, indices[i] * 10, rows, i * 10, 10);
    }
    return rows;
  }

  @Test
  void aModuleWithTheWrongNumberOfOutputsNamesTheField() {
    assertThatThrownBy(() -> JobModel.load(student("resnet18_w8_classes0-4.pt"), 10, train.imageShape()))
        .isInstanceOf(JobFailedException.class)
        .hasMessageContaining("(1, 5)")
        .satisfies(e -> assertThat(((JobFailedException) e).field()).isEqualTo("student.checkpointUri"));
  }

  @Test
  void anInputTheModuleRefusesNamesTheField() {
    JobModel.Source flat = new JobModel.Source("student", ModelFormat.TORCHSCRIPT, "resnet18", 1,
        MODELS.resolve("resnet18_w8_init.pt").toUri().toString(), InputSpec.newBuilder(INPUT).setShape(List.of(784)).build());
    assertThatThrownBy(() -> JobModel.load(flat, 10, train.imageShape()))
        .isInstanceOf(JobFailedException.class)
        .satisfies(e -> assertThat(((JobFailedException) e).field()).isEqualTo("student.input.shape"));
  }

  @Test
  void itsParametersAreItsOwnNamedTensors() throws Exception {
    try (JobModel model = JobModel.load(student("resnet18_w8_init.pt"), 10, train.imageShape())) {
      List<String> weights = model.prunableWeights().stream().map(Pair::getKey).toList();
      assertThat(weights).startsWith("conv1.weight", "layer1.0.conv1.weight").endsWith("fc.weight")
          .contains("layer2.0.downsample.0.weight").noneMatch(name -> name.contains("bn"));
      assertThat(weights).hasSize(21);
    }
  }
}
