package dev.distillery.common.ml;

import ai.djl.ndarray.NDArray;

/** Losses shared by the stages, written to match PyTorch's definitions. */
public final class Losses {
  private Losses() {}

  /** Mean cross-entropy of raw {@code logits [B, C]} against int64 {@code labels [B]}. */
  public static NDArray crossEntropy(NDArray logits, NDArray labels) {
    int classes = (int) logits.getShape().get(1);
    float batch = logits.getShape().get(0);
    // Scalars as float: a Java double or long would promote the result to float64 or int64.
    return labels.oneHot(classes).mul(logits.logSoftmax(1)).sum().div(-batch);
  }
}
