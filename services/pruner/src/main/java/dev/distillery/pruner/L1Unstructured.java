package dev.distillery.pruner;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;

/**
 * Magnitude pruning of one tensor with the semantics of PyTorch's
 * {@code torch.nn.utils.prune.l1_unstructured}: the {@code round(amount * n)} entries of smallest
 * absolute value are pruned, rounding half to even as Python's {@code round} does, and the entries
 * are chosen by libtorch's {@code topk(largest=False)} as PyTorch chooses them. Among tied
 * magnitudes at the boundary, libtorch 2.7.1 picked the same entries as PyTorch 1.13 in every
 * golden case; the tests would show if a later libtorch breaks ties differently.
 */
public final class L1Unstructured {
  private L1Unstructured() {}

  /** How many of {@code n} entries {@code amount} prunes (Python's round: half to even). */
  public static long prunedCount(double amount, long n) {
    if (!(amount >= 0 && amount <= 1)) {
      throw new IllegalArgumentException("amount must be within [0, 1], was " + amount);
    }
    return (long) Math.rint(amount * n);
  }

  /** A 0/1 mask of {@code weight}'s shape that prunes {@code amount} of it, in {@code manager}. */
  public static NDArray mask(NDArray weight, double amount, NDManager manager) {
    long n = weight.size();
    long k = prunedCount(amount, n);
    float[] mask = new float[Math.toIntExact(n)];
    java.util.Arrays.fill(mask, 1f);
    if (k > 0) {
      try (NDManager scope = manager.newSubManager()) {
        NDArray copy = weight.duplicate();
        copy.attach(scope); // everything derived from it is freed with the scope
        NDList smallest = copy.flatten().abs().topK(Math.toIntExact(k), 0, false, true);
        for (long index : smallest.get(1).toLongArray()) {
          mask[(int) index] = 0f;
        }
      }
    }
    return manager.create(mask, weight.getShape());
  }
}
