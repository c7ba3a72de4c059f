package dev.distillery.common.ml;

import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.pooling.Pool;
import java.util.List;
import java.util.function.IntUnaryOperator;

/**
 * The built-in architectures, each scaled by a width multiplier applied to every hidden layer.
 *
 * <ul>
 *   <li>{@code mlp}: LeNet-300-100 (266K parameters at width 1 on 28x28 inputs)
 *   <li>{@code lenet5}: LeNet-5 with max pooling (62K)
 *   <li>{@code convnet}: four 3x3 convolutions and a 256-unit dense layer (0.9M), the teacher
 * </ul>
 */
public final class Architectures {
  public static final List<String> NAMES = List.of("mlp", "lenet5", "convnet");

  private Architectures() {}

  public static boolean isKnown(String name) {
    return NAMES.contains(name);
  }

  /** A new, uninitialised block of architecture {@code name} for {@code classes} classes. */
  public static Block build(String name, double width, int classes) {
    if (!(width > 0) || Double.isInfinite(width)) {
      throw new IllegalArgumentException("width must be a positive number, was " + width);
    }
    IntUnaryOperator w = units -> Math.max(1, (int) Math.round(units * width));
    switch (name) {
      case "mlp":
        return new SequentialBlock()
            .add(Blocks.batchFlattenBlock())
            .add(Linear.builder().setUnits(w.applyAsInt(300)).build())
            .add(Activation::relu)
            .add(Linear.builder().setUnits(w.applyAsInt(100)).build())
            .add(Activation::relu)
            .add(Linear.builder().setUnits(classes).build());
      case "lenet5":
        return new SequentialBlock()
            .add(conv(w.applyAsInt(6), 5, 2))
            .add(Activation::relu)
            .add(Pool.maxPool2dBlock(new Shape(2, 2), new Shape(2, 2)))
            .add(conv(w.applyAsInt(16), 5, 0))
            .add(Activation::relu)
            .add(Pool.maxPool2dBlock(new Shape(2, 2), new Shape(2, 2)))
            .add(Blocks.batchFlattenBlock())
            .add(Linear.builder().setUnits(w.applyAsInt(120)).build())
            .add(Activation::relu)
            .add(Linear.builder().setUnits(w.applyAsInt(84)).build())
            .add(Activation::relu)
            .add(Linear.builder().setUnits(classes).build());
      case "convnet":
        return new SequentialBlock()
            .add(conv(w.applyAsInt(32), 3, 1))
            .add(Activation::relu)
            .add(conv(w.applyAsInt(32), 3, 1))
            .add(Activation::relu)
            .add(Pool.maxPool2dBlock(new Shape(2, 2), new Shape(2, 2)))
            .add(conv(w.applyAsInt(64), 3, 1))
            .add(Activation::relu)
            .add(conv(w.applyAsInt(64), 3, 1))
            .add(Activation::relu)
            .add(Pool.maxPool2dBlock(new Shape(2, 2), new Shape(2, 2)))
            .add(Blocks.batchFlattenBlock())
            .add(Linear.builder().setUnits(w.applyAsInt(256)).build())
            .add(Activation::relu)
            .add(Linear.builder().setUnits(classes).build());
      default:
        throw new IllegalArgumentException("unknown architecture '" + name + "', known: " + NAMES);
    }
  }

  private static Block conv(int filters, int kernel, int padding) {
    return Conv2d.builder()
        .setFilters(filters)
        .setKernelShape(new Shape(kernel, kernel))
        .optPadding(new Shape(padding, padding))
        .build();
  }
}
