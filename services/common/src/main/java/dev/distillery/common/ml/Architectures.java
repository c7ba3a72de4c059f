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
    return define(name, hidden, classes).block();
  }

  /** The channel groups of architecture {@code name} (the same at every width). */
  public static ChannelGraph graph(String name) {
    Definition definition = define(name, hiddenUnits(name, 1), 10);
    List<ChannelGraph.Layer> layers = new ArrayList<>();
    for (Layer layer : definition.layers()) {
      layers.add(new ChannelGraph.Layer(layer.kind(), definition.prefix(layer), layer.in(), layer.out()));
    }
    List<String> groups = new ArrayList<>();
    for (int g = 0; g < definition.hidden().size(); g++) {
      int group = g;
      groups.add(layers.stream().filter(l -> l.out() == group && l.hasWeights()).findFirst().orElseThrow().weight());
    }
    return new ChannelGraph(List.copyOf(groups), List.copyOf(layers));
  }

  /**
   * One operation of a built-in architecture. Each architecture is written once, as a tree of
   * these; DJL's blocks ({@link #build}) and the ONNX graph ({@link OnnxExport}) are both made from it.
   */
  public sealed interface Op permits Chain, Layer, Relu, MaxPool, Flatten, GlobalAveragePool, Residual {}

  /** Operations applied in order (a {@code SequentialBlock}). */
  public record Chain(List<Op> ops) implements Op {}

  /**
   * A layer with parameters. Two layers of one architecture may have equal fields: maps keyed by
   * layer are identity maps.
   *
   * @param kind what its parameters are
   * @param in the channel group it reads ({@link ChannelGraph#OUTSIDE}: the image)
   * @param out the group it writes ({@link ChannelGraph#OUTSIDE}: the classes)
   * @param units its output channels or units (for a batch norm: its channels)
   * @param kernel a convolution's square kernel size (0 otherwise)
   * @param stride a convolution's stride
   * @param padding a convolution's zero padding on each side
   */
  public record Layer(ChannelGraph.Kind kind, int in, int out, int units, int kernel, int stride, int padding)
      implements Op {}

  public record Relu() implements Op {}

  /** Max pooling over {@code size x size} windows with stride {@code size}, no padding. */
  public record MaxPool(int size) implements Op {}

  /** Flattens each sample to a vector. */
  public record Flatten() implements Op {}

  /** The mean of each channel over its positions. */
  public record GlobalAveragePool() implements Op {}

  /** {@code main(x) + shortcut(x)}; a null shortcut is the identity. */
  public record Residual(Op main, Op shortcut) implements Op {}

  /**
   * An architecture at given sizes: its operations, the DJL block made from them, and the name
   * prefix of each layer's parameters in that block ({@code prefix + "_weight"}).
   */
  public record Definition(Op root, Block block, List<Layer> layers, Map<Layer, String> prefixes, List<Integer> hidden) {
    public String prefix(Layer layer) {
      return prefixes.get(layer);
    }
  }

  /** Architecture {@code name} with the given channel group sizes (see {@link #hiddenUnits}). */
  public static Definition define(String name, List<Integer> hidden, int classes) {
    int expected = hiddenUnits(name, 1).size();
    if (hidden.size() != expected || hidden.stream().anyMatch(units -> units < 1)) {
      throw new IllegalArgumentException(name + " needs " + expected + " positive hidden layer sizes, was " + hidden);
    }
    Builder b = new Builder(hidden, classes);
    Op root = switch (name) {
      case "mlp" -> b.chain(new Flatten(),
          b.dense(OUTSIDE, 0), RELU,
          b.dense(0, 1), RELU,
          b.dense(1, OUTSIDE));
      case "lenet5" -> b.chain(
          b.conv(OUTSIDE, 0, 5, 1, 2, true), RELU, MAX_POOL,
          b.conv(0, 1, 5, 1, 0, true), RELU, MAX_POOL,
          new Flatten(),
          b.dense(1, 2), RELU,
          b.dense(2, 3), RELU,
          b.dense(3, OUTSIDE));
      case "convnet" -> b.chain(
          b.conv(OUTSIDE, 0, 3, 1, 1, true), RELU,
          b.conv(0, 1, 3, 1, 1, true), RELU, MAX_POOL,
          b.conv(1, 2, 3, 1, 1, true), RELU,
          b.conv(2, 3, 3, 1, 1, true), RELU, MAX_POOL,
          new Flatten(),
          b.dense(3, 4), RELU,
          b.dense(4, OUTSIDE));
      case "simplecnn" -> b.chain(
          b.conv(OUTSIDE, 0, 5, 1, 0, true), MAX_POOL, RELU,
          b.conv(0, 1, 5, 1, 0, true), MAX_POOL, RELU,
          new Flatten(),
          b.dense(1, 2), RELU,
          b.dense(2, OUTSIDE));
      case "bncnn" -> b.chain(
          b.conv(OUTSIDE, 0, 3, 1, 1, false), b.batchNorm(0), RELU, MAX_POOL,
          b.conv(0, 1, 3, 1, 1, false), b.batchNorm(1), RELU, MAX_POOL,
          b.conv(1, 2, 3, 1, 1, false), b.batchNorm(2), RELU, MAX_POOL,
          new Flatten(),
          b.dense(2, OUTSIDE));
      default -> resnet20(b);
    };
    Map<Layer, Block> blocks = new IdentityHashMap<>();
    Block block = toBlock(root, blocks);
    Map<Parameter, String> names = new IdentityHashMap<>();
    block.getParameters().forEach(p -> names.put(p.getValue(), p.getKey()));
    Map<Layer, String> prefixes = new IdentityHashMap<>();
    for (Layer layer : b.layers) {
      String key = names.get(blocks.get(layer).getParameters().get(0).getValue());
      prefixes.put(layer, key.substring(0, key.lastIndexOf('_')));
    }
    return new Definition(root, block, List.copyOf(b.layers), prefixes, List.copyOf(hidden));
  }

  private static final Op RELU = new Relu();
  private static final Op MAX_POOL = new MaxPool(2);
  private static final int OUTSIDE = ChannelGraph.OUTSIDE;

  /** Makes layers at the requested sizes, recording them in the order they are made. */
  private static final class Builder {
    final List<Integer> hidden;
    final int classes;
    final List<Layer> layers = new ArrayList<>();

    Builder(List<Integer> hidden, int classes) {
      this.hidden = hidden;
      this.classes = classes;
    }

    int size(int group) {
      return group == OUTSIDE ? classes : hidden.get(group);
    }

    Chain chain(Op... ops) {
      return new Chain(List.of(ops));
    }

    Layer conv(int in, int out, int kernel, int stride, int padding, boolean bias) {
      return add(new Layer(bias ? ChannelGraph.Kind.CONVOLUTION_WITH_BIAS : ChannelGraph.Kind.CONVOLUTION,
          in, out, size(out), kernel, stride, padding));
    }

    Layer batchNorm(int group) {
      return add(new Layer(ChannelGraph.Kind.BATCH_NORM, group, group, size(group), 0, 0, 0));
    }

    Layer dense(int in, int out) {
      return add(new Layer(ChannelGraph.Kind.DENSE, in, out, size(out), 0, 0, 0));
    }

    private Layer add(Layer layer) {
      layers.add(layer);
      return layer;
    }
  }

  /** Groups 0-2: the stages' residual streams; 3-11: the blocks' inner channels. */
  private static Op resnet20(Builder b) {
    List<Op> net = new ArrayList<>(List.of(b.conv(OUTSIDE, 0, 3, 1, 1, false), b.batchNorm(0), RELU));
    int stream = 0;
    for (int stage = 0; stage < 3; stage++) {
      for (int block = 0; block < 3; block++) {
        int inner = 3 + stage * 3 + block;
        boolean downsample = stage > 0 && block == 0;
        int stride = downsample ? 2 : 1;
        Op main = b.chain(
            b.conv(stream, inner, 3, stride, 1, false), b.batchNorm(inner), RELU,
            b.conv(inner, stage, 3, 1, 1, false), b.batchNorm(stage));
        Op shortcut = downsample ? b.chain(b.conv(stream, stage, 1, stride, 0, false), b.batchNorm(stage)) : null;
        net.add(new Residual(main, shortcut));
        net.add(RELU);
        stream = stage;
      }
    }
    net.addAll(List.of(new GlobalAveragePool(), new Flatten(), b.dense(2, OUTSIDE)));
    return new Chain(List.copyOf(net));
  }

  /** DJL's block for {@code op}; {@code blocks} receives each layer's. */
  private static Block toBlock(Op op, Map<Layer, Block> blocks) {
    if (op instanceof Chain chain) {
      SequentialBlock sequence = new SequentialBlock();
      chain.ops().forEach(child -> sequence.add(toBlock(child, blocks)));
      return sequence;
    }
    if (op instanceof Layer layer) {
      Block block = switch (layer.kind()) {
        case CONVOLUTION, CONVOLUTION_WITH_BIAS -> Conv2d.builder().setFilters(layer.units())
            .setKernelShape(new Shape(layer.kernel(), layer.kernel()))
            .optStride(new Shape(layer.stride(), layer.stride()))
            .optPadding(new Shape(layer.padding(), layer.padding()))
            .optBias(layer.kind() == ChannelGraph.Kind.CONVOLUTION_WITH_BIAS).build();
        case DENSE -> Linear.builder().setUnits(layer.units()).build();
        case BATCH_NORM -> BatchNorm.builder().build();
      };
      blocks.put(layer, block);
      return block;
    }
    if (op instanceof MaxPool pool) {
      return Pool.maxPool2dBlock(new Shape(pool.size(), pool.size()), new Shape(pool.size(), pool.size()));
    }
    if (op instanceof Residual residual) {
      return new ParallelBlock(branches -> new NDList(
          branches.get(0).singletonOrThrow().add(branches.get(1).singletonOrThrow())),
          List.of(toBlock(residual.main(), blocks),
              residual.shortcut() == null ? Blocks.identityBlock() : toBlock(residual.shortcut(), blocks)));
    }
    if (op instanceof Relu) {
      return Activation.reluBlock();
    }
    if (op instanceof Flatten) {
      return Blocks.batchFlattenBlock();
    }
    return Pool.globalAvgPool2dBlock();
  }
}
