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
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Exports a model's parameters as a safetensors file with PyTorch's names. A TorchScript module's
 * keep their own ({@code layer1.0.conv1.weight}; its buffers, such as batch-norm statistics, are in
 * the module itself). A built-in model's get the names of the same architecture written with
 * {@code nn.Sequential} (see {@link #torchName}), so a PyTorch user loads them with {@code
 * safetensors.torch.load_file} and {@code model.load_state_dict}. DJL and PyTorch both store
 * convolution kernels as (out, in, height, width) and dense weights as (out, in), so values are
 * written as they are.
 *
 * <p>Format: an 8-byte little-endian header length, a JSON header naming each tensor's dtype,
 * shape and byte range, then the tensors' little-endian bytes back to back.
 */
final class Safetensors {
  private static final Pattern DJL_BLOCK = Pattern.compile("(\\d+)[A-Za-z0-9]*");
  /** DJL's parameter names and PyTorch's: batch norm's scale and shift are its weight and bias. */
  private static final Map<String, String> TORCH_PARAMETER = Map.of("weight", "weight", "bias", "bias",
      "gamma", "weight", "beta", "bias", "runningMean", "running_mean", "runningVar", "running_var");

  private Safetensors() {}

  /**
   * PyTorch's name for a parameter of a built-in architecture: each block on the path counted from
   * 0, as {@code nn.Sequential} (and a residual block's branches, as an {@code nn.ModuleList})
   * number them: {@code 04ParallelBlock_01SequentialBlock_02BatchNorm_gamma} is {@code 3.0.1.weight}.
   */
  static String torchName(String djlName) {
    String[] parts = djlName.split("_");
    StringBuilder name = new StringBuilder();
    for (int i = 0; i < parts.length - 1; i++) {
      Matcher m = DJL_BLOCK.matcher(parts[i]);
      if (!m.matches()) {
        throw new IllegalArgumentException("not a parameter of a built-in model: " + djlName);
      }
      name.append(Integer.parseInt(m.group(1)) - 1).append('.');
    }
    String parameter = TORCH_PARAMETER.get(parts[parts.length - 1]);
    if (parts.length < 2 || parameter == null) {
      throw new IllegalArgumentException("not a parameter of a built-in model: " + djlName);
    }
    return name.append(parameter).toString();
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
