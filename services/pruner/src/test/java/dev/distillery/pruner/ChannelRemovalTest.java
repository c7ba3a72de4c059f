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
import dev.distillery.common.ml.ChannelGraph;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.ImageDataset;
import dev.distillery.common.ml.Losses;
import dev.distillery.common.ml.TrainingLoop;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.Models;
import dev.distillery.schemas.ArtifactRef;
import dev.distillery.schemas.PruningMethod;
import dev.distillery.schemas.PruningSettings;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
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
      "convnet, 06Conv2d_weight, '16, 16, 16, 32, 128'",
      "simplecnn, 04Conv2d_weight, '5, 5, 25'",
      "bncnn, 05Conv2d_weight, '16, 16, 32'",
      // Stage 1's residual stream, named by the second block's last convolution: all of its writers
      // (the stem, each block's second convolution, their batch norms) lose the same channels.
      "resnet20, 06ParallelBlock_01SequentialBlock_04Conv2d_weight, '4, 16, 32, 8, 8, 8, 16, 16, 16, 32, 32, 32'"})
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

  /**
   * A resnet20 fine-tuned with its channel-group masks held (batch norm in training mode, its
   * statistics updated) keeps every pruned channel at zero, so removing them still gives the masked
   * model's outputs.
   */
  @Test
  void aFineTunedResidualNetworkStillLosesItsChannelsExactly() throws Exception {
    ImageDataset train = Datasets.read(Path.of("../../datasets/fashion-mnist-subset"), "train")
        .subset(ImageDataset.range(0, 256));
    PruningSettings settings = PruningSettings.newBuilder().setMethod(PruningMethod.LN_STRUCTURED).setTargetSparsity(0.5)
        .build();
    try (Model masked = Models.create("resnet20", 0.5, 10, IMAGE, 7);
        PruningMasks masks = PruningMasks.compute(masked, settings, 1)) {
      float[] before = masked.getBlock().getParameters().get("02BatchNorm_runningMean").getArray().toFloatArray();
      new TrainingLoop(masked, train, TrainingLoop.Plan.adam(1, 64, 0.01, 3),
          (logits, indices, manager) -> Losses.crossEntropy(logits, train.labels(manager, indices)))
          .afterStep(masks::apply).run();
      assertThat(masked.getBlock().getParameters().get("02BatchNorm_runningMean").getArray().toFloatArray())
          .as("batch-norm statistics after training").isNotEqualTo(before);
      try (Model small = ChannelRemoval.removeZeroChannels(masked, "resnet20", 10, IMAGE);
          NDManager manager = NDManager.newBaseManager()) {
        assertThat(Models.hiddenUnits(small)).isEqualTo(List.of(4, 8, 16, 4, 4, 4, 8, 8, 8, 16, 16, 16));
        manager.getEngine().setRandomSeed(3);
        NDArray images = manager.randomUniform(0, 1, new Shape(32).addAll(IMAGE));
        assertClose(logits(small, images), logits(masked, images));
      }
    }
  }

  /**
   * Why the channels of a residual stream are one group: pruned layer by layer (ln_structured on
   * each writer alone, as a per-tensor pruner does), stage 1's writers choose different channels,
   * and hardly a channel is zero in all of them, so hardly one could be removed.
   */
  @Test
  void perLayerChoicesOnAResidualStreamLeaveLittleToRemove() throws Exception {
    ChannelGraph graph = Architectures.graph("resnet20");
    try (Model model = Models.create("resnet20", 1.0, 10, IMAGE, 7); NDManager scope = NDManager.newBaseManager()) {
      boolean[] zeroEverywhere = new boolean[16];
      java.util.Arrays.fill(zeroEverywhere, true);
      List<ChannelGraph.Layer> writers = graph.producers(0).stream().filter(ChannelGraph.Layer::hasWeights).toList();
      assertThat(writers).hasSize(4); // the stem and the second convolution of each of the three blocks
      for (ChannelGraph.Layer writer : writers) {
        float[] mask = LnStructured.mask(model.getBlock().getParameters().get(writer.weight()).getArray(), 0.5, 2, scope)
            .toFloatArray();
        for (int c = 0; c < 16; c++) {
          zeroEverywhere[c] &= mask[c * (mask.length / 16)] == 0;
        }
      }
      int removable = 0;
      for (boolean zero : zeroEverywhere) {
        removable += zero ? 1 : 0;
      }
      assertThat(removable).as("channels of stage 1 pruned by all four writers alone").isLessThan(8);
    }
  }

  /**
   * DJL starts biases and batch-norm shifts at zero, scales and variances at one: random ones make
   * a pruned channel's bias or batch norm matter.
   */
  private static Model withRandomBiases(Model model) {
    boolean gradMode = DjlRuntime.inferenceMode();
    try {
      for (var p : model.getBlock().getParameters()) {
        NDArray array = p.getValue().getArray();
        if (p.getKey().endsWith("_bias") || p.getKey().endsWith("_beta") || p.getKey().endsWith("_runningMean")) {
          array.getManager().randomUniform(-0.2f, 0.2f, array.getShape()).copyTo(array);
        } else if (p.getKey().endsWith("_gamma") || p.getKey().endsWith("_runningVar")) {
          array.getManager().randomUniform(0.5f, 1.5f, array.getShape()).copyTo(array);
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
