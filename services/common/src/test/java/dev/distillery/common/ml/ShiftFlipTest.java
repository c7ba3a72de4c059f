package dev.distillery.common.ml;

import static org.assertj.core.api.Assertions.assertThat;

import dev.distillery.common.testing.GoldenFixtures;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.nio.FloatBuffer;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * SHIFT_FLIP augmentation against torchvision's RandomCrop(padding=2) and RandomHorizontalFlip with
 * their random choices fixed (golden/shift_flip.py).
 */
class ShiftFlipTest {
  @Test
  void shiftsAndFlipsAsTorchvisionDoes() throws Exception {
    JsonObject golden = GoldenFixtures.read("shift_flip.json");
    int rows = golden.getInteger("rows");
    int cols = golden.getInteger("cols");
    byte[] image = bytes(golden.getJsonArray("image"));
    List<JsonObject> cases = golden.getJsonArray("cases").stream().map(c -> (JsonObject) c).toList();
    assertThat(cases).hasSize(6);
    for (JsonObject c : cases) {
      FloatBuffer out = FloatBuffer.allocate(rows * cols);
      ImageDataset.shiftAndFlip(image, 0, rows, cols, c.getInteger("dy"), c.getInteger("dx"), c.getBoolean("flip"),
          Preprocessing.BUILT_IN, out);
      byte[] expected = bytes(c.getJsonArray("expected"));
      for (int p = 0; p < expected.length; p++) {
        assertThat(out.get(p)).as("%s, pixel %d", c, p).isEqualTo(Preprocessing.BUILT_IN.apply(expected[p] & 0xff));
      }
    }
  }

  /** Each image of a batch gets its own shift and flip, drawn from the seeded random: the same seed, the same batch. */
  @Test
  void variesEachImageReproduciblyBySeed() throws Exception {
    byte[] pixels = new byte[64 * 28 * 28];
    new Random(1).nextBytes(pixels);
    ImageDataset data = new ImageDataset(pixels, new int[64], 28, 28);
    int[] all = ImageDataset.range(0, 64);
    DjlRuntime.start(1);
    try (var manager = ai.djl.ndarray.NDManager.newBaseManager("PyTorch")) {
      float[] plain = data.images(manager, all, data.batchBuffer(64), Preprocessing.BUILT_IN, null).toFloatArray();
      float[] first = data.images(manager, all, data.batchBuffer(64), Preprocessing.BUILT_IN, new Random(9)).toFloatArray();
      float[] again = data.images(manager, all, data.batchBuffer(64), Preprocessing.BUILT_IN, new Random(9)).toFloatArray();
      assertThat(again).isEqualTo(first);
      int changed = 0;
      for (int i = 0; i < 64; i++) {
        boolean same = true;
        for (int p = 0; p < 28 * 28 && same; p++) {
          same = first[i * 784 + p] == plain[i * 784 + p];
        }
        changed += same ? 0 : 1;
      }
      // Unchanged only when the draw was no shift and no flip: 1 in 50.
      assertThat(changed).isGreaterThan(56);
    }
  }

  private static byte[] bytes(JsonArray values) {
    byte[] bytes = new byte[values.size()];
    for (int i = 0; i < bytes.length; i++) {
      bytes[i] = (byte) values.getInteger(i).intValue();
    }
    return bytes;
  }
}
