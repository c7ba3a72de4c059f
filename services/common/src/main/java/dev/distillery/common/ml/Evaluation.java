package dev.distillery.common.ml;

import dev.distillery.common.JobControl;
import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.training.ParameterStore;

/** Inference over a dataset in batches, with autograd off. */
public final class Evaluation {
  private static final int BATCH = 256;

  private Evaluation() {}

  /** Receives the logits of each batch of consecutive samples starting at {@code first}. */
  @FunctionalInterface
  public interface LogitsSink {
    void accept(int first, float[] logits, int count, int classes) throws Exception;
  }

  /** Top-1 accuracy of a built-in {@code model} on {@code data}, 0..1. */
  public static double accuracy(Model model, ImageDataset data) throws Exception {
    return accuracy(model, data, Preprocessing.BUILT_IN);
  }

  /** Top-1 accuracy of {@code model}, which takes {@code input}, on {@code data}, 0..1. */
  public static double accuracy(Model model, ImageDataset data, Preprocessing input) throws Exception {
    long[] correct = {0};
    forEachBatch(model, data, input, 0, data.size(), BATCH,
        (first, logits, count, classes) -> correct[0] += correct(logits, count, classes, data, first));
    return data.size() == 0 ? 0 : (double) correct[0] / data.size();
  }

  /** How many of {@code count} samples from {@code first} on have their label as the largest of their logits. */
  static int correct(float[] logits, int count, int classes, ImageDataset data, int first) {
    int correct = 0;
    for (int i = 0; i < count; i++) {
      int best = 0;
      for (int c = 1; c < classes; c++) {
        if (logits[i * classes + c] > logits[i * classes + best]) {
          best = c;
        }
      }
      if (best == data.label(first + i)) {
        correct++;
      }
    }
    return correct;
  }

  /**
   * Runs {@code model} over samples {@code from..to-1} of {@code data} in order, {@code batchSize}
   * samples at a time.
   */
  public static void forEachBatch(Model model, ImageDataset data, Preprocessing input, int from, int to,
      int batchSize, LogitsSink sink) throws Exception {
    boolean gradMode = DjlRuntime.inferenceMode();
    try (NDManager scope = model.getNDManager().newSubManager()) {
      ParameterStore parameters = new ParameterStore(scope, false);
      for (int first = from; first < to; first += batchSize) {
        JobControl.checkpoint(); // a cancelled job stops here, between batches
        int count = Math.min(batchSize, to - first);
        try (NDManager batch = scope.newSubManager()) {
          NDArray images = data.images(batch, ImageDataset.range(first, first + count), input);
          NDArray logits = model.getBlock().forward(parameters, new NDList(images), false).singletonOrThrow();
          sink.accept(first, logits.toFloatArray(), count, (int) logits.getShape().get(1));
        }
      }
    } finally {
      DjlRuntime.restoreGradMode(gradMode);
    }
  }
}
