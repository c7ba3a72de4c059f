package dev.distillery.pruner;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Parameter;
import ai.djl.util.Pair;
import dev.distillery.common.JobFailedException;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.JobModel;
import dev.distillery.common.ml.Models;
import dev.distillery.schemas.PruningMethod;
import dev.distillery.schemas.PruningSettings;
import java.util.ArrayList;
import java.util.List;

/**
 * The masks of a pruned model, one per prunable weight tensor. They are applied once when pruning
 * and again after every optimizer step of fine-tuning; without that, pruned weights grow back.
 *
 * <p>{@code LN_STRUCTURED} differs from {@code ln_structured} in two ways, both because its
 * channels are then removed ({@link ChannelRemoval}): it also masks the bias of each pruned channel,
 * so the channel's output is exactly zero rather than a constant that removal would drop; and it
 * leaves the head alone, whose output channels are the classes.
 */
final class PruningMasks implements AutoCloseable {
  /** A masked weight tensor and, for structured pruning, the bias of its channels with their mask. */
  private record Masked(String name, Parameter parameter, NDArray mask, Parameter bias, NDArray biasMask) {}

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
    List<Pair<String, Parameter>> layers = layers(model, settings);
    NDManager manager = model.getNDManager().newSubManager();
    List<Masked> masks = new ArrayList<>();
    if (settings.getMethod() == PruningMethod.GLOBAL_UNSTRUCTURED) {
      double amount = SparsitySchedule.at(step, settings, settings.getTargetSparsity());
      List<NDArray> global = GlobalMagnitude.masks(
          layers.stream().map(p -> p.getValue().getArray()).toList(), amount, manager);
      for (int i = 0; i < layers.size(); i++) {
        masks.add(new Masked(layers.get(i).getKey(), layers.get(i).getValue(), global.get(i), null, null));
      }
    } else {
      for (Pair<String, Parameter> layer : layers) {
        double amount = SparsitySchedule.at(step, settings,
            settings.getLayerSparsity().getOrDefault(layer.getKey(), settings.getTargetSparsity()));
        NDArray weight = layer.getValue().getArray();
        masks.add(switch (settings.getMethod()) {
          case L1_UNSTRUCTURED -> new Masked(layer.getKey(), layer.getValue(),
              L1Unstructured.mask(weight, amount, manager), null, null);
          case LN_STRUCTURED -> {
            NDArray mask = LnStructured.mask(weight, amount, settings.getNorm(), manager);
            Parameter bias = model.getBlock().getParameters().get(biasOf(layer.getKey()));
            yield new Masked(layer.getKey(), layer.getValue(), mask, bias,
                mask.reshape(weight.getShape().get(0), -1).max(new int[] {1}));
          }
          default -> throw new JobFailedException("pruning.method", "not supported: " + settings.getMethod());
        });
      }
    }
    PruningMasks result = new PruningMasks(manager, masks);
    result.apply();
    return result;
  }

  /** The bias of the layer whose weight is named {@code weight}, e.g. {@code 01Conv2d_bias}. */
  static String biasOf(String weight) {
    return weight.replaceFirst("_weight$", "_bias");
  }

  /** The prunable weights the request does not skip, without the head for structured pruning. */
  private static List<Pair<String, Parameter>> layers(Model model, PruningSettings settings) throws JobFailedException {
    List<Pair<String, Parameter>> all = Models.prunableWeights(model);
    if (settings.getMethod() == PruningMethod.LN_STRUCTURED) {
      String head = all.get(all.size() - 1).getKey();
      if (settings.getLayerSparsity().containsKey(head)) {
        throw new JobFailedException("pruning.layerSparsity",
            "the head '" + head + "' cannot be pruned structurally: its output channels are the classes");
      }
      all = all.subList(0, all.size() - 1);
    }
    return all.stream().filter(p -> !settings.getSkipLayers().contains(p.getKey())).toList();
  }

  /** Zeroes the pruned weights in place. */
  void apply() {
    // In-place writes to leaf tensors that require gradients are refused while autograd records.
    boolean gradMode = DjlRuntime.inferenceMode();
    try {
      for (Masked m : masks) {
        m.parameter().getArray().muli(m.mask());
        if (m.bias() != null) {
          m.bias().getArray().muli(m.biasMask());
        }
      }
    } finally {
      DjlRuntime.restoreGradMode(gradMode);
    }
  }

  /** Per-layer weights and zeros of the masked layers, in model order. */
  List<LayerCount> counts() {
    List<LayerCount> counts = new ArrayList<>();
    for (Masked m : masks) {
      NDArray array = m.parameter().getArray();
      counts.add(new LayerCount(m.name(), array.size(), array.size() - Models.nonZero(array)));
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
