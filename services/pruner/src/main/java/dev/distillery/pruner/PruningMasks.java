package dev.distillery.pruner;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.util.Pair;
import dev.distillery.common.JobFailedException;
import dev.distillery.common.ml.Architectures;
import dev.distillery.common.ml.ChannelGraph;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.JobModel;
import dev.distillery.common.ml.Models;
import dev.distillery.schemas.PruningSettings;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The masks of a pruned model, one per pruned tensor. They are applied once when pruning and again
 * after every optimizer step of fine-tuning; without that, pruned weights grow back.
 *
 * <p>{@code LN_STRUCTURED} prunes the channel groups of the architecture's {@link ChannelGraph}
 * rather than each tensor alone, as Torch-Pruning does: a group's channels are scored by the sum of
 * the Ln norms of each producer's output channel (for a group of one layer, {@code ln_structured}'s
 * own score and choice), and a pruned channel is zeroed in every producer, with the bias and the
 * batch norm's scale and shift, so its output is exactly zero everywhere and {@link ChannelRemoval}
 * can remove it. The head, whose output channels are the classes, is in no group.
 */
final class PruningMasks implements AutoCloseable {
  /**
   * A masked tensor.
   *
   * @param reported whether {@link #counts()} lists it: weight tensors, not the biases and batch-norm
   *     parameters structured pruning zeroes with them
   */
  private record Masked(String name, Parameter parameter, NDArray mask, boolean reported) {}

  private final NDManager manager;
  private final List<Masked> masks;

  private PruningMasks(NDManager manager, List<Masked> masks) {
    this.manager = manager;
    this.masks = masks;
  }

  /**
   * Computes the masks of step {@code step} of the request's schedule (see {@link SparsitySchedule})
   * from the model's current weights, and applies them. Pruned weights are zero, so a later step's
   * masks, at a higher sparsity, keep them pruned.
   */
  static PruningMasks compute(Model model, PruningSettings settings, int step) throws JobFailedException {
    JobModel.checkLayerNames(Models.prunableWeights(model), settings);
    NDManager manager = model.getNDManager().newSubManager();
    List<Masked> masks = new ArrayList<>();
    try {
      switch (settings.getMethod()) {
        case GLOBAL_UNSTRUCTURED -> {
          List<Pair<String, Parameter>> layers = unskipped(model, settings);
          double amount = SparsitySchedule.at(step, settings, settings.getTargetSparsity());
          List<NDArray> global = GlobalMagnitude.masks(layers.stream().map(p -> p.getValue().getArray()).toList(),
              amount, manager);
          for (int i = 0; i < layers.size(); i++) {
            masks.add(new Masked(layers.get(i).getKey(), layers.get(i).getValue(), global.get(i), true));
          }
        }
        case L1_UNSTRUCTURED -> {
          for (Pair<String, Parameter> layer : unskipped(model, settings)) {
            double amount = SparsitySchedule.at(step, settings,
                settings.getLayerSparsity().getOrDefault(layer.getKey(), settings.getTargetSparsity()));
            masks.add(new Masked(layer.getKey(), layer.getValue(),
                L1Unstructured.mask(layer.getValue().getArray(), amount, manager), true));
          }
        }
        case LN_STRUCTURED -> masks.addAll(channelGroups(model, settings, step, manager));
        default -> throw new JobFailedException("pruning.method", "not supported: " + settings.getMethod());
      }
    } catch (JobFailedException | RuntimeException e) {
      manager.close();
      throw e;
    }
    PruningMasks result = new PruningMasks(manager, masks);
    result.apply();
    return result;
  }

  /** The prunable weights the request does not skip. */
  private static List<Pair<String, Parameter>> unskipped(Model model, PruningSettings settings) {
    return Models.prunableWeights(model).stream().filter(p -> !settings.getSkipLayers().contains(p.getKey())).toList();
  }

  /**
   * LN_STRUCTURED's masks: per channel group, the channels of smallest summed Ln norm. A group is
   * named (in {@code layerSparsity} and {@code skipLayers}) by any of its producers' weights.
   */
  private static List<Masked> channelGroups(Model model, PruningSettings settings, int step, NDManager manager)
      throws JobFailedException {
    ChannelGraph graph = Architectures.graph(model.getName());
    Map<String, Parameter> parameters = new HashMap<>();
    model.getBlock().getParameters().forEach(p -> parameters.put(p.getKey(), p.getValue()));
    List<Masked> masks = new ArrayList<>();
    for (int group = 0; group < graph.groups().size(); group++) {
      List<ChannelGraph.Layer> producers = graph.producers(group);
      List<String> weights = producers.stream().filter(ChannelGraph.Layer::hasWeights)
          .map(ChannelGraph.Layer::weight).toList();
      if (weights.stream().anyMatch(settings.getSkipLayers()::contains)) {
        continue;
      }
      double target = weights.stream().filter(settings.getLayerSparsity()::containsKey).findFirst()
          .map(settings.getLayerSparsity()::get).orElse(settings.getTargetSparsity());
      double amount = SparsitySchedule.at(step, settings, target);
      int channels = Math.toIntExact(parameters.get(weights.get(0)).getArray().getShape().get(0));
      float[] kept = new float[channels];
      try (NDManager scope = manager.newSubManager()) {
        NDArray scores = null;
        for (String weight : weights) {
          NDArray norms = LnStructured.channelNorms(parameters.get(weight).getArray(), settings.getNorm(), scope);
          scores = scores == null ? norms : scores.add(norms);
        }
        for (long channel : LnStructured.keptChannels(scores, amount)) {
          kept[(int) channel] = 1;
        }
      }
      for (ChannelGraph.Layer producer : producers) {
        for (String name : producer.masked()) {
          Parameter parameter = parameters.get(name);
          masks.add(new Masked(name, parameter, channelMask(kept, parameter.getArray().getShape(), manager),
              producer.hasWeights() && name.equals(producer.weight())));
        }
      }
    }
    return masks;
  }

  /** A mask of {@code shape} (output channels first) keeping the channels {@code kept} marks. */
  private static NDArray channelMask(float[] kept, Shape shape, NDManager manager) {
    int size = Math.toIntExact(shape.size() / kept.length);
    float[] mask = new float[Math.toIntExact(shape.size())];
    for (int c = 0; c < kept.length; c++) {
      Arrays.fill(mask, c * size, (c + 1) * size, kept[c]);
    }
    return manager.create(mask, shape);
  }

  /** Zeroes the pruned weights in place. */
  void apply() {
    // In-place writes to leaf tensors that require gradients are refused while autograd records.
    boolean gradMode = DjlRuntime.inferenceMode();
    try {
      for (Masked m : masks) {
        m.parameter().getArray().muli(m.mask());
      }
    } finally {
      DjlRuntime.restoreGradMode(gradMode);
    }
  }

  /** Per-layer weights and zeros of the masked weight tensors, in model order. */
  List<LayerCount> counts() {
    List<LayerCount> counts = new ArrayList<>();
    for (Masked m : masks) {
      if (m.reported()) {
        NDArray array = m.parameter().getArray();
        counts.add(new LayerCount(m.name(), array.size(), array.size() - Models.nonZero(array)));
      }
    }
    return counts;
  }

  @Override
  public void close() {
    manager.close();
  }

  /** Weights and zeros of one layer's weight tensor. */
  record LayerCount(String name, long weights, long zeros) {}
}
