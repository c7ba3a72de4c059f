package dev.distillery.common.ml;

import ai.djl.ndarray.types.Shape;
import dev.distillery.schemas.InputSpec;

/**
 * How raw pixels (0..255) become a model's input: {@code (pixel * scale - mean) / std}, reshaped to
 * {@code shape} per sample when one is given.
 *
 * @param scale multiplies raw pixels first
 * @param mean subtracted next
 * @param std divides last
 * @param shape one sample's input shape, or empty for the dataset's [channels, height, width]
 */
public record Preprocessing(float scale, float mean, float std, long[] shape) {
  /** What the built-in architectures are trained with: Fashion-MNIST's mean and deviation. */
  public static final Preprocessing BUILT_IN = new Preprocessing(1 / 255f, 0.2860f, 0.3530f, new long[0]);

  /** A raw pixel (0..255) as the model's input value. */
  public float apply(int pixel) {
    return (pixel * scale - mean) / std;
  }

  /** The shape of a batch of {@code batch} inputs, for images of {@code imageShape}. */
  public Shape batchShape(int batch, Shape imageShape) {
    return new Shape(batch).addAll(shape.length == 0 ? imageShape : new Shape(shape));
  }

  public static Preprocessing of(InputSpec spec) {
    return new Preprocessing((float) spec.getPixelScale(), (float) spec.getMean(), (float) spec.getStd(),
        spec.getShape().stream().mapToLong(Integer::longValue).toArray());
  }
}
