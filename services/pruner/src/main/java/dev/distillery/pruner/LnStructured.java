package dev.distillery.pruner;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import java.util.Arrays;

/**
 * Structured pruning of whole output channels with the semantics of PyTorch's
 * {@code torch.nn.utils.prune.ln_structured(..., n, dim=0)}: each output channel (a filter of a
 * convolution, a row of a dense layer) is scored by the L{@code n} norm of its weights, and the
 * {@code round(amount * channels)} channels of smallest norm are pruned. As in PyTorch, the channels
 * kept are the {@code channels - pruned} largest by libtorch's {@code topk(largest=True)}, which also
 * decides between channels of equal norm.
 */
public final class LnStructured {
  private LnStructured() {}

  /** A 0/1 mask of {@code weight}'s shape pruning {@code amount} of its output channels, in {@code manager}. */
  public static NDArray mask(NDArray weight, double amount, int n, NDManager manager) {
    int channels = Math.toIntExact(weight.getShape().get(0));
    int channelSize = Math.toIntExact(weight.size() / channels);
    float[] mask = new float[Math.toIntExact(weight.size())];
    try (NDManager scope = manager.newSubManager()) {
      for (long channel : keptChannels(channelNorms(weight, n, scope), amount)) {
        Arrays.fill(mask, (int) channel * channelSize, ((int) channel + 1) * channelSize, 1f);
      }
    }
    return manager.create(mask, weight.getShape());
  }

  /** The L{@code n} norm of each output channel of {@code weight}, in {@code scope}. */
  static NDArray channelNorms(NDArray weight, int n, NDManager scope) {
    int channels = Math.toIntExact(weight.getShape().get(0));
    NDArray copy = weight.duplicate();
    copy.attach(scope); // everything derived from it is freed with the scope
    return copy.reshape(channels, -1).norm(n, new int[] {1}, false);
  }

  /**
   * The channels kept when {@code amount} of them are pruned by {@code scores}: the {@code channels -
   * round(amount * channels)} largest, by {@code topk(largest=True)} as PyTorch chooses them.
   */
  static long[] keptChannels(NDArray scores, double amount) {
    int channels = Math.toIntExact(scores.size());
    int keep = channels - Math.toIntExact(L1Unstructured.prunedCount(amount, channels));
    return keep == 0 ? new long[0] : scores.topK(keep, 0, true, true).get(1).toLongArray();
  }
}
