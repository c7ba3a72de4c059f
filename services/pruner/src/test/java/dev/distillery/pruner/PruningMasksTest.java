package dev.distillery.pruner;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.Shape;
import dev.distillery.common.JobFailedException;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.Models;
import dev.distillery.schemas.PruningMethod;
import dev.distillery.schemas.PruningSettings;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Masks of whole models: per-layer targets, skipped layers, one global threshold, whole channels, steps. */
class PruningMasksTest {
  private static final Shape IMAGE = new Shape(1, 28, 28);
  private static final String CONV1 = "01Conv2d_weight";
  private static final String DENSE1 = "08Linear_weight";

  @BeforeAll
  static void engine() {
    DjlRuntime.start(1);
  }

  @Test
  void perLayerTargetsOverridesAndSkips() throws Exception {
    PruningSettings settings = PruningSettings.newBuilder().setMethod(PruningMethod.L1_UNSTRUCTURED)
        .setTargetSparsity(0.5).setLayerSparsity(Map.of(DENSE1, 0.9)).setSkipLayers(List.of(CONV1)).build();
    try (Model model = Models.create("lenet5", 1.0, 10, IMAGE, 1);
        PruningMasks masks = PruningMasks.compute(model, settings, 1)) {
      assertThat(masks.counts()).extracting(PruningMasks.LayerCount::name).doesNotContain(CONV1);
      for (PruningMasks.LayerCount layer : masks.counts()) {
        double amount = layer.name().equals(DENSE1) ? 0.9 : 0.5;
        assertThat(layer.zeros()).as(layer.name()).isEqualTo(L1Unstructured.prunedCount(amount, layer.weights()));
      }
      assertThat(Models.nonZero(weight(model, CONV1))).isEqualTo(weight(model, CONV1).size());
    }
  }

  @Test
  void globalPruningMeetsTheTargetOverAllLayersNotEach() throws Exception {
    PruningSettings settings = PruningSettings.newBuilder().setMethod(PruningMethod.GLOBAL_UNSTRUCTURED)
        .setTargetSparsity(0.8).build();
    try (Model model = Models.create("lenet5", 1.0, 10, IMAGE, 1);
        PruningMasks masks = PruningMasks.compute(model, settings, 1)) {
      long weights = masks.counts().stream().mapToLong(PruningMasks.LayerCount::weights).sum();
      long zeros = masks.counts().stream().mapToLong(PruningMasks.LayerCount::zeros).sum();
      assertThat(zeros).isEqualTo(L1Unstructured.prunedCount(0.8, weights));
      assertThat(masks.counts()).extracting(l -> (double) l.zeros() / l.weights()).doesNotHaveDuplicates();
    }
  }

  @Test
  void lnStructuredZeroesWholeOutputChannels() throws Exception {
    PruningSettings settings = PruningSettings.newBuilder().setMethod(PruningMethod.LN_STRUCTURED)
        .setTargetSparsity(0.5).setNorm(2).build();
    try (Model model = Models.create("lenet5", 1.0, 10, IMAGE, 1);
        PruningMasks masks = PruningMasks.compute(model, settings, 1)) {
      NDArray conv = weight(model, CONV1); // 6 filters of 1x5x5
      float[] values = conv.toFloatArray();
      int zeroFilters = 0;
      for (int filter = 0; filter < 6; filter++) {
        long nonZero = 0;
        for (int i = filter * 25; i < (filter + 1) * 25; i++) {
          nonZero += values[i] != 0 ? 1 : 0;
        }
        assertThat(nonZero).as("filter %d is kept whole or pruned whole", filter).isIn(0L, 25L);
        zeroFilters += nonZero == 0 ? 1 : 0;
      }
      assertThat(zeroFilters).isEqualTo(3);
    }
  }

  @Test
  void gradualStepsRiseToTheTargetExactlyAtTheLastStepAndKeepEarlierZeros() throws Exception {
    PruningSettings settings = PruningSettings.newBuilder().setMethod(PruningMethod.L1_UNSTRUCTURED)
        .setTargetSparsity(0.9).setSteps(4).setInitialSparsity(0.1).build();
    assertThat(SparsitySchedule.at(1, settings, 0.9)).isCloseTo(0.9 - 0.8 * 0.421875, within(1e-12));
    assertThat(SparsitySchedule.at(4, settings, 0.9)).isEqualTo(0.9);
    try (Model model = Models.create("lenet5", 1.0, 10, IMAGE, 1)) {
      float[] previous = null;
      for (int step = 1; step <= 4; step++) {
        try (PruningMasks masks = PruningMasks.compute(model, settings, step)) {
          float[] now = weight(model, DENSE1).toFloatArray();
          if (previous != null) {
            for (int i = 0; i < now.length; i++) {
              if (previous[i] == 0) {
                assertThat(now[i]).as("step %d, weight %d pruned before", step, i).isZero();
              }
            }
          }
          previous = now;
          if (step == 4) {
            for (PruningMasks.LayerCount layer : masks.counts()) {
              assertThat(layer.zeros()).isEqualTo(L1Unstructured.prunedCount(0.9, layer.weights()));
            }
          }
        }
      }
    }
  }

  @Test
  void overridesMustNameRealLayers() throws Exception {
    PruningSettings settings = PruningSettings.newBuilder().setLayerSparsity(Map.of("conv9_weight", 0.5)).build();
    try (Model model = Models.create("lenet5", 1.0, 10, IMAGE, 1)) {
      assertThatThrownBy(() -> PruningMasks.compute(model, settings, 1))
          .isInstanceOf(JobFailedException.class)
          .hasMessageContaining("conv9_weight").hasMessageContaining(CONV1);
    }
  }

  private static NDArray weight(Model model, String name) {
    return model.getBlock().getParameters().get(name).getArray();
  }
}
