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
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Masks against torch.nn.utils.prune.l1_unstructured (golden/l1_unstructured.py),
 * global_unstructured and ln_structured (golden/pruning_masks.py), all from PyTorch 1.13, element
 * for element, ties included.
 */
class PruningGoldenTest {
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

  static List<JsonObject> l1Cases() throws IOException {
    return GoldenFixtures.cases("l1_unstructured.json");
  }

  static List<JsonObject> globalCases() throws IOException {
    return GoldenFixtures.cases("global_unstructured.json");
  }

  static List<JsonObject> lnCases() throws IOException {
    return GoldenFixtures.cases("ln_structured.json");
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("l1Cases")
  void l1MasksEqualPyTorchs(JsonObject golden) {
    try (NDManager scope = manager.newSubManager()) {
      NDArray weight = scope.create(GoldenFixtures.floats(golden.getJsonArray("weight")), shape(golden.getJsonArray("shape")));
      NDArray mask = L1Unstructured.mask(weight, golden.getDouble("amount"), scope);
      assertThat(mask.getShape()).isEqualTo(weight.getShape());
      assertThat(ints(mask)).as(golden.getString("name")).containsExactly(ints(golden.getJsonArray("mask")));
    }
  }

  @Test
  void prunedCountRoundsHalfToEvenLikePython() {
    assertThat(L1Unstructured.prunedCount(0.5, 21)).isEqualTo(10);
    assertThat(L1Unstructured.prunedCount(0.5, 5)).isEqualTo(2);
    assertThat(L1Unstructured.prunedCount(0.5, 3)).isEqualTo(2);
    assertThat(L1Unstructured.prunedCount(0.9, 2400)).isEqualTo(2160);
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("globalCases")
  void globalMasksEqualPyTorchs(JsonObject golden) {
    try (NDManager scope = manager.newSubManager()) {
      List<NDArray> weights = new ArrayList<>();
      for (int i = 0; i < golden.getJsonArray("weights").size(); i++) {
        weights.add(scope.create(GoldenFixtures.floats(golden.getJsonArray("weights").getJsonArray(i)),
            shape(golden.getJsonArray("shapes").getJsonArray(i))));
      }
      List<NDArray> masks = GlobalMagnitude.masks(weights, golden.getDouble("amount"), scope);
      for (int i = 0; i < masks.size(); i++) {
        assertThat(masks.get(i).getShape()).isEqualTo(weights.get(i).getShape());
        assertThat(ints(masks.get(i))).as("%s, tensor %d", golden.getString("name"), i)
            .containsExactly(ints(golden.getJsonArray("masks").getJsonArray(i)));
      }
    }
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("lnCases")
  void lnStructuredMasksEqualPyTorchs(JsonObject golden) {
    assertThat(golden.getInteger("dim")).isZero();
    try (NDManager scope = manager.newSubManager()) {
      NDArray weight = scope.create(GoldenFixtures.floats(golden.getJsonArray("weight")), shape(golden.getJsonArray("shape")));
      NDArray mask = LnStructured.mask(weight, golden.getDouble("amount"), golden.getInteger("n"), scope);
      assertThat(mask.getShape()).isEqualTo(weight.getShape());
      assertThat(ints(mask)).as(golden.getString("name")).containsExactly(ints(golden.getJsonArray("mask")));
    }
  }

  private static Shape shape(JsonArray dims) {
    return new Shape(dims.stream().mapToLong(v -> ((Number) v).longValue()).toArray());
  }

  private static int[] ints(JsonArray values) {
    return values.stream().mapToInt(v -> ((Number) v).intValue()).toArray();
  }

  private static int[] ints(NDArray mask) {
    float[] values = mask.toFloatArray();
    int[] result = new int[values.length];
    for (int i = 0; i < values.length; i++) {
      result[i] = (int) values[i];
    }
    return result;
  }
}
