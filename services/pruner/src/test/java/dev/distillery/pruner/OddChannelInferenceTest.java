package dev.distillery.pruner;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.Evaluation;
import dev.distillery.common.ml.ImageDataset;
import dev.distillery.common.ml.Models;
import dev.distillery.common.ml.Preprocessing;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * A structurally pruned convnet with hidden layers of 6, 6, 13, 13 and 51 gives PyTorch's logits
 * (golden/odd_channels, made by odd_channel_logits.py with PyTorch 1.13). With libtorch 2.7.1's
 * oneDNN capped at AVX2 it did not: the logits were off by up to 1.5 and changed with the thread
 * count, and the pruner reported 0.10 test accuracy for a model PyTorch scores at 0.9043. DjlRuntime
 * switches oneDNN off; this test fails when it is on.
 */
class OddChannelInferenceTest {
  private static final Path GOLDEN = Path.of("src/test/resources/golden/odd_channels");
  private static final Path SUBSET = Path.of("../../datasets/fashion-mnist-subset");

  @Test
  void givesPyTorchsLogits() throws Exception {
    DjlRuntime.start(2);
    JsonNode golden = new ObjectMapper().readTree(GOLDEN.resolve("odd_channel_logits.json").toFile());
    int images = golden.get("images").asInt();
    ImageDataset test = Datasets.read(SUBSET, "t10k");
    try (Model model = Models.load("convnet", List.of(6, 6, 13, 13, 51), 10, test.imageShape(),
        GOLDEN.resolve("convnet_6_6_13_13_51.params"))) {
      float[] logits = new float[images * 10];
      Evaluation.forEachBatch(model, test, Preprocessing.BUILT_IN, 0, images, images,
          (first, batch, count, classes) -> System.arraycopy(batch, 0, logits, first * classes, count * classes));
      double worst = 0;
      for (int i = 0; i < logits.length; i++) {
        worst = Math.max(worst, Math.abs(logits[i] - golden.get("logits").get(i).asDouble()));
      }
      System.out.printf("largest difference from PyTorch's logits: %.2e%n", worst);
      assertThat(worst).isLessThan(1e-4);
    }
    assertThat(DjlRuntime.oneDnnEnabled()).as("oneDNN").isFalse();
  }
}
