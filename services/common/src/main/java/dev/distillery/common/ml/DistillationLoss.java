package dev.distillery.common.ml;

import ai.djl.ndarray.NDArray;

/**
 * Hinton et al.'s distillation loss:
 * {@code alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y)}, with the KL term
 * averaged over the batch ({@code reduction='batchmean'} in PyTorch) and cross-entropy averaged
 * too, with optional label smoothing. The T^2 factor keeps the soft term's gradients on the scale of
 * the hard term's as T grows. The trainer distils with it, and the pruner fine-tunes with it.
 */
public final class DistillationLoss {
  // float, not double: a double scalar would promote the loss to float64.
  private final float temperature;
  private final float alpha;
  private final double labelSmoothing;

  public DistillationLoss(double temperature, double alpha, double labelSmoothing) {
    this.temperature = (float) temperature;
    this.alpha = (float) alpha;
    this.labelSmoothing = labelSmoothing;
  }

  /**
   * The loss of one batch.
   *
   * @param studentLogits raw student logits {@code [B, C]}
   * @param teacherScaledLogits teacher logits already divided by T {@code [B, C]}, as published
   * @param labels hard labels {@code [B]} (int64)
   */
  public NDArray compute(NDArray studentLogits, NDArray teacherScaledLogits, NDArray labels) {
    float batch = studentLogits.getShape().get(0);
    NDArray teacherLogProbs = teacherScaledLogits.logSoftmax(1);
    NDArray studentLogProbsSoft = studentLogits.div(temperature).logSoftmax(1);
    NDArray kl = teacherLogProbs.exp().mul(teacherLogProbs.sub(studentLogProbsSoft)).sum().div(batch);
    NDArray crossEntropy = Losses.crossEntropy(studentLogits, labels, labelSmoothing);
    return kl.mul(alpha * temperature * temperature).add(crossEntropy.mul(1 - alpha));
  }
}
