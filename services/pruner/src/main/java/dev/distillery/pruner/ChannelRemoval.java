package dev.distillery.pruner;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import dev.distillery.common.ml.Architectures;
import dev.distillery.common.ml.ChannelGraph;
import dev.distillery.common.ml.Models;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Turns a model whose pruned channels are all zero (as {@code LN_STRUCTURED}'s masks leave them)
 * into a smaller dense model of the same architecture without them, by its {@link ChannelGraph}:
 * each channel group loses its zero channels, in every layer that writes it (rows of weights,
 * biases, batch-norm parameters and statistics) and every layer that reads it (input columns; for a
 * dense layer after a flattened convolution, the positions of each channel). A zero channel adds
 * nothing to what reads it (zero after ReLU, pooling and the residual sum of zeros), so the smaller
 * model computes the same outputs, up to the order of float additions.
 */
final class ChannelRemoval {
  private ChannelRemoval() {}

  /** The smaller model; {@code masked} is left as it was. */
  static Model removeZeroChannels(Model masked, String architecture, int classes, Shape imageShape) {
    ChannelGraph graph = Architectures.graph(architecture);
    Map<String, Parameter> parameters = parameterMap(masked);
    List<int[]> kept = new ArrayList<>();
    for (int group = 0; group < graph.groups().size(); group++) {
      kept.add(nonZeroChannels(graph.producers(group), parameters));
    }
    Model small = Models.create(architecture, kept.stream().map(k -> k.length).toList(), classes, imageShape);
    Map<String, Parameter> target = parameterMap(small);
    try (NDManager scope = masked.getNDManager().newSubManager()) {
      for (ChannelGraph.Layer layer : graph.layers()) {
        for (String name : layer.perOutputChannel()) {
          NDArray tensor = parameters.get(name).getArray();
          int[] rows = layer.out() == ChannelGraph.OUTSIDE ? all(tensor.getShape().get(0)) : kept.get(layer.out());
          boolean readsInput = name.equals(layer.weight()) && layer.hasWeights();
          int[] columns = !readsInput ? new int[] {0}
              : layer.in() == ChannelGraph.OUTSIDE ? all(tensor.getShape().get(1))
              : expand(kept.get(layer.in()), tensor.getShape().get(1) / groupSize(graph, layer.in(), parameters));
          copy(select(tensor, rows, columns), target.get(name), scope);
        }
      }
    } catch (RuntimeException e) {
      small.close();
      throw e;
    }
    return small;
  }

  private static long groupSize(ChannelGraph graph, int group, Map<String, Parameter> parameters) {
    return parameters.get(graph.groups().get(group)).getArray().getShape().get(0);
  }

  private static Map<String, Parameter> parameterMap(Model model) {
    Map<String, Parameter> map = new HashMap<>();
    model.getBlock().getParameters().forEach(p -> map.put(p.getKey(), p.getValue()));
    return map;
  }

  /**
   * The channels of a group with a non-zero entry in any producer's masked parameters; at least
   * one, so every layer keeps a shape.
   */
  private static int[] nonZeroChannels(List<ChannelGraph.Layer> producers, Map<String, Parameter> parameters) {
    boolean[] used = null;
    for (ChannelGraph.Layer producer : producers) {
      for (String name : producer.masked()) {
        NDArray tensor = parameters.get(name).getArray();
        int channels = Math.toIntExact(tensor.getShape().get(0));
        int size = Math.toIntExact(tensor.size() / channels);
        float[] values = tensor.toFloatArray();
        used = used == null ? new boolean[channels] : used;
        for (int i = 0; i < values.length; i++) {
          used[i / size] |= values[i] != 0;
        }
      }
    }
    List<Integer> kept = new ArrayList<>();
    for (int c = 0; c < used.length; c++) {
      if (used[c]) {
        kept.add(c);
      }
    }
    return kept.isEmpty() ? new int[] {0} : kept.stream().mapToInt(Integer::intValue).toArray();
  }
  /**
   * The input positions fed by the kept channels of the layer before, each feeding {@code block}
   * consecutive positions: 1 for a convolution or dense layer after its like, height x width for a
   * dense layer after a flattened convolution.
   */
  private static int[] expand(int[] channels, long block) {
    int[] positions = new int[Math.toIntExact(channels.length * block)];
    for (int c = 0; c < channels.length; c++) {
      for (int j = 0; j < block; j++) {
        positions[Math.toIntExact(c * block + j)] = Math.toIntExact(channels[c] * block + j);
      }
    }
    return positions;
  }

  /**
   * The rows {@code rows} and columns {@code columns} of a tensor laid out as (out, in, rest...); a
   * bias is (out) and passes {@code columns = {0}}.
   */
  private static Selected select(NDArray tensor, int[] rows, int[] columns) {
    Shape shape = tensor.getShape();
    long in = shape.dimension() > 1 ? shape.get(1) : 1;
    int rest = Math.toIntExact(tensor.size() / (shape.get(0) * in));
    float[] from = tensor.toFloatArray();
    float[] to = new float[rows.length * columns.length * rest];
    int k = 0;
    for (int row : rows) {
      for (int column : columns) {
        int start = Math.toIntExact((row * in + column) * rest);
        System.arraycopy(from, start, to, k, rest);
        k += rest;
      }
    }
    long[] dims = shape.getShape().clone(); // getShape() is the Shape's own array
    dims[0] = rows.length;
    if (dims.length > 1) {
      dims[1] = columns.length;
    }
    return new Selected(to, new Shape(dims));
  }

  private record Selected(float[] values, Shape shape) {}

  private static void copy(Selected selected, Parameter target, NDManager scope) {
    if (!target.getArray().getShape().equals(selected.shape())) {
      throw new IllegalStateException(target.getName() + " is " + target.getArray().getShape() + ", copying "
          + selected.shape());
    }
    scope.create(selected.values(), selected.shape()).copyTo(target.getArray());
  }

  private static int[] all(long count) {
    int[] all = new int[Math.toIntExact(count)];
    for (int i = 0; i < all.length; i++) {
      all[i] = i;
    }
    return all;
  }
}
