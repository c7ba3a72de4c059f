package dev.distillery.pruner;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.util.Pair;
import dev.distillery.common.ml.Evaluation;
import dev.distillery.common.ml.ImageDataset;
import dev.distillery.common.ml.OnnxExport;
import dev.distillery.common.ml.TrainingCheckpoint;
import java.nio.file.Files;
import java.nio.file.Path;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.EOFException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.zip.Deflater;
import java.util.zip.DeflaterOutputStream;
import java.util.zip.Inflater;
import java.util.zip.InflaterInputStream;

/**
 * A pruned model's weights in a compact, lossless encoding whose file size is what pruning saves
 * on disk. Each tensor is stored either dense or, when smaller, as a bitmask of its non-zero
 * positions followed by the non-zero values; float32 values are kept exactly (a zero's sign is
 * not: masking a negative weight gives -0.0, read back as 0.0). As in Han et al.'s deep
 * compression, an entropy coder follows: everything after the version byte is DEFLATE-compressed,
 * and float values are stored as byte planes (all first bytes, then all second bytes, ...), which
 * puts the sign-and-exponent bytes, alike among weights of one layer, side by side for it.
 *
 * <p>Layout before compression (big-endian counts): magic {@code DSPZ}, version byte 2, then
 * deflated: tensor count (int); per tensor: name (modified UTF-8), rank (byte), dimensions (ints),
 * encoding byte (0 dense, 1 bitmask), then for dense the n float32 values, for bitmask ceil(n/8)
 * mask bytes (bit i of byte i/8 set when entry i is non-zero, least significant bit first), the
 * non-zero count (int) and the non-zero values in order; values as byte planes of their
 * little-endian bytes. In the int8 form ({@link #writeInt8}) each weight tensor of two or more
 * dimensions is stored quantized as the int8 ONNX model quantizes it (per output channel,
 * symmetric: {@link OnnxExport.Int8Weights}): encoding 2 (dense int8) or 3 (bitmask int8), then the
 * channel count (int) and the channels' float32 scales, then the int8 values where the float form
 * has float32 ones; value = q * scale of its channel. Other tensors stay float32.
 */
final class SparseCheckpoint {
  private static final byte[] MAGIC = "DSPZ".getBytes(StandardCharsets.US_ASCII);
  private static final int DENSE = 0;
  private static final int BITMASK = 1;
  private static final int DENSE_INT8 = 2;
  private static final int BITMASK_INT8 = 3;
  private static final int VERSION = 2;

  /** One tensor as read back. */
  record Tensor(Shape shape, float[] values) {}

  private SparseCheckpoint() {}

  static void write(Model model, OutputStream sink) throws IOException {
    write(model, sink, false);
  }

  /** As {@link #write}, each weight tensor of two or more dimensions as per-channel int8 (Deep Compression's third step, at 8 bits). */
  static void writeInt8(Model model, OutputStream sink) throws IOException {
    write(model, sink, true);
  }

  private static void write(Model model, OutputStream sink, boolean int8) throws IOException {
    sink.write(MAGIC);
    sink.write(VERSION);
    Deflater deflater = new Deflater(Deflater.BEST_COMPRESSION);
    try {
      DeflaterOutputStream deflating = new DeflaterOutputStream(sink, deflater);
      writeTensors(model, new DataOutputStream(deflating), int8);
      deflating.finish(); // the sink stays open: it belongs to the caller
    } finally {
      deflater.end();
    }
  }

  private static void writeTensors(Model model, DataOutputStream out, boolean int8) throws IOException {
    var parameters = model.getBlock().getParameters();
    out.writeInt(parameters.size());
    for (Pair<String, Parameter> p : parameters) {
      NDArray array = p.getValue().getArray();
      float[] values = array.toFloatArray();
      out.writeUTF(p.getKey());
      long[] dims = array.getShape().getShape();
      out.writeByte(dims.length);
      for (long dim : dims) {
        out.writeInt(Math.toIntExact(dim));
      }
      int nonZero = 0;
      for (float v : values) {
        nonZero += v != 0 ? 1 : 0;
      }
      OnnxExport.Int8Weights quantized = int8 && dims.length >= 2
          ? OnnxExport.Int8Weights.of(values, Math.toIntExact(dims[0])) : null;
      int valueBytes = quantized != null ? 1 : Float.BYTES;
      long denseBytes = (long) valueBytes * values.length;
      long bitmaskBytes = (values.length + 7) / 8 + 4 + (long) valueBytes * nonZero;
      boolean bitmask = bitmaskBytes < denseBytes;
      out.writeByte(quantized == null ? (bitmask ? BITMASK : DENSE) : (bitmask ? BITMASK_INT8 : DENSE_INT8));
      if (quantized != null) {
        out.writeInt(quantized.scales().length);
        out.write(bytePlanes(quantized.scales()));
      }
      int[] kept = new int[bitmask ? nonZero : values.length];
      if (bitmask) {
        byte[] mask = new byte[(values.length + 7) / 8];
        int k = 0;
        for (int i = 0; i < values.length; i++) {
          if (values[i] != 0) {
            mask[i >>> 3] |= (byte) (1 << (i & 7));
            kept[k++] = i;
          }
        }
        out.write(mask);
        out.writeInt(nonZero);
      } else {
        Arrays.setAll(kept, i -> i);
      }
      if (quantized != null) {
        byte[] bytes = new byte[kept.length];
        for (int k = 0; k < kept.length; k++) {
          bytes[k] = quantized.values()[kept[k]];
        }
        out.write(bytes);
      } else {
        float[] floats = new float[kept.length];
        for (int k = 0; k < kept.length; k++) {
          floats[k] = values[kept[k]];
        }
        out.write(bytePlanes(floats));
      }
    }
    out.flush();
  }

  /**
   * The test accuracy of {@code model} with the weights of the sparse checkpoint at {@code file}
   * (as read back, int8 weights dequantized); the model's own weights are restored after.
   */
  static double accuracyOf(Model model, Path file, ImageDataset test) throws Exception {
    Map<String, Tensor> tensors;
    try (InputStream in = Files.newInputStream(file)) {
      tensors = read(in);
    }
    byte[] own = TrainingCheckpoint.weights(model);
    try {
      for (Pair<String, Parameter> p : model.getBlock().getParameters()) {
        Tensor tensor = tensors.get(p.getKey());
        if (tensor == null || !tensor.shape().equals(p.getValue().getArray().getShape())) {
          throw new IOException("the sparse checkpoint does not hold " + p.getKey() + " as the model has it");
        }
        p.getValue().getArray().set(tensor.values());
      }
      return Evaluation.accuracy(model, test);
    } finally {
      TrainingCheckpoint.load(model, own);
    }
  }

  static Map<String, Tensor> read(InputStream source) throws IOException {
    byte[] magic = source.readNBytes(4);
    if (!Arrays.equals(magic, MAGIC) || source.read() != VERSION) {
      throw new IOException("not a version " + VERSION + " sparse checkpoint");
    }
    Inflater inflater = new Inflater();
    try {
      return readTensors(new DataInputStream(new InflaterInputStream(source, inflater)));
    } finally {
      inflater.end();
    }
  }

  private static Map<String, Tensor> readTensors(DataInputStream in) throws IOException {
    Map<String, Tensor> tensors = new LinkedHashMap<>();
    int count = in.readInt();
    for (int t = 0; t < count; t++) {
      String name = in.readUTF();
      long[] dims = new long[in.readByte()];
      long n = 1;
      for (int d = 0; d < dims.length; d++) {
        dims[d] = in.readInt();
        n *= dims[d];
      }
      float[] values = new float[Math.toIntExact(n)];
      int encoding = in.readByte();
      if (encoding < DENSE || encoding > BITMASK_INT8) {
        throw new IOException(name + ": unknown encoding " + encoding);
      }
      boolean int8 = encoding == DENSE_INT8 || encoding == BITMASK_INT8;
      float[] scales = null;
      if (int8) {
        scales = new float[in.readInt()];
        floats(in, scales.length, scales);
        if (scales.length == 0 || dims.length == 0 || dims[0] != scales.length) {
          throw new IOException(name + ": " + scales.length + " channel scales for shape " + Arrays.toString(dims));
        }
      }
      byte[] mask = encoding == BITMASK || encoding == BITMASK_INT8 ? in.readNBytes((values.length + 7) / 8) : null;
      float[] kept = new float[mask == null ? values.length : in.readInt()];
      if (int8) {
        byte[] bytes = in.readNBytes(kept.length);
        if (bytes.length != kept.length) {
          throw new EOFException("sparse checkpoint ends inside a tensor");
        }
        for (int k = 0; k < kept.length; k++) {
          kept[k] = bytes[k];
        }
      } else {
        floats(in, kept.length, kept);
      }
      int k = 0;
      for (int i = 0; i < values.length; i++) {
        if (mask == null || (mask[i >>> 3] >>> (i & 7) & 1) != 0) {
          if (k == kept.length) {
            throw new IOException(name + ": mask has more entries set than the " + kept.length + " values stored");
          }
          values[i] = int8 ? kept[k++] * scales[(int) (i / (values.length / scales.length))] : kept[k++];
        }
      }
      if (k != kept.length) {
        throw new IOException(name + ": mask has " + k + " entries set, " + kept.length + " values stored");
      }
      tensors.put(name, new Tensor(new Shape(dims), values));
    }
    return tensors;
  }

  /** Byte b of value i, of its little-endian bytes, at b * n + i. */
  private static byte[] bytePlanes(float[] values) {
    byte[] planes = new byte[values.length * Float.BYTES];
    for (int i = 0; i < values.length; i++) {
      int bits = Float.floatToRawIntBits(values[i]);
      for (int b = 0; b < Float.BYTES; b++) {
        planes[b * values.length + i] = (byte) (bits >>> (8 * b));
      }
    }
    return planes;
  }

  private static void floats(DataInputStream in, int count, float[] into) throws IOException {
    byte[] planes = in.readNBytes(count * Float.BYTES);
    if (planes.length != count * Float.BYTES) {
      throw new EOFException("sparse checkpoint ends inside a tensor");
    }
    for (int i = 0; i < count; i++) {
      int bits = 0;
      for (int b = 0; b < Float.BYTES; b++) {
        bits |= (planes[b * count + i] & 0xff) << (8 * b);
      }
      into[i] = Float.intBitsToFloat(bits);
    }
  }
}
