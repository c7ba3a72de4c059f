package dev.distillery.pruner;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import ai.djl.ndarray.types.Shape;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.Models;
import dev.distillery.common.ml.OnnxExport;
import dev.distillery.schemas.PruningSettings;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The sparse encoding round-trips exactly and is smaller than its layout before compression. */
class SparseCheckpointTest {
  @ParameterizedTest
  @ValueSource(doubles = {0.0, 0.5, 0.9})
  void roundTripsExactlyAndShrinksWithSparsity(double sparsity) throws Exception {
    DjlRuntime.start(1);
    try (Model model = Models.create("lenet5", 1.0, 10, new Shape(1, 28, 28), 5);
        PruningMasks masks = PruningMasks.compute(model, PruningSettings.newBuilder().setTargetSparsity(sparsity).build(), 1)) {
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      SparseCheckpoint.write(model, out);
      Map<String, SparseCheckpoint.Tensor> read = SparseCheckpoint.read(new ByteArrayInputStream(out.toByteArray()));
      long layoutSize = 4 + 1 + 4;
      for (var p : model.getBlock().getParameters()) {
        float[] values = p.getValue().getArray().toFloatArray();
        assertThat(read.get(p.getKey()).shape()).isEqualTo(p.getValue().getArray().getShape());
        float[] back = read.get(p.getKey()).values();
        assertThat(back).hasSameSizeAs(values);
        for (int i = 0; i < values.length; i++) {
          if (back[i] != values[i]) { // == on floats: -0.0 (a masked negative weight) equals 0.0
            throw new AssertionError(p.getKey() + "[" + i + "] read back as " + back[i] + ", was " + values[i]);
          }
        }
        long nonZero = Models.nonZero(p.getValue().getArray());
        long header = 2 + p.getKey().length() + 1 + 4L * p.getValue().getArray().getShape().dimension() + 1;
        layoutSize += header + Math.min(4L * values.length, (values.length + 7) / 8 + 4 + 4 * nonZero);
      }
      assertThat((long) out.size()).as("deflated").isLessThan(layoutSize);
      long dense = 4 * Models.parameterCount(model);
      System.out.printf("lenet5 at %.0f%% of prunable weights: %d bytes (%d before deflating), dense %d: %.1fx%n",
          100 * sparsity, out.size(), layoutSize, dense, (double) dense / out.size());
      if (sparsity == 0.9) {
        assertThat(out.size()).isLessThan((int) (dense / 4));
      }
    }
  }

  /** int8: each weight tensor read back as its per-channel quantization, zeros exactly zero, the rest float32 as it was. */
  @ParameterizedTest
  @ValueSource(doubles = {0.0, 0.9})
  void int8WeightsReadBackAsTheirQuantization(double sparsity) throws Exception {
    DjlRuntime.start(1);
    try (Model model = Models.create("lenet5", 1.0, 10, new Shape(1, 28, 28), 5);
        PruningMasks masks = PruningMasks.compute(model, PruningSettings.newBuilder().setTargetSparsity(sparsity).build(), 1)) {
      ByteArrayOutputStream floats = new ByteArrayOutputStream();
      SparseCheckpoint.write(model, floats);
      ByteArrayOutputStream int8 = new ByteArrayOutputStream();
      SparseCheckpoint.writeInt8(model, int8);
      Map<String, SparseCheckpoint.Tensor> read = SparseCheckpoint.read(new ByteArrayInputStream(int8.toByteArray()));
      for (var p : model.getBlock().getParameters()) {
        float[] values = p.getValue().getArray().toFloatArray();
        Shape shape = p.getValue().getArray().getShape();
        float[] expected = values;
        if (shape.dimension() >= 2) {
          OnnxExport.Int8Weights q = OnnxExport.Int8Weights.of(values, (int) shape.get(0));
          expected = new float[values.length];
          for (int i = 0; i < values.length; i++) {
            expected[i] = q.values()[i] * q.scales()[(int) (i / (values.length / shape.get(0)))];
          }
        }
        float[] back = read.get(p.getKey()).values();
        for (int i = 0; i < values.length; i++) {
          if (back[i] != expected[i] || values[i] == 0 && back[i] != 0) {
            throw new AssertionError(p.getKey() + "[" + i + "] read back as " + back[i] + ", expected " + expected[i]);
          }
        }
      }
      System.out.printf("lenet5 at %.0f%%: sparse float32 %d bytes, int8 %d bytes%n", 100 * sparsity, floats.size(),
          int8.size());
      assertThat(int8.size()).isLessThan(floats.size() / 2);
    }
  }
}
