package dev.distillery.common.ml;

import java.util.List;

/**
 * Which channels of a built-in architecture must be pruned together, as Torch-Pruning's DepGraph
 * groups them: a group is one space of channels, written by its producers (the convolutions or
 * dense layers whose output channels they are, with the batch norms that scale them) and read by
 * its consumers (the layers that take them as input channels). Channels joined by a residual
 * addition are one group, since the sum must keep its width; a convolution's channels and its batch
 * norm's are one group. Removing channel {@code c} of a group removes output {@code c} of every
 * producer and input {@code c} of every consumer, and nothing else changes.
 *
 * @param groups the hidden channel groups in {@link Architectures#hiddenUnits} order, each named by
 *     its first producer's weight (the name {@code layerSparsity} and {@code skipLayers} use)
 * @param layers every layer with parameters, in the block's order
 */
public record ChannelGraph(List<String> groups, List<Layer> layers) {
  /** {@link Layer#in()} of a layer reading the image, {@link Layer#out()} of one writing the classes. */
  public static final int OUTSIDE = -1;

  /** What a layer's parameters are. */
  public enum Kind {
    /** weight (out, in, kh, kw), no bias: followed by a batch norm */
    CONVOLUTION,
    /** weight (out, in, kh, kw) and bias (out) */
    CONVOLUTION_WITH_BIAS,
    /** weight (out, in) and bias (out); in may be a flattened (channels x positions) */
    DENSE,
    /** gamma, beta, runningMean, runningVar, all (channels) */
    BATCH_NORM
  }

  /**
   * A layer with parameters.
   *
   * @param prefix its parameters' names without the suffix ({@code prefix + "_weight"})
   * @param in the group it reads (OUTSIDE: the image; unused for a batch norm)
   * @param out the group it writes (OUTSIDE: the classes)
   */
  public record Layer(Kind kind, String prefix, int in, int out) {
    public String weight() {
      return prefix + (kind == Kind.BATCH_NORM ? "_gamma" : "_weight");
    }

    /**
     * What structured pruning zeroes of a pruned channel: enough for the channel's output to be
     * exactly zero (a batch norm's statistics need not be, once its scale and shift are).
     */
    public List<String> masked() {
      return kind == Kind.BATCH_NORM ? List.of(prefix + "_gamma", prefix + "_beta") : perOutputChannel();
    }

    /** The names of the parameters with one entry per output channel: what removing a channel shrinks. */
    public List<String> perOutputChannel() {
      return switch (kind) {
        case CONVOLUTION -> List.of(prefix + "_weight");
        case CONVOLUTION_WITH_BIAS, DENSE -> List.of(prefix + "_weight", prefix + "_bias");
        case BATCH_NORM -> List.of(prefix + "_gamma", prefix + "_beta", prefix + "_runningMean", prefix + "_runningVar");
      };
    }

    public boolean hasWeights() {
      return kind != Kind.BATCH_NORM;
    }
  }

  /** The layers that write group {@code group}. */
  public List<Layer> producers(int group) {
    return layers.stream().filter(l -> l.out() == group).toList();
  }

  /** The group named {@code name} by any of its producers' weights, or -1. */
  public int groupOf(String weightName) {
    for (Layer layer : layers) {
      if (layer.out() != OUTSIDE && layer.hasWeights() && layer.weight().equals(weightName)) {
        return layer.out();
      }
    }
    return -1;
  }
}
