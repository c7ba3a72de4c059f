package dev.distillery.common.ml;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.training.ParameterStore;
import java.util.Arrays;

/**
 * What one inference costs: multiply-accumulates (of a built-in, sequential model, whose layers
 * DJL sees) and latency (of any model).
 */
public final class InferenceCost {
  private static final int WARM_UP_PASSES = 10;
  private static final long WARM_UP_NANOS = 1_000_000_000L;

  /**
   * Multiply-accumulates of one image.
   *
   * @param dense as the model runs on dense kernels
   * @param nonZero those whose weight is not zero: what a sparse kernel would have to do
   */
  public record Macs(long dense, long nonZero) {}

  private InferenceCost() {}

  /** Counts the MACs of the convolutions and dense layers for one image of {@code imageShape}. */
  public static Macs macs(Model model, Shape imageShape) {
    Shape[] shape = {new Shape(1).addAll(imageShape)};
    long dense = 0;
    long nonZero = 0;
    for (var child : model.getBlock().getChildren()) {
      Block layer = child.getValue();
      Shape[] out = layer.getOutputShapes(shape);
      if (layer instanceof Conv2d || layer instanceof Linear) {
        NDArray weight = layer.getParameters().get("weight").getArray();
        // Each weight is used once per output position (Conv2d) or once (Linear).
        long positions = layer instanceof Conv2d ? out[0].get(2) * out[0].get(3) : 1;
        dense += weight.size() * positions;
        nonZero += Models.nonZero(weight) * positions;
      }
      shape = out;
    }
    return new Macs(dense, nonZero);
  }

  /**
   * The median wall time in milliseconds of one forward pass over a batch of {@code batch} images,
   * over {@code repeats} passes that follow a warm-up.
   */
  public static double latencyMillis(JobModel job, Shape imageShape, int batch, int repeats) {
    Model model = job.model();
    boolean gradMode = DjlRuntime.inferenceMode();
    try (NDManager scope = model.getNDManager().newSubManager()) {
      ParameterStore parameters = new ParameterStore(scope, false);
      Shape shape = job.inputShape(batch, imageShape);
      boolean channelsLast = !job.isTorchScript();
      // Untimed passes first (at least 10, and a second): kernel selection, first-touch memory;
      // with 0.3 s the first measurement of a process still came out 35% high.
      long warmUntil = System.nanoTime() + WARM_UP_NANOS;
      for (int i = 0; i < WARM_UP_PASSES || System.nanoTime() < warmUntil; i++) {
        forwardNanos(model, parameters, shape, channelsLast, scope);
      }
      double[] millis = new double[repeats];
      for (int i = 0; i < repeats; i++) {
        millis[i] = forwardNanos(model, parameters, shape, channelsLast, scope) / 1e6;
      }
      Arrays.sort(millis);
      return millis[repeats / 2];
    } finally {
      DjlRuntime.restoreGradMode(gradMode);
    }
  }

  /**
   * The time of one forward pass, waiting for its result as a caller would. The input is made in
   * the pass's own manager, so the activations derived from it are freed with it: kept until the
   * end, they made later passes 5x slower (fresh memory each time).
   */
  private static long forwardNanos(Model model, ParameterStore parameters, Shape shape, boolean channelsLast,
      NDManager scope) {
    try (NDManager pass = scope.newSubManager()) {
      // The layout the model's images have in service (see ImageDataset.images).
      NDArray random = pass.randomNormal(shape);
      NDArray input = channelsLast ? ImageDataset.forInference(random) : random;
      long start = System.nanoTime();
      model.getBlock().forward(parameters, new NDList(input), false).singletonOrThrow().toFloatArray();
      return System.nanoTime() - start;
    }
  }
}
