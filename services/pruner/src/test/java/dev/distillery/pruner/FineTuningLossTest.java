package dev.distillery.pruner;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.ImageDataset;
import dev.distillery.common.ml.JobModel;
import dev.distillery.common.ml.Evaluation;
import dev.distillery.common.testing.GoldenFixtures;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.DatasetSpec;
import dev.distillery.schemas.DistillationSettings;
import dev.distillery.schemas.PruningSettings;
import dev.distillery.schemas.SoftLabelSource;
import dev.distillery.schemas.StudentSpec;
import dev.distillery.schemas.TeacherSpec;
import io.vertx.core.json.JsonObject;
import java.io.IOException;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Fine-tuning after pruning against soft labels uses the trainer's loss: checked against PyTorch's
 * value of alpha*T^2*KL + (1-alpha)*CE (with label smoothing) from the trainer's golden fixture
 * (common's golden/distillation_loss.py), fed through the pruner's own batch loss.
 */
class FineTuningLossTest {
  private static NDManager manager;

  @BeforeAll
  static void engine() {
    DjlRuntime.start(1);
    manager = NDManager.newBaseManager("PyTorch");
  }

  @AfterAll
  static void close() {
    manager.close();
  }

  static List<JsonObject> cases() throws IOException {
    return GoldenFixtures.cases("distillation_loss.json");
  }

  private static CompressionRequest request(double temperature, double alpha, double smoothing, SoftLabelSource source) {
    return CompressionRequest.newBuilder().setJobId("loss")
        .setTeacher(TeacherSpec.newBuilder().setArchitecture("lenet5").setCheckpointUri("file:/nowhere").build())
        .setDataset(DatasetSpec.newBuilder().setLocation("/nowhere").build())
        .setStudent(StudentSpec.newBuilder().setArchitecture("lenet5").build())
        .setDistillation(DistillationSettings.newBuilder().setTemperature(temperature).setAlpha(alpha)
            .setLabelSmoothing(smoothing).build())
        .setPruning(PruningSettings.newBuilder().setDistillFrom(source).build())
        .build();
  }

  /** Blank images with the fixture's labels: the loss reads only the labels and the soft labels. */
  private static ImageDataset labelled(int[] labels) {
    return new ImageDataset(new byte[labels.length * 4], labels, 2, 2);
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("cases")
  void softLabelLossEqualsPyTorchs(JsonObject golden) {
    int batch = golden.getInteger("batch");
    int classes = golden.getInteger("classes");
    float temperature = golden.getFloat("temperature");
    float[] teacher = GoldenFixtures.floats(golden.getJsonArray("teacher_logits"));
    float[] scaled = new float[teacher.length];
    for (int i = 0; i < teacher.length; i++) {
      scaled[i] = teacher[i] / temperature;
    }
    int[] labels = golden.getJsonArray("labels").stream().mapToInt(v -> ((Number) v).intValue()).toArray();
    // The samples in reverse order, so that each row must be looked up by its index.
    int[] indices = new int[batch];
    float[] student = GoldenFixtures.floats(golden.getJsonArray("student_logits"));
    float[] studentReversed = new float[student.length];
    for (int i = 0; i < batch; i++) {
      indices[i] = batch - 1 - i;
      System.arraycopy(student, indices[i] * classes, studentReversed, i * classes, classes);
    }
    FineTuning tuning = FineTuning.withTargets(request(temperature, golden.getDouble("alpha"),
        golden.getDouble("label_smoothing"), SoftLabelSource.UNPRUNED), labelled(labels), scaled, classes);
    try (NDManager scope = manager.newSubManager()) {
      float value = tuning.loss().compute(scope.create(studentReversed, new Shape(batch, classes)), indices, scope)
          .getFloat();
      float expected = golden.getFloat("loss");
      assertThat(value).isCloseTo(expected, within(Math.max(1e-6f, Math.abs(expected) * 1e-5f)));
    }
  }

  @Test
  void withoutSoftLabelsItIsCrossEntropyAndTheyChangeTheLoss() throws Exception {
    JsonObject golden = cases().get(0);
    int batch = golden.getInteger("batch");
    int classes = golden.getInteger("classes");
    int[] labels = golden.getJsonArray("labels").stream().mapToInt(v -> ((Number) v).intValue()).toArray();
    float[] student = GoldenFixtures.floats(golden.getJsonArray("student_logits"));
    int[] indices = ImageDataset.range(0, batch);
    try (NDManager scope = manager.newSubManager()) {
      float hard = FineTuning.withTargets(request(4, 0.9, 0, SoftLabelSource.NONE), labelled(labels), null, classes)
          .loss().compute(scope.create(student, new Shape(batch, classes)), indices, scope).getFloat();
      float expected = dev.distillery.common.ml.Losses.crossEntropy(scope.create(student, new Shape(batch, classes)),
          scope.create(java.util.Arrays.stream(labels).asLongStream().toArray())).getFloat();
      assertThat(hard).isEqualTo(expected).isNotCloseTo(golden.getFloat("loss"), within(1e-3f));
    }
  }

  /** UNPRUNED soft labels are the model's own logits before pruning, divided by T, row by sample. */
  @Test
  void unprunedSoftLabelsAreTheModelsLogitsOverTheTemperature() throws Exception {
    Random random = new Random(5);
    byte[] pixels = new byte[20 * 28 * 28];
    random.nextBytes(pixels);
    int[] labels = random.ints(20, 0, 10).toArray();
    ImageDataset data = new ImageDataset(pixels, labels, 28, 28);
    try (JobModel model = JobModel.create("lenet5", 1.0, 10, data.imageShape(), 11)) {
      float[] scaled = FineTuning.scaledLogits(model, data, 10, 4.0);
      float[] logits = new float[20 * 10];
      Evaluation.forEachBatch(model.model(), data, model.input(), 0, 20, 7,
          (first, batch, count, classes) -> System.arraycopy(batch, 0, logits, first * classes, count * classes));
      for (int i = 0; i < logits.length; i++) {
        assertThat(scaled[i]).isCloseTo(logits[i] / 4f, within(1e-6f));
      }
    }
  }
}
