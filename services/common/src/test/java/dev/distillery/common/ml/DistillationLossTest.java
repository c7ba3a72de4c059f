package dev.distillery.common.ml;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import dev.distillery.common.testing.GoldenFixtures;
import io.vertx.core.json.JsonObject;
import java.io.IOException;
import java.util.List;
import org.assertj.core.data.Offset;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** Loss and gradient against PyTorch 1.13 (golden/distillation_loss.py). */
class DistillationLossTest {
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

  @ParameterizedTest(name = "{0}")
  @MethodSource("cases")
  void lossAndGradientEqualPyTorchs(JsonObject golden) {
    int batch = golden.getInteger("batch");
    int classes = golden.getInteger("classes");
    float temperature = golden.getFloat("temperature");
    float[] teacher = GoldenFixtures.floats(golden.getJsonArray("teacher_logits"));
    float[] teacherScaled = new float[teacher.length];
    for (int i = 0; i < teacher.length; i++) {
      teacherScaled[i] = teacher[i] / temperature; // what teacher-inference publishes
    }
    long[] labels = golden.getJsonArray("labels").stream().mapToLong(v -> ((Number) v).longValue()).toArray();
    DistillationLoss loss = new DistillationLoss(temperature, golden.getDouble("alpha"), golden.getDouble("label_smoothing"));
    try (NDManager scope = manager.newSubManager()) {
      NDArray student = scope.create(GoldenFixtures.floats(golden.getJsonArray("student_logits")), new Shape(batch, classes));
      student.setRequiresGradient(true);
      float value;
      try (GradientCollector collector = Engine.getEngine("PyTorch").newGradientCollector()) {
        NDArray l = loss.compute(student, scope.create(teacherScaled, new Shape(batch, classes)), scope.create(labels));
        value = l.getFloat();
        collector.backward(l);
      }
      float expected = golden.getFloat("loss");
      // float32 spacing near losses of 10-30 is ~1e-6 already: compare relatively for the loss.
      assertThat(value).as("loss").isCloseTo(expected, within(Math.max(1e-6f, Math.abs(expected) * 1e-5f)));
      float[] gradient = student.getGradient().toFloatArray();
      float[] expectedGradient = GoldenFixtures.floats(golden.getJsonArray("grad_student_logits"));
      assertThat(gradient).hasSize(expectedGradient.length);
      for (int i = 0; i < gradient.length; i++) {
        assertThat(gradient[i]).as("gradient[%d]", i).isCloseTo(expectedGradient[i], Offset.offset(1e-6f));
      }
    }
  }
}
