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

  /**
   * The sizes of the hidden layers (a convolution's output channels, a dense layer's units), in
   * order, of architecture {@code name} at {@code width}: each of its prunable layers but the head.
   */
  public static List<Integer> hiddenUnits(String name, double width) {
    if (!(width > 0) || Double.isInfinite(width)) {
      throw new IllegalArgumentException("width must be a positive number, was " + width);
    }
    List<Integer> full = switch (name) {
      case "mlp" -> List.of(300, 100);
      case "lenet5" -> List.of(6, 16, 120, 84);
      case "convnet" -> List.of(32, 32, 64, 64, 256);
      default -> throw new IllegalArgumentException("unknown architecture '" + name + "', known: " + NAMES);
    };
    return full.stream().map(units -> Math.max(1, (int) Math.round(units * width))).toList();
  }

  /** A new, uninitialised block of architecture {@code name} at {@code width} for {@code classes} classes. */
  public static Block build(String name, double width, int classes) {
    return build(name, hiddenUnits(name, width), classes);
  }

  /**
   * A new, uninitialised block of architecture {@code name} with the given hidden layer sizes (see
   * {@link #hiddenUnits}): the shape structured pruning leaves.
   */
  public static Block build(String name, List<Integer> hidden, int classes) {
    int expected = hiddenUnits(name, 1).size();
    if (hidden.size() != expected || hidden.stream().anyMatch(units -> units < 1)) {
      throw new IllegalArgumentException(name + " needs " + expected + " positive hidden layer sizes, was " + hidden);
    }
    IntUnaryOperator h = hidden::get;
    switch (name) {
      case "mlp":
        return new SequentialBlock()
            .add(Blocks.batchFlattenBlock())
            .add(Linear.builder().setUnits(h.applyAsInt(0)).build())
            .add(Activation::relu)
            .add(Linear.builder().setUnits(h.applyAsInt(1)).build())
            .add(Activation::relu)
            .add(Linear.builder().setUnits(classes).build());
      case "lenet5":
        return new SequentialBlock()
            .add(conv(h.applyAsInt(0), 5, 2))
            .add(Activation::relu)
            .add(Pool.maxPool2dBlock(new Shape(2, 2), new Shape(2, 2)))
            .add(conv(h.applyAsInt(1), 5, 0))
            .add(Activation::relu)
            .add(Pool.maxPool2dBlock(new Shape(2, 2), new Shape(2, 2)))
            .add(Blocks.batchFlattenBlock())
            .add(Linear.builder().setUnits(h.applyAsInt(2)).build())
            .add(Activation::relu)
            .add(Linear.builder().setUnits(h.applyAsInt(3)).build())
            .add(Activation::relu)
            .add(Linear.builder().setUnits(classes).build());
      default: // convnet
        return new SequentialBlock()
            .add(conv(h.applyAsInt(0), 3, 1))
            .add(Activation::relu)
            .add(conv(h.applyAsInt(1), 3, 1))
            .add(Activation::relu)
            .add(Pool.maxPool2dBlock(new Shape(2, 2), new Shape(2, 2)))
            .add(conv(h.applyAsInt(2), 3, 1))
            .add(Activation::relu)
            .add(conv(h.applyAsInt(3), 3, 1))
            .add(Activation::relu)
            .add(Pool.maxPool2dBlock(new Shape(2, 2), new Shape(2, 2)))
            .add(Blocks.batchFlattenBlock())
            .add(Linear.builder().setUnits(h.applyAsInt(4)).build())
            .add(Activation::relu)
            .add(Linear.builder().setUnits(classes).build());
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
