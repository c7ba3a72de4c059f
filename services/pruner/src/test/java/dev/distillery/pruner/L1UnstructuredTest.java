package dev.distillery.pruner;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.testing.GoldenFixtures;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.io.IOException;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** Masks against torch.nn.utils.prune.l1_unstructured (golden/l1_unstructured.py, PyTorch 1.13). */
class L1UnstructuredTest {
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
    return GoldenFixtures.cases("l1_unstructured.json");
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("cases")
  void maskEqualsPyTorchs(JsonObject golden) {
    JsonArray shapeJson = golden.getJsonArray("shape");
    long[] shape = shapeJson.stream().mapToLong(v -> ((Number) v).longValue()).toArray();
    float[] weight = GoldenFixtures.floats(golden.getJsonArray("weight"));
    int[] expected = golden.getJsonArray("mask").stream().mapToInt(v -> ((Number) v).intValue()).toArray();
    try (NDManager scope = manager.newSubManager()) {
      NDArray w = scope.create(weight, new Shape(shape));
      NDArray mask = L1Unstructured.mask(w, golden.getDouble("amount"), scope);
      assertThat(mask.getShape()).isEqualTo(new Shape(shape));
      float[] actual = mask.toFloatArray();
      int[] actualInts = new int[actual.length];
      for (int i = 0; i < actual.length; i++) {
        actualInts[i] = (int) actual[i];
      }
      assertThat(actualInts).as(golden.getString("name")).containsExactly(expected);
    }
  }

  @Test
  void prunedCountRoundsHalfToEvenLikePython() {
    assertThat(L1Unstructured.prunedCount(0.5, 21)).isEqualTo(10);
    assertThat(L1Unstructured.prunedCount(0.5, 5)).isEqualTo(2);
    assertThat(L1Unstructured.prunedCount(0.5, 3)).isEqualTo(2);
    assertThat(L1Unstructured.prunedCount(0.9, 2400)).isEqualTo(2160);
  }
}
