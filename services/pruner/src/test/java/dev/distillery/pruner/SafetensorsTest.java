package dev.distillery.pruner;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import ai.djl.ndarray.types.Shape;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.JobModel;
import dev.distillery.common.ml.Models;
import dev.distillery.schemas.PruningSettings;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * A pruned LeNet-5 exported as safetensors and read back by this test's own reader, which follows
 * the format's specification (header length, JSON header, raw little-endian data), not the writer.
 */
class SafetensorsTest {
  /** LeNet-5 as a PyTorch nn.Sequential names it: conv, relu, pool, conv, relu, pool, flatten, linear... */
  private static final Map<String, long[]> TORCH_LENET5 = Map.of(
      "0.weight", new long[] {6, 1, 5, 5}, "0.bias", new long[] {6},
      "3.weight", new long[] {16, 6, 5, 5}, "3.bias", new long[] {16},
      "7.weight", new long[] {120, 400}, "7.bias", new long[] {120},
      "9.weight", new long[] {84, 120}, "9.bias", new long[] {84},
      "11.weight", new long[] {10, 84}, "11.bias", new long[] {10});

  @Test
  void namesShapesAndValuesReadBackAsPyTorchWouldSeeThem() throws Exception {
    DjlRuntime.start(1);
    try (Model model = Models.create("lenet5", 1.0, 10, new Shape(1, 28, 28), 3);
        PruningMasks masks = PruningMasks.compute(model, PruningSettings.newBuilder().setTargetSparsity(0.9).build(), 1)) {
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      Safetensors.write(JobModel.builtIn(model, "lenet5", 1.0), out);
      ByteBuffer file = ByteBuffer.wrap(out.toByteArray()).order(ByteOrder.LITTLE_ENDIAN);
      long headerLength = file.getLong();
      JsonNode header = new ObjectMapper().readTree(new String(out.toByteArray(), 8, (int) headerLength,
          StandardCharsets.UTF_8).trim());
      List<String> names = new ArrayList<>();
      long expectedOffset = 0;
      for (Iterator<Map.Entry<String, JsonNode>> it = header.fields(); it.hasNext(); ) {
        Map.Entry<String, JsonNode> tensor = it.next();
        if (tensor.getKey().equals("__metadata__")) {
          continue;
        }
        names.add(tensor.getKey());
        JsonNode info = tensor.getValue();
        assertThat(info.get("dtype").asText()).isEqualTo("F32");
        long[] shape = new long[info.get("shape").size()];
        for (int i = 0; i < shape.length; i++) {
          shape[i] = info.get("shape").get(i).asLong();
        }
        assertThat(shape).as(tensor.getKey()).containsExactly(TORCH_LENET5.get(tensor.getKey()));
        long begin = info.get("data_offsets").get(0).asLong();
        long end = info.get("data_offsets").get(1).asLong();
        assertThat(begin).as("tensors back to back").isEqualTo(expectedOffset);
        expectedOffset = end;
        float[] values = new float[(int) ((end - begin) / 4)];
        file.position((int) (8 + headerLength + begin));
        file.asFloatBuffer().get(values);
        String djlName = djlName(model, tensor.getKey());
        assertThat(values).as(tensor.getKey()).containsExactly(
            model.getBlock().getParameters().get(djlName).getArray().toFloatArray());
      }
      assertThat(names).containsExactlyInAnyOrderElementsOf(TORCH_LENET5.keySet());
      assertThat(8 + headerLength + expectedOffset).as("file ends with the last tensor").isEqualTo(out.size());
      assertThat(headerLength % 8).isZero();
    }
  }

  private static String djlName(Model model, String torchName) {
    return model.getBlock().getParameters().keys().stream()
        .filter(name -> Safetensors.torchName(name).equals(torchName)).findFirst().orElseThrow();
  }
}
