package dev.distillery.pruner;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.nn.Parameter;
import ai.djl.util.Pair;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.Models;
import java.util.ArrayList;
import java.util.List;

/**
 * The masks of a pruned model, one per prunable weight tensor. They are applied once when pruning
 * and again after every optimizer step of fine-tuning; without that, pruned weights grow back.
 */
final class PruningMasks {
  private record Masked(String name, Parameter parameter, NDArray mask) {}

  private final List<Masked> masks;

  private PruningMasks(List<Masked> masks) {
    this.masks = masks;
  }

  /** Computes per-layer L1 masks at {@code amount} for every prunable weight and applies them. */
  static PruningMasks l1PerLayer(Model model, double amount) {
    List<Masked> masks = new ArrayList<>();
    for (Pair<String, Parameter> weight : Models.prunableWeights(model)) {
      NDArray array = weight.getValue().getArray();
      masks.add(new Masked(weight.getKey(), weight.getValue(), L1Unstructured.mask(array, amount, model.getNDManager())));
    }
    PruningMasks result = new PruningMasks(masks);
    result.apply();
    return result;
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

  /** Per-layer weights and zeros, in model order. */
  List<LayerCount> counts() {
    List<LayerCount> counts = new ArrayList<>();
    for (Masked m : masks) {
      NDArray array = m.parameter().getArray();
      counts.add(new LayerCount(m.name(), array.size(), array.size() - Models.nonZero(array)));
    }
    return counts;
  }

  /** Weights and zeros of one layer's weight tensor. */
  record LayerCount(String name, long weights, long zeros) {}
}
