package dev.distillery.common.ml;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.SequentialBlock;
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
    long[] counts = new long[2];
    count(model.getBlock(), new Shape[] {new Shape(1).addAll(imageShape)}, counts);
    return new Macs(counts[0], counts[1]);
  }

  /** Adds the MACs of {@code block} on {@code input} to {@code counts} (dense, non-zero); returns its output shapes. */
  private static Shape[] count(Block block, Shape[] input, long[] counts) {
    if (block instanceof SequentialBlock sequence) {
      Shape[] shape = input;
      for (var child : sequence.getChildren()) {
        shape = count(child.getValue(), shape, counts);
      }
      return shape;
    }
    if (block instanceof ParallelBlock parallel) { // every branch reads the same input (a residual block)
      for (var branch : parallel.getChildren()) {
        count(branch.getValue(), input, counts);
      }
      return block.getOutputShapes(input);
    }
    Shape[] out = block.getOutputShapes(input);
    if (block instanceof Conv2d || block instanceof Linear) {
      NDArray weight = block.getParameters().get("weight").getArray();
      // Each weight is used once per output position (Conv2d) or once (Linear).
      long positions = block instanceof Conv2d ? out[0].get(2) * out[0].get(3) : 1;
      counts[0] += weight.size() * positions;
      counts[1] += Models.nonZero(weight) * positions;
    }
    return out;
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
      // A second of warm-up: kernel selection, first-touch memory; with 0.3 s the first
      // measurement of a process still came out 35% high.
      return medianMillis(WARM_UP_NANOS, repeats, () -> forwardNanos(model, parameters, shape, channelsLast, scope));
    } finally {
      DjlRuntime.restoreGradMode(gradMode);
    }
  }

  /** One timed pass of a runtime: its wall time in nanoseconds. */
  @FunctionalInterface
  interface Pass<E extends Exception> {
    long nanos() throws E;
  }

  /**
   * The median wall time in milliseconds of {@code repeats} timed passes, after untimed ones (at
   * least {@value #WARM_UP_PASSES}, and for {@code warmUpNanos}): how DJL and ONNX Runtime are both
   * measured.
   */
  static <E extends Exception> double medianMillis(long warmUpNanos, int repeats, Pass<E> pass) throws E {
    long warmUntil = System.nanoTime() + warmUpNanos;
    for (int i = 0; i < WARM_UP_PASSES || System.nanoTime() < warmUntil; i++) {
      pass.nanos();
    }
    double[] millis = new double[repeats];
    for (int i = 0; i < repeats; i++) {
      millis[i] = pass.nanos() / 1e6;
    }
    Arrays.sort(millis);
    return millis[repeats / 2];
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
