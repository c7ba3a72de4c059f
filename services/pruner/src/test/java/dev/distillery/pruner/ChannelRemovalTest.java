package dev.distillery.pruner;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.ParameterStore;
import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.ml.Architectures;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.Models;
import dev.distillery.schemas.ArtifactRef;
import dev.distillery.schemas.PruningMethod;
import dev.distillery.schemas.PruningSettings;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * A structurally pruned model, its zero channels removed, has the smaller shapes, loads from its
 * checkpoint, and computes what the masked dense model computes.
 */
class ChannelRemovalTest {
  private static final Shape IMAGE = new Shape(1, 28, 28);

  @TempDir Path dir;

  @BeforeAll
  static void engine() {
    DjlRuntime.start(1);
  }

  @ParameterizedTest
  @CsvSource({
      "mlp, 02Linear_weight, '75, 50'",
      "lenet5, 04Conv2d_weight, '3, 4, 60, 42'",
      "convnet, 06Conv2d_weight, '16, 16, 16, 32, 128'"})
  void removesTheZeroChannelsAndComputesTheSameOutputs(String architecture, String thinnedLayer, String expected)
      throws Exception {
    // Half of every hidden layer's channels, three quarters of one, the head kept whole.
    PruningSettings settings = PruningSettings.newBuilder().setMethod(PruningMethod.LN_STRUCTURED)
        .setTargetSparsity(0.5).setLayerSparsity(Map.of(thinnedLayer, 0.75)).build();
    List<Integer> hidden = java.util.Arrays.stream(expected.split(",\\s*")).map(Integer::valueOf).toList();
    try (Model masked = withRandomBiases(Models.create(architecture, 1.0, 10, IMAGE, 7));
        PruningMasks masks = PruningMasks.compute(masked, settings, 1);
        Model small = ChannelRemoval.removeZeroChannels(masked, architecture, 10, IMAGE);
        NDManager manager = NDManager.newBaseManager()) {
      assertThat(Models.hiddenUnits(small)).isEqualTo(hidden);
      assertThat(Models.hiddenUnits(masked)).isEqualTo(Architectures.hiddenUnits(architecture, 1.0));
      assertThat(Models.parameterCount(small)).isLessThan(Models.parameterCount(masked) / 2);

      manager.getEngine().setRandomSeed(3);
      NDArray images = manager.randomUniform(0, 1, new Shape(64).addAll(IMAGE));
      float[] dense = logits(masked, images);
      float[] smaller = logits(small, images);
      assertClose(smaller, dense);
      assertThat(distinctValues(dense)).as("the outputs depend on the input").isGreaterThan(100);

      ArtifactRef saved = Models.save(small, new ArtifactStore(dir), "job", "small.params");
      try (Model loaded = Models.load(architecture, hidden, 10, IMAGE, ArtifactStore.open(saved))) {
        assertClose(logits(loaded, images), dense);
      }
    }
  }

  /** DJL starts biases at zero: random ones make a pruned channel's bias matter. */
  private static Model withRandomBiases(Model model) {
    boolean gradMode = DjlRuntime.inferenceMode();
    try {
      for (var p : model.getBlock().getParameters()) {
        if (p.getKey().endsWith("_bias")) {
          NDArray bias = p.getValue().getArray();
          bias.getManager().randomUniform(-0.2f, 0.2f, bias.getShape()).copyTo(bias);
        }
      }
    } finally {
      DjlRuntime.restoreGradMode(gradMode);
    }
    return model;
  }

  private static float[] logits(Model model, NDArray images) {
    boolean gradMode = DjlRuntime.inferenceMode();
    try (NDManager scope = model.getNDManager().newSubManager()) {
      NDArray input = images.duplicate();
      input.attach(scope);
      return model.getBlock().forward(new ParameterStore(scope, false), new NDList(input), false)
          .singletonOrThrow().toFloatArray();
    } finally {
      DjlRuntime.restoreGradMode(gradMode);
    }
  }

  private static void assertClose(float[] actual, float[] expected) {
    assertThat(actual).hasSameSizeAs(expected);
    for (int i = 0; i < expected.length; i++) {
      if (Math.abs(actual[i] - expected[i]) > 1e-5) {
        throw new AssertionError("logit " + i + " is " + actual[i] + ", the masked dense model gives " + expected[i]);
      }
    }
  }

  private static long distinctValues(float[] values) {
    return java.util.stream.IntStream.range(0, values.length).mapToObj(i -> values[i]).distinct().count();
  }
}
