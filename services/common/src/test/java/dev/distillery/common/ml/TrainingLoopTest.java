package dev.distillery.common.ml;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import ai.djl.Model;
import java.nio.file.Path;
import ai.djl.nn.Parameter;
import dev.distillery.common.testing.GoldenFixtures;
import dev.distillery.schemas.LearningRateSchedule;
import dev.distillery.schemas.OptimizerKind;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import dev.distillery.common.artifacts.ArtifactStore;

/** Real libtorch training on the shipped Fashion-MNIST subset. */
class TrainingLoopTest {
  private static ImageDataset train;
  private static ImageDataset test;

  @BeforeAll
  static void data() throws Exception {
    DjlRuntime.start(2);
    train = Datasets.read(IdxReaderTest.SUBSET, "train").limit(2000);
    test = Datasets.read(IdxReaderTest.SUBSET, "t10k");
  }

  @Test
  void learnsAndRoundTripsThroughACheckpoint(@TempDir Path dir) throws Exception {
    try (Model model = Models.create("mlp", 0.5, 10, train.imageShape(), 3)) {
      double untrained = Evaluation.accuracy(model, test);
      new TrainingLoop(model, train, TrainingLoop.Plan.adam(2, 64, 0.002, 3),
          (logits, indices, manager) -> Losses.crossEntropy(logits, train.labels(manager, indices))).run();
      double trained = Evaluation.accuracy(model, test);
      assertThat(untrained).isLessThan(0.3);
      assertThat(trained).isGreaterThan(0.7);
      var ref = Models.save(model, new ArtifactStore(dir), "job", "mlp.params");
      try (Model loaded = Models.load("mlp", 0.5, 10, train.imageShape(), ArtifactStore.open(ref))) {
        assertThat(Evaluation.accuracy(loaded, test)).isEqualTo(trained);
        assertThat(Models.parameterCount(loaded)).isEqualTo(Models.parameterCount(model));
      }
    }
  }

  @Test
  void aNonFiniteLossStopsTrainingWithAReason() throws Exception {
    try (Model model = Models.create("lenet5", 0.5, 10, train.imageShape(), 3)) {
      assertThatThrownBy(() -> new TrainingLoop(model, train, TrainingLoop.Plan.adam(1, 64, 0.001, 3),
              (logits, indices, manager) -> logits.sum().div(0f)).run())
          .isInstanceOf(TrainingLoop.NonFiniteLossException.class)
          .hasMessageContaining("epoch 1, step 1");
    }
  }

  static Stream<JsonObject> schedules() throws Exception {
    return GoldenFixtures.cases("lr_schedules.json").stream();
  }

  @ParameterizedTest
  @MethodSource("schedules")
  void learningRateSchedulesMatchTorch(JsonObject golden) {
    var plan = new TrainingLoop.Plan(golden.getInteger("epochs"), 64, golden.getDouble("learningRate"),
        OptimizerKind.SGD, 0, 0, LearningRateSchedule.valueOf(golden.getString("schedule")),
        golden.getInteger("stepEpochs"), golden.getDouble("stepGamma"), 1);
    int steps = golden.getInteger("stepsPerEpoch");
    JsonArray rates = golden.getJsonArray("rates");
    for (int i = 0; i < rates.size(); i++) {
      double expected = rates.getDouble(i);
      assertThat(plan.learningRateAt(i / steps + 1, i % steps, steps)).as("step %d", i)
          .isCloseTo(expected, within(1e-12 + 1e-9 * expected));
    }
  }

  /** SGD without momentum keeps no optimizer state, so a resumed run must equal an uninterrupted one. */
  @Test
  void aRunStoppedAfterAnEpochResumesWhereItStopped(@TempDir Path dir) throws Exception {
    var plan = new TrainingLoop.Plan(3, 64, 0.05, OptimizerKind.SGD, 0, 0, LearningRateSchedule.COSINE, 1, 1, 5);
    byte[] uninterrupted;
    try (Model model = Models.create("mlp", 0.5, 10, train.imageShape(), 3)) {
      loop(model, plan).run();
      uninterrupted = TrainingCheckpoint.weights(model);
    }
    TrainingCheckpoint state = new TrainingCheckpoint(dir.resolve("run"), "job-1 distilled");
    try (Model model = Models.create("mlp", 0.5, 10, train.imageShape(), 3)) {
      assertThatThrownBy(() -> loop(model, plan).checkpoint(state).onEpoch(e -> {
        if (e.epoch() == 2) {
          throw new IllegalStateException("process killed");
        }
      }).run()).hasMessage("process killed");
    }
    try (var files = java.nio.file.Files.list(dir.resolve("run"))) {
      assertThat(files.map(f -> f.getFileName().toString()))
          .as("the counters and the files they name, nothing older")
          .containsExactlyInAnyOrder("state.properties", "epoch-2.params", "best-2.params");
    }
    List<Integer> epochsRun = new ArrayList<>();
    try (Model model = Models.create("mlp", 0.5, 10, train.imageShape(), 99)) {
      TrainingLoop.Outcome outcome = loop(model, plan).checkpoint(state).onEpoch(e -> {
        assertThat(e.resumedAfter()).isEqualTo(2);
        epochsRun.add(e.epoch());
      }).run();
      assertThat(outcome.resumedAfter()).isEqualTo(2);
      assertThat(epochsRun).containsExactly(3);
      assertThat(TrainingCheckpoint.weights(model)).isEqualTo(uninterrupted);
    }
    try (Model model = Models.create("mlp", 0.5, 10, train.imageShape(), 3)) {
      TrainingLoop.Outcome other = loop(model, plan).checkpoint(new TrainingCheckpoint(dir.resolve("run"), "job-1 other"))
          .run();
      assertThat(other.resumedAfter()).as("another run's state is not resumed").isZero();
    }
  }

  @Test
  void theBestValidationEpochsWeightsAreKept() throws Exception {
    double[] scores = {0.5, 0.9, 0.7};
    List<byte[]> weightsByEpoch = new ArrayList<>();
    try (Model model = Models.create("mlp", 0.5, 10, train.imageShape(), 3)) {
      TrainingLoop.Outcome outcome = loop(model, TrainingLoop.Plan.adam(3, 64, 0.002, 3))
          .validation(trained -> scores[weightsByEpoch.size()])
          .onEpoch(e -> {
            try {
              weightsByEpoch.add(TrainingCheckpoint.weights(model));
            } catch (Exception ex) {
              throw new IllegalStateException(ex);
            }
            assertThat(e.validationAccuracy()).isEqualTo(scores[e.epoch() - 1]);
          })
          .run();
      assertThat(outcome.bestEpoch()).isEqualTo(2);
      assertThat(outcome.validationAccuracy()).isEqualTo(0.9);
      assertThat(TrainingCheckpoint.weights(model)).isEqualTo(weightsByEpoch.get(1)).isNotEqualTo(weightsByEpoch.get(2));
    }
  }

  @Test
  void aNewHeadOnACopiedBackboneTrainsAloneWhenTheBackboneIsFrozen() throws Exception {
    ImageDataset firstFive = train.onlyClasses(new int[] {5, 6, 7, 8, 9});
    assertThat(firstFive.numClasses()).isEqualTo(5);
    try (Model pretrained = Models.create("lenet5", 0.5, 10, train.imageShape(), 3);
        Model student = Models.create("lenet5", 0.5, 5, train.imageShape(), 4)) {
      Models.copyBackbone(pretrained, student);
      List<Parameter> head = Models.head(student);
      assertThat(head.get(0).getArray().getShape().get(0)).as("head outputs").isEqualTo(5);
      Set<String> backbone = new HashSet<>();
      student.getBlock().getParameters().forEach(p -> {
        if (!head.contains(p.getValue())) {
          backbone.add(p.getKey());
        }
      });
      byte[] before = TrainingCheckpoint.weights(student);
      float[] headBefore = head.get(0).getArray().toFloatArray();
      new TrainingLoop(student, firstFive, TrainingLoop.Plan.adam(1, 64, 0.01, 3),
          (logits, indices, manager) -> Losses.crossEntropy(logits, firstFive.labels(manager, indices)))
          .frozen(backbone).run();
      for (var p : student.getBlock().getParameters()) {
        if (!head.contains(p.getValue())) {
          var source = pretrained.getBlock().getParameters().get(p.getKey()).getArray().toFloatArray();
          assertThat(p.getValue().getArray().toFloatArray()).as(p.getKey()).isEqualTo(source);
        }
      }
      assertThat(head.get(0).getArray().toFloatArray()).isNotEqualTo(headBefore);
      assertThat(TrainingCheckpoint.weights(student)).isNotEqualTo(before);
    }
  }

  private static TrainingLoop loop(Model model, TrainingLoop.Plan plan) {
    return new TrainingLoop(model, train, plan,
        (logits, indices, manager) -> Losses.crossEntropy(logits, train.labels(manager, indices)));
  }

  @Test
  void architecturesScaleWithWidth() {
    try (Model narrow = Models.create("lenet5", 0.5, 10, train.imageShape(), 1);
        Model wide = Models.create("lenet5", 1.0, 10, train.imageShape(), 1);
        Model teacher = Models.create("convnet", 1.0, 10, train.imageShape(), 1)) {
      assertThat(Models.parameterCount(wide)).isEqualTo(61_706);
      assertThat(Models.parameterCount(narrow)).isLessThan(Models.parameterCount(wide) / 2);
      assertThat(Models.parameterCount(teacher)).isGreaterThan(10 * Models.parameterCount(wide));
    }
    assertThatThrownBy(() -> Architectures.build("resnet", 1, 10)).hasMessageContaining("unknown architecture 'resnet'");
  }
}
