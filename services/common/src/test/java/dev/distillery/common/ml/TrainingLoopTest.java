package dev.distillery.common.ml;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import ai.djl.Model;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
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
      TrainingLoop.fit(model, train, new TrainingLoop.Plan(2, 64, 0.002, 3),
          (logits, indices, manager) -> Losses.crossEntropy(logits, train.labels(manager, indices)),
          () -> {}, (epoch, epochs, loss, rate) -> {});
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
      assertThatThrownBy(() -> TrainingLoop.fit(model, train, new TrainingLoop.Plan(1, 64, 0.001, 3),
              (logits, indices, manager) -> logits.sum().div(0f),
              () -> {}, (epoch, epochs, loss, rate) -> {}))
          .isInstanceOf(TrainingLoop.NonFiniteLossException.class)
          .hasMessageContaining("epoch 1, step 1");
    }
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
