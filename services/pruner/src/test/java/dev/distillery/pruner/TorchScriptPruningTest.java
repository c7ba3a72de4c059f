package dev.distillery.pruner;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.nn.Parameter;
import ai.djl.util.Pair;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.Evaluation;
import dev.distillery.common.ml.ImageDataset;
import dev.distillery.common.ml.JobModel;
import dev.distillery.common.ml.Losses;
import dev.distillery.common.ml.Preprocessing;
import dev.distillery.common.ml.TrainingLoop;
import dev.distillery.common.testing.GoldenFixtures;
import dev.distillery.common.testing.PyTorch;
import dev.distillery.schemas.InputSpec;
import dev.distillery.schemas.ModelFormat;
import dev.distillery.schemas.PruningMethod;
import dev.distillery.schemas.PruningSettings;
import io.vertx.core.json.JsonObject;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Pruning a user's TorchScript module (a torchvision ResNet-18 at 1/8 width): the masks are
 * {@code torch.nn.utils.prune}'s on the same weights ({@code golden/torchscript_masks.py}), and the
 * pruned, fine-tuned module Distillery writes is TorchScript that real PyTorch loads and that gives
 * Distillery's logits.
 */
class TorchScriptPruningTest {
  static final Path MODELS = Path.of("../../datasets/torchscript").toAbsolutePath().normalize();
  static final Path SUBSET = Path.of("../../datasets/fashion-mnist-subset").toAbsolutePath().normalize();
  static final InputSpec INPUT = InputSpec.newBuilder().setMean(0.5).setStd(0.25).build();

  private static ImageDataset train;

  @BeforeAll
  static void load() throws Exception {
    DjlRuntime.start(1);
    train = Datasets.read(SUBSET, "train");
  }

  static JobModel resnet18() throws Exception {
    return JobModel.load(new JobModel.Source("checkpoint", ModelFormat.TORCHSCRIPT, "resnet18", 1,
        MODELS.resolve("resnet18_w8.pt").toUri().toString(), INPUT), 10, train.imageShape());
  }

  @ParameterizedTest(name = "{0}")
  @CsvSource({"l1_unstructured, L1_UNSTRUCTURED, 0.6", "global_unstructured, GLOBAL_UNSTRUCTURED, 0.7"})
  void masksEqualTorchPrunesOnTheModulesOwnWeights(String key, PruningMethod method, double amount) throws Exception {
    JsonObject golden = GoldenFixtures.read("torchscript_masks.json").getJsonObject(key);
    try (JobModel model = resnet18();
        PruningMasks masks = PruningMasks.compute(model.model(),
            PruningSettings.newBuilder().setMethod(method).setTargetSparsity(amount).build(), 1)) {
      List<Pair<String, Parameter>> weights = model.prunableWeights();
      assertThat(weights.stream().map(Pair::getKey).toList()).containsExactlyInAnyOrderElementsOf(golden.fieldNames());
      for (Pair<String, Parameter> weight : weights) {
        String expected = golden.getString(weight.getKey());
        float[] values = weight.getValue().getArray().toFloatArray();
        StringBuilder kept = new StringBuilder(values.length);
        for (float v : values) {
          kept.append(v != 0 ? '1' : '0');
        }
        assertThat(kept.toString()).as("mask of %s", weight.getKey()).isEqualTo(expected);
      }
      assertThat(masks.counts()).hasSize(21);
    }
  }

  @Test
  void thePrunedFineTunedModuleLoadsInPyTorchWithDistillerysLogits(@TempDir Path dir) throws Exception {
    Path written = dir.resolve("pruned.pt");
    int count = 64;
    float[] ours = new float[count * 10];
    try (JobModel model = resnet18();
        PruningMasks masks = PruningMasks.compute(model.model(),
            PruningSettings.newBuilder().setMethod(PruningMethod.L1_UNSTRUCTURED).setTargetSparsity(0.8).build(), 1)) {
      ImageDataset tuning = train.subset(ImageDataset.range(0, 256));
      new TrainingLoop(model.model(), tuning, TrainingLoop.Plan.adam(1, 64, 1e-3, 5),
          (logits, indices, manager) -> Losses.crossEntropy(logits, tuning.labels(manager, indices)))
          .input(model.input()).afterStep(masks::apply).run();
      try (OutputStream out = Files.newOutputStream(written)) {
        model.writeTorchScript(out);
      }
      Evaluation.forEachBatch(model.model(), train, model.input(), 0, count, 32,
          (first, logits, n, classes) -> System.arraycopy(logits, 0, ours, first * classes, logits.length));
      for (PruningMasks.LayerCount layer : masks.counts()) {
        assertThat((double) layer.zeros() / layer.weights()).as(layer.name()).isCloseTo(0.8, org.assertj.core.data.Offset.offset(0.01));
      }
    }
    float[] theirs = PyTorch.torchScriptLogits(written, SUBSET, count, Preprocessing.of(INPUT));
    assertThat(theirs).hasSameSizeAs(ours);
    for (int i = 0; i < ours.length; i++) {
      assertThat(theirs[i]).as("logit %d", i).isCloseTo(ours[i], org.assertj.core.data.Offset.offset(1e-4f));
    }
  }
}
