package dev.distillery.common.ml;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import dev.distillery.common.testing.OnnxChecker;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every built-in architecture exported to ONNX, checked by onnx.checker and run by ONNX Runtime's
 * Java API against DJL's own logits; the int8 form against the float model's accuracy.
 */
class OnnxExportTest {
  private static ImageDataset train;
  private static ImageDataset test;

  @BeforeAll
  static void data() throws Exception {
    DjlRuntime.start(2);
    train = Datasets.read(IdxReaderTest.SUBSET, "train").limit(2000);
    test = Datasets.read(IdxReaderTest.SUBSET, "t10k").limit(500);
  }

  /** Each architecture at full size, and at the smaller sizes structured pruning leaves. */
  static Stream<Arguments> models() {
    List<Arguments> cases = new ArrayList<>();
    for (String name : Architectures.NAMES) {
      cases.add(Arguments.of(name, Architectures.hiddenUnits(name, 1)));
      cases.add(Arguments.of(name, Architectures.hiddenUnits(name, 1).stream().map(units -> Math.max(1, units * 2 / 3 - 1)).toList()));
    }
    return cases.stream();
  }

  @ParameterizedTest(name = "{0} {1}")
  @MethodSource("models")
  void theFloatModelComputesWhatDjlComputes(String name, List<Integer> hidden, @TempDir Path dir) throws Exception {
    try (Model model = Models.create(name, hidden, 10, train.imageShape())) {
      randomiseBatchNormStatistics(model);
      Path file = dir.resolve(name + ".onnx");
      Files.write(file, OnnxExport.floatModel(model, train.imageShape()));
      OnnxChecker.check(file);
      float[] djl = djlLogits(model, 64);
      float[] onnx;
      try (OnnxRuntime runtime = new OnnxRuntime(Files.readAllBytes(file), train.imageShape().getShape(), 2)) {
        onnx = runtime.logits(test.values(0, 64, Preprocessing.BUILT_IN), 64);
      }
      assertThat(onnx).hasSameSizeAs(djl);
      for (int i = 0; i < djl.length; i++) {
        assertThat(onnx[i]).as("logit %d", i).isCloseTo(djl[i], within(1e-4f * Math.max(1, Math.abs(djl[i]))));
      }
    }
  }

  @Test
  void int8LeNet5KeepsTheFloatModelsAccuracy(@TempDir Path dir) throws Exception {
    try (Model model = Models.create("lenet5", 1, 10, train.imageShape(), 5)) {
      new TrainingLoop(model, train, TrainingLoop.Plan.adam(2, 64, 0.002, 5),
          (logits, indices, manager) -> Losses.crossEntropy(logits, train.labels(manager, indices))).run();
      double djl = Evaluation.accuracy(model, test);
      Path file = dir.resolve("lenet5-int8.onnx");
      Files.write(file, Int8Quantization.quantize(model, train, 256, 5));
      OnnxChecker.check(file);
      try (OnnxRuntime runtime = new OnnxRuntime(Files.readAllBytes(file), train.imageShape().getShape(), 2)) {
        double int8 = runtime.accuracy(test, Preprocessing.BUILT_IN);
        assertThat(djl).isGreaterThan(0.7);
        assertThat(int8).as("int8 accuracy against float %s", djl).isCloseTo(djl, within(0.01));
      }
    }
  }

  /** resnet20's residual additions, folded batch norms and global pooling in int8, untrained. */
  @Test
  void int8ResNet20FollowsTheFloatLogits(@TempDir Path dir) throws Exception {
    try (Model model = Models.create("resnet20", 0.5, 10, train.imageShape(), 5)) {
      randomiseBatchNormStatistics(model);
      Path file = dir.resolve("resnet20-int8.onnx");
      Files.write(file, Int8Quantization.quantize(model, train, 128, 5));
      OnnxChecker.check(file);
      float[] djl = djlLogits(model, 64);
      float[] int8;
      try (OnnxRuntime runtime = new OnnxRuntime(Files.readAllBytes(file), train.imageShape().getShape(), 2)) {
        int8 = runtime.logits(test.values(0, 64, Preprocessing.BUILT_IN), 64);
      }
      float spread = 0;
      float error = 0;
      for (int i = 0; i < djl.length; i++) {
        spread = Math.max(spread, Math.abs(djl[i]));
        error = Math.max(error, Math.abs(int8[i] - djl[i]));
      }
      assertThat(error).as("largest int8 error against logits up to %s", spread).isLessThan(0.1f * spread);
    }
  }

  private static float[] djlLogits(Model model, int count) throws Exception {
    float[] logits = new float[count * 10];
    Evaluation.forEachBatch(model, test, Preprocessing.BUILT_IN, 0, count, count,
        (first, batch, n, classes) -> System.arraycopy(batch, 0, logits, first * classes, n * classes));
    return logits;
  }

  /** A new batch norm's statistics (mean 0, variance 1) would hide a wrong use of them. */
  private static void randomiseBatchNormStatistics(Model model) {
    Random random = new Random(11);
    for (var p : model.getBlock().getParameters()) {
      String key = p.getKey();
      if (key.endsWith("_runningMean") || key.endsWith("_runningVar") || key.endsWith("_gamma") || key.endsWith("_beta")) {
        NDArray array = p.getValue().getArray();
        float[] values = new float[Math.toIntExact(array.size())];
        for (int i = 0; i < values.length; i++) {
          values[i] = key.endsWith("_runningVar") ? 0.5f + random.nextFloat() : (float) random.nextGaussian() * 0.3f
              + (key.endsWith("_gamma") ? 1 : 0);
        }
        array.set(values);
      }
    }
  }
}
