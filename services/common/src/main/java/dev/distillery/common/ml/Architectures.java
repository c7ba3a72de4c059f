package dev.distillery.common.ml;

import ai.djl.ndarray.NDList;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Activation;
import ai.djl.nn.Block;
import ai.djl.nn.Blocks;
import ai.djl.nn.ParallelBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.SequentialBlock;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.nn.norm.BatchNorm;
import ai.djl.nn.pooling.Pool;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * The built-in architectures, each scaled by a width multiplier applied to every hidden layer.
 *
 * <ul>
 *   <li>{@code mlp}: LeNet-300-100 (266K parameters at width 1 on 28x28 inputs)
 *   <li>{@code lenet5}: LeNet-5 with max pooling (62K)
 *   <li>{@code convnet}: four 3x3 convolutions and a 256-unit dense layer (0.9M), the teacher
 *   <li>{@code simplecnn}: PyTorch's MNIST example network: conv 1->10 k5, max-pool, conv 10->20 k5,
 *       max-pool, fc 320->50, fc 50->10, ReLU after each hidden layer, without its dropout (21K)
 *   <li>{@code resnet20}: He et al. 2016's ResNet-20 for CIFAR (a 3x3 stem, three stages of three
 *       basic blocks at 16, 32 and 64 channels, batch norm, global average pooling), on 1x28x28; the
 *       first block of stages 2 and 3 halves the resolution and projects its shortcut with a 1x1
 *       convolution and batch norm (He's option B) (0.27M)
 *   <li>{@code bncnn}: a student designed for 28x28 images: three 3x3 convolutions (32, 64, 64
 *       channels), each with batch norm, ReLU and 2x2 max pooling (28, 14, 7, 3), then one dense
 *       layer (62K, as many as {@code lenet5}; 91.8% on hard labels in 8 epochs, bench/README.md)
 * </ul>
 *
 * Each comes with its {@link ChannelGraph}: which channels structured pruning removes together.
 */
public final class Architectures {
  public static final List<String> NAMES = List.of("mlp", "lenet5", "convnet", "simplecnn", "resnet20", "bncnn");

  private Architectures() {}

  public static boolean isKnown(String name) {
    return NAMES.contains(name);
  }

  /**
   * The sizes of the channel groups of architecture {@code name} at {@code width}, in the order
   * {@link ChannelGraph#groups()} names them: for the sequential architectures, each hidden layer's
   * output channels or units in order; for {@code resnet20}, the three stages' residual widths
   * followed by the inner width of each of the nine blocks.
   */
  public static List<Integer> hiddenUnits(String name, double width) {
    if (!(width > 0) || Double.isInfinite(width)) {
      throw new IllegalArgumentException("width must be a positive number, was " + width);
    }
    List<Integer> full = switch (name) {
      case "mlp" -> List.of(300, 100);
      case "lenet5" -> List.of(6, 16, 120, 84);
      case "convnet" -> List.of(32, 32, 64, 64, 256);
      case "simplecnn" -> List.of(10, 20, 50);
      case "resnet20" -> List.of(16, 32, 64, 16, 16, 16, 32, 32, 32, 64, 64, 64);
      case "bncnn" -> List.of(32, 64, 64);
      default -> throw new IllegalArgumentException("unknown architecture '" + name + "', known: " + NAMES);
    };
    return full.stream().map(units -> Math.max(1, (int) Math.round(units * width))).toList();
  }

  /** A new, uninitialised block of architecture {@code name} at {@code width} for {@code classes} classes. */
  public static Block build(String name, double width, int classes) {
    return build(name, hiddenUnits(name, width), classes);
  }

  /**
   * A new, uninitialised block of architecture {@code name} with the given channel group sizes
   * (see {@link #hiddenUnits}): the shape structured pruning leaves.
   */
  public static Block build(String name, List<Integer> hidden, int classes) {
    return assemble(name, hidden, classes).block;
  }

  /** The channel groups of architecture {@code name} (the same at every width). */
  public static ChannelGraph graph(String name) {
    Builder built = assemble(name, hiddenUnits(name, 1), 10);
    Map<Parameter, String> names = new IdentityHashMap<>();
    built.block.getParameters().forEach(p -> names.put(p.getValue(), p.getKey()));
    List<ChannelGraph.Layer> layers = new ArrayList<>();
    for (Recorded r : built.recorded) {
      Parameter first = r.block.getParameters().get(0).getValue();
      String key = names.get(first);
      layers.add(new ChannelGraph.Layer(r.kind, key.substring(0, key.lastIndexOf('_')), r.in, r.out));
    }
    List<String> groups = new ArrayList<>();
    for (int g = 0; g < built.hidden.size(); g++) {
      int group = g;
      groups.add(layers.stream().filter(l -> l.out() == group && l.hasWeights()).findFirst().orElseThrow().weight());
    }
    return new ChannelGraph(List.copyOf(groups), List.copyOf(layers));
  }

  private record Recorded(Block block, ChannelGraph.Kind kind, int in, int out) {}

  /** Builds a block while recording, for its graph, which groups each layer reads and writes. */
  private static final class Builder {
    final List<Integer> hidden;
    final int classes;
    final List<Recorded> recorded = new ArrayList<>();
    Block block;

    Builder(List<Integer> hidden, int classes) {
      this.hidden = hidden;
      this.classes = classes;
    }

    int size(int group) {
      return group == ChannelGraph.OUTSIDE ? classes : hidden.get(group);
    }

    Block conv(int in, int out, int kernel, int stride, int padding, boolean bias) {
      Block conv = Conv2d.builder().setFilters(size(out)).setKernelShape(new Shape(kernel, kernel))
          .optStride(new Shape(stride, stride)).optPadding(new Shape(padding, padding)).optBias(bias).build();
      recorded.add(new Recorded(conv, bias ? ChannelGraph.Kind.CONVOLUTION_WITH_BIAS : ChannelGraph.Kind.CONVOLUTION,
          in, out));
      return conv;
    }

    Block batchNorm(int group) {
      Block norm = BatchNorm.builder().build();
      recorded.add(new Recorded(norm, ChannelGraph.Kind.BATCH_NORM, group, group));
      return norm;
    }

    Block dense(int in, int out) {
      Block dense = Linear.builder().setUnits(size(out)).build();
      recorded.add(new Recorded(dense, ChannelGraph.Kind.DENSE, in, out));
      return dense;
    }
  }

  private static Builder assemble(String name, List<Integer> hidden, int classes) {
    int expected = hiddenUnits(name, 1).size();
    if (hidden.size() != expected || hidden.stream().anyMatch(units -> units < 1)) {
      throw new IllegalArgumentException(name + " needs " + expected + " positive hidden layer sizes, was " + hidden);
    }
    Builder b = new Builder(hidden, classes);
    int out = ChannelGraph.OUTSIDE;
    b.block = switch (name) {
      case "mlp" -> new SequentialBlock()
          .add(Blocks.batchFlattenBlock())
          .add(b.dense(out, 0)).add(Activation::relu)
          .add(b.dense(0, 1)).add(Activation::relu)
          .add(b.dense(1, out));
      case "lenet5" -> new SequentialBlock()
          .add(b.conv(out, 0, 5, 1, 2, true)).add(Activation::relu).add(maxPool())
          .add(b.conv(0, 1, 5, 1, 0, true)).add(Activation::relu).add(maxPool())
          .add(Blocks.batchFlattenBlock())
          .add(b.dense(1, 2)).add(Activation::relu)
          .add(b.dense(2, 3)).add(Activation::relu)
          .add(b.dense(3, out));
      case "convnet" -> new SequentialBlock()
          .add(b.conv(out, 0, 3, 1, 1, true)).add(Activation::relu)
          .add(b.conv(0, 1, 3, 1, 1, true)).add(Activation::relu).add(maxPool())
          .add(b.conv(1, 2, 3, 1, 1, true)).add(Activation::relu)
          .add(b.conv(2, 3, 3, 1, 1, true)).add(Activation::relu).add(maxPool())
          .add(Blocks.batchFlattenBlock())
          .add(b.dense(3, 4)).add(Activation::relu)
          .add(b.dense(4, out));
      case "simplecnn" -> new SequentialBlock()
          .add(b.conv(out, 0, 5, 1, 0, true)).add(maxPool()).add(Activation::relu)
          .add(b.conv(0, 1, 5, 1, 0, true)).add(maxPool()).add(Activation::relu)
          .add(Blocks.batchFlattenBlock())
          .add(b.dense(1, 2)).add(Activation::relu)
          .add(b.dense(2, out));
      case "bncnn" -> new SequentialBlock()
          .add(b.conv(out, 0, 3, 1, 1, false)).add(b.batchNorm(0)).add(Activation::relu).add(maxPool())
          .add(b.conv(0, 1, 3, 1, 1, false)).add(b.batchNorm(1)).add(Activation::relu).add(maxPool())
          .add(b.conv(1, 2, 3, 1, 1, false)).add(b.batchNorm(2)).add(Activation::relu).add(maxPool())
          .add(Blocks.batchFlattenBlock())
          .add(b.dense(2, out));
      default -> resnet20(b);
    };
    return b;
  }

  /** Groups 0-2: the stages' residual streams; 3-11: the blocks' inner channels. */
  private static Block resnet20(Builder b) {
    SequentialBlock net = new SequentialBlock()
        .add(b.conv(ChannelGraph.OUTSIDE, 0, 3, 1, 1, false)).add(b.batchNorm(0)).add(Activation::relu);
    int stream = 0;
    for (int stage = 0; stage < 3; stage++) {
      for (int block = 0; block < 3; block++) {
        int inner = 3 + stage * 3 + block;
        boolean downsample = stage > 0 && block == 0;
        int stride = downsample ? 2 : 1;
        Block main = new SequentialBlock()
            .add(b.conv(stream, inner, 3, stride, 1, false)).add(b.batchNorm(inner)).add(Activation::relu)
            .add(b.conv(inner, stage, 3, 1, 1, false)).add(b.batchNorm(stage));
        Block shortcut = downsample
            ? new SequentialBlock().add(b.conv(stream, stage, 1, stride, 0, false)).add(b.batchNorm(stage))
            : Blocks.identityBlock();
        net.add(new ParallelBlock(branches -> new NDList(
                branches.get(0).singletonOrThrow().add(branches.get(1).singletonOrThrow())), List.of(main, shortcut)))
            .add(Activation::relu);
        stream = stage;
      }
    }
    return net.add(Pool.globalAvgPool2dBlock()).add(Blocks.batchFlattenBlock()).add(b.dense(2, ChannelGraph.OUTSIDE));
  }

  private static Block maxPool() {
    return Pool.maxPool2dBlock(new Shape(2, 2), new Shape(2, 2));
  }
}
