package dev.distillery.pruner;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Parameter;
import ai.djl.util.Pair;
import dev.distillery.common.JobFailedException;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.Models;
import dev.distillery.schemas.PruningMethod;
import dev.distillery.schemas.PruningSettings;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * The masks of a pruned model, one per prunable weight tensor. They are applied once when pruning
 * and again after every optimizer step of fine-tuning; without that, pruned weights grow back.
 */
final class PruningMasks implements AutoCloseable {
  private record Masked(String name, Parameter parameter, NDArray mask) {}

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
    List<Pair<String, Parameter>> layers = layers(model, settings);
    NDManager manager = model.getNDManager().newSubManager();
    List<Masked> masks = new ArrayList<>();
    if (settings.getMethod() == PruningMethod.GLOBAL_UNSTRUCTURED) {
      double amount = SparsitySchedule.at(step, settings, settings.getTargetSparsity());
      List<NDArray> global = GlobalMagnitude.masks(
          layers.stream().map(p -> p.getValue().getArray()).toList(), amount, manager);
      for (int i = 0; i < layers.size(); i++) {
        masks.add(new Masked(layers.get(i).getKey(), layers.get(i).getValue(), global.get(i)));
      }
    } else {
      for (Pair<String, Parameter> layer : layers) {
        double amount = SparsitySchedule.at(step, settings,
            settings.getLayerSparsity().getOrDefault(layer.getKey(), settings.getTargetSparsity()));
        NDArray weight = layer.getValue().getArray();
        NDArray mask = switch (settings.getMethod()) {
          case L1_UNSTRUCTURED -> L1Unstructured.mask(weight, amount, manager);
          case LN_STRUCTURED -> LnStructured.mask(weight, amount, settings.getNorm(), manager);
          default -> throw new JobFailedException("pruning.method", "not supported: " + settings.getMethod());
        };
        masks.add(new Masked(layer.getKey(), layer.getValue(), mask));
      }
    }
    PruningMasks result = new PruningMasks(manager, masks);
    result.apply();
    return result;
  }

  /** The prunable weights the request does not skip; overrides and skips must name real layers. */
  private static List<Pair<String, Parameter>> layers(Model model, PruningSettings settings) throws JobFailedException {
    List<Pair<String, Parameter>> all = Models.prunableWeights(model);
    Set<String> names = new LinkedHashSet<>();
    all.forEach(p -> names.add(p.getKey()));
    for (String name : settings.getLayerSparsity().keySet()) {
      if (!names.contains(name)) {
        throw new JobFailedException("pruning.layerSparsity", "no prunable layer '" + name + "'; layers: " + names);
      }
    }
    for (String name : settings.getSkipLayers()) {
      if (!names.contains(name)) {
        throw new JobFailedException("pruning.skipLayers", "no prunable layer '" + name + "'; layers: " + names);
      }
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
