package dev.distillery.pruner;

import ai.djl.Model;
import dev.distillery.common.ml.JobModel;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;
import ai.djl.nn.Parameter;
import ai.djl.util.Pair;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Exports a model's parameters as a safetensors file with PyTorch's names. A TorchScript module's
 * keep their own ({@code layer1.0.conv1.weight}; its buffers, such as batch-norm statistics, are in
 * the module itself). A built-in model's are written with the names that make a
 * PyTorch user loads them with {@code safetensors.torch.load_file} and
 * {@code model.load_state_dict} into the same architecture written as an {@code nn.Sequential}.
 * DJL names a sequential block's parameters {@code 01Conv2d_weight}, counting layers from 1; the
 * same layer of an {@code nn.Sequential} is {@code 0.weight}. Both store convolution kernels as
 * (out, in, height, width) and dense weights as (out, in), so values are written as they are.
 *
 * <p>Format: an 8-byte little-endian header length, a JSON header naming each tensor's dtype,
 * shape and byte range, then the tensors' little-endian bytes back to back.
 */
final class Safetensors {
  private static final Pattern DJL_NAME = Pattern.compile("(\\d+)[A-Za-z0-9]*_(weight|bias)");

  private Safetensors() {}

  /** PyTorch's name for a parameter of a built-in (sequential) architecture. */
  static String torchName(String djlName) {
    Matcher m = DJL_NAME.matcher(djlName);
    if (!m.matches()) {
      throw new IllegalArgumentException("not a parameter of a sequential built-in model: " + djlName);
    }
    return (Integer.parseInt(m.group(1)) - 1) + "." + m.group(2);
  }

  static void write(JobModel job, OutputStream out) throws IOException {
    Model model = job.model();
    JsonObject header = new JsonObject().put("__metadata__", new JsonObject().put("format", "pt"));
    List<float[]> data = new ArrayList<>();
    long offset = 0;
    for (Pair<String, Parameter> p : model.getBlock().getParameters()) {
      NDArray array = p.getValue().getArray();
      if (array.getDataType() != DataType.FLOAT32) {
        throw new IOException("only float32 is exported, " + p.getKey() + " is " + array.getDataType());
      }
      float[] values = array.toFloatArray();
      long end = offset + (long) values.length * Float.BYTES;
      header.put(job.isTorchScript() ? p.getKey() : torchName(p.getKey()), new JsonObject().put("dtype", "F32")
          .put("shape", new JsonArray(java.util.Arrays.stream(array.getShape().getShape()).boxed().toList()))
          .put("data_offsets", new JsonArray().add(offset).add(end)));
      data.add(values);
      offset = end;
    }
    byte[] json = header.encode().getBytes(StandardCharsets.UTF_8);
    int padded = (json.length + 7) / 8 * 8; // the format recommends 8-byte alignment of the data
    ByteBuffer prefix = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
    prefix.putLong(padded).put(json);
    while (prefix.hasRemaining()) {
      prefix.put((byte) ' ');
    }
    out.write(prefix.array());
    for (float[] values : data) {
      ByteBuffer bytes = ByteBuffer.allocate(values.length * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
      bytes.asFloatBuffer().put(values);
      out.write(bytes.array());
    }
  }
}
