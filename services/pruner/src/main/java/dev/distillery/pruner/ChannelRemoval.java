package dev.distillery.pruner;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.util.Pair;
import dev.distillery.common.ml.Models;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Turns a model whose pruned output channels are all zero (weights and bias, as {@code
 * LN_STRUCTURED}'s masks leave them) into a smaller dense model of the same architecture without
 * them: each hidden layer loses its zero channels and the next layer the inputs they fed. A zero
 * channel's activation is zero after ReLU and pooling, so it adds nothing to the next layer and the
 * smaller model computes the same outputs, up to the order of float additions.
 */
final class ChannelRemoval {
  private ChannelRemoval() {}

  /** The smaller model; {@code masked} is left as it was. */
  static Model removeZeroChannels(Model masked, String architecture, int classes, Shape imageShape) {
    List<Pair<String, Parameter>> layers = Models.prunableWeights(masked);
    Map<String, Parameter> parameters = parameterMap(masked);
    List<int[]> kept = new ArrayList<>();
    for (int i = 0; i < layers.size(); i++) {
      boolean head = i == layers.size() - 1;
      NDArray weight = layers.get(i).getValue().getArray();
      kept.add(head ? all(weight.getShape().get(0)) : nonZeroChannels(weight, bias(parameters, layers.get(i)).getArray()));
    }
    List<Integer> hidden = kept.subList(0, kept.size() - 1).stream().map(k -> k.length).toList();
    Model small = Models.create(architecture, hidden, classes, imageShape);
    Map<String, Parameter> target = parameterMap(small);
    try (NDManager scope = masked.getNDManager().newSubManager()) {
      for (int i = 0; i < layers.size(); i++) {
        NDArray weight = layers.get(i).getValue().getArray();
        int[] inputs = i == 0 ? all(weight.getShape().get(1))
            : expand(kept.get(i - 1), weight.getShape().get(1) / layers.get(i - 1).getValue().getArray().getShape().get(0));
        copy(select(weight, kept.get(i), inputs), target.get(layers.get(i).getKey()), scope);
        copy(select(bias(parameters, layers.get(i)).getArray(), kept.get(i), new int[] {0}),
            target.get(PruningMasks.biasOf(layers.get(i).getKey())), scope);
      }
    } catch (RuntimeException e) {
      small.close();
      throw e;
    }
    return small;
  }

  private static Map<String, Parameter> parameterMap(Model model) {
    Map<String, Parameter> map = new HashMap<>();
    model.getBlock().getParameters().forEach(p -> map.put(p.getKey(), p.getValue()));
    return map;
  }

  private static Parameter bias(Map<String, Parameter> parameters, Pair<String, Parameter> weight) {
    Parameter bias = parameters.get(PruningMasks.biasOf(weight.getKey()));
    if (bias == null) {
      throw new IllegalStateException("layer " + weight.getKey() + " has no bias");
    }
    return bias;
  }

  /** The output channels with a non-zero weight or bias; at least one, so every layer keeps a shape. */
  private static int[] nonZeroChannels(NDArray weight, NDArray bias) {
    int channels = Math.toIntExact(weight.getShape().get(0));
    int size = Math.toIntExact(weight.size() / channels);
    float[] w = weight.toFloatArray();
    float[] b = bias.toFloatArray();
    List<Integer> kept = new ArrayList<>();
    for (int c = 0; c < channels; c++) {
      boolean zero = b[c] == 0;
      for (int i = c * size; zero && i < (c + 1) * size; i++) {
        zero = w[i] == 0;
      }
      if (!zero) {
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
