package dev.distillery.common.testing;

import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * Reads the golden fixtures that real PyTorch wrote ({@code src/test/resources/golden/*.json},
 * each beside the script that made it): a JSON object whose {@code cases} hold flat float arrays.
 * Shared by the services' tests through this module's test jar.
 */
public final class GoldenFixtures {
  private GoldenFixtures() {}

  /** The whole fixture at classpath resource {@code /golden/<name>}. */
  public static JsonObject read(String name) throws IOException {
    try (InputStream in = GoldenFixtures.class.getResourceAsStream("/golden/" + name)) {
      if (in == null) {
        throw new IOException("no golden fixture /golden/" + name + " on the test classpath");
      }
      return new JsonObject(new String(in.readAllBytes(), StandardCharsets.UTF_8));
    }
  }

  /** The fixture's {@code cases}, for a parameterized test's method source. */
  public static List<JsonObject> cases(String name) throws IOException {
    return read(name).getJsonArray("cases").stream().map(JsonObject.class::cast).toList();
  }

  /** A JSON array of numbers as float32 values (the fixtures hold exact float32 values). */
  public static float[] floats(JsonArray values) {
    float[] result = new float[values.size()];
    for (int i = 0; i < result.length; i++) {
      result[i] = values.getNumber(i).floatValue();
    }
    return result;
  }
}
