package dev.distillery.common.ml;

import ai.djl.ndarray.NDArray;

/** Losses shared by the stages, written to match PyTorch's definitions. */
public final class Losses {
  private Losses() {}

  /** Mean cross-entropy of raw {@code logits [B, C]} against int64 {@code labels [B]}. */
  public static NDArray crossEntropy(NDArray logits, NDArray labels) {
    return crossEntropy(logits, labels, 0);
  }

  /**
   * Mean cross-entropy with label smoothing {@code smoothing} (torch's {@code label_smoothing}):
   * the target of each sample is {@code (1 - smoothing) * one-hot + smoothing / C}.
   */
  public static NDArray crossEntropy(NDArray logits, NDArray labels, double smoothing) {
    int classes = (int) logits.getShape().get(1);
    float batch = logits.getShape().get(0);
    // Scalars as float: a Java double or long would promote the result to float64 or int64.
    NDArray target = labels.oneHot(classes);
    if (smoothing != 0) {
      target = target.mul((float) (1 - smoothing)).add((float) (smoothing / classes));
    }
    return target.mul(logits.logSoftmax(1)).sum().div(-batch);
  }
}
