package dev.distillery.bench;

import ai.djl.Model;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.Evaluation;
import dev.distillery.common.ml.ImageDataset;
import dev.distillery.common.ml.Models;
import dev.distillery.common.ml.Preprocessing;
import java.nio.file.Path;

/**
 * The baseline of the throughput benchmark: the teacher run directly through DJL over the training
 * set, in a JVM of its own like a replica's. Prints samples per second on the last line.
 * Arguments: checkpoint, dataset directory, samples (0 = all), libtorch threads, batch size.
 */
public final class DirectInference {
  private DirectInference() {}

  public static void main(String[] args) throws Exception {
    DjlRuntime.start(Integer.parseInt(args[3]));
    ImageDataset train = Datasets.read(Path.of(args[1]), "train").limit(Integer.parseInt(args[2]));
    int batch = Integer.parseInt(args[4]);
    try (Model model = Models.load("convnet", 1.0, 10, train.imageShape(), Path.of(args[0]))) {
      float[] sink = new float[1];
      long start = System.nanoTime();
      Evaluation.forEachBatch(model, train, Preprocessing.BUILT_IN, 0, train.size(), batch,
          (first, logits, count, classes) -> sink[0] += logits[0]);
      double seconds = (System.nanoTime() - start) / 1e9;
      System.out.printf("%.1f%n", train.size() / seconds);
    }
  }
}
