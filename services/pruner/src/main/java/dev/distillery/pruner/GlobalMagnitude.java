package dev.distillery.pruner;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Magnitude pruning across tensors with the semantics of PyTorch's
 * {@code torch.nn.utils.prune.global_unstructured(..., pruning_method=L1Unstructured)}: the tensors
 * are flattened and concatenated in the order given, and {@link L1Unstructured} prunes
 * {@code round(amount * total)} entries of the whole. One threshold for all layers, so layers of
 * small weights lose more than others.
 */
public final class GlobalMagnitude {
  private GlobalMagnitude() {}

  /** 0/1 masks, one per tensor of {@code weights} and of its shape, in {@code manager}. */
  public static List<NDArray> masks(List<NDArray> weights, double amount, NDManager manager) {
    try (NDManager scope = manager.newSubManager()) {
      NDList flattened = new NDList();
      for (NDArray weight : weights) {
        NDArray copy = weight.duplicate();
        copy.attach(scope); // everything derived from it is freed with the scope
        flattened.add(copy.flatten());
      }
      float[] all = L1Unstructured.mask(NDArrays.concat(flattened), amount, scope).toFloatArray();
      List<NDArray> masks = new ArrayList<>();
      int from = 0;
      for (NDArray weight : weights) {
        int to = from + Math.toIntExact(weight.size());
        masks.add(manager.create(Arrays.copyOfRange(all, from, to), weight.getShape()));
        from = to;
      }
      return masks;
    }
  }
}
