package dev.distillery.pruner;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.util.Pair;
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
 * little-endian bytes.
 */
final class SparseCheckpoint {
  private static final byte[] MAGIC = "DSPZ".getBytes(StandardCharsets.US_ASCII);
  private static final int DENSE = 0;
  private static final int BITMASK = 1;
  private static final int VERSION = 2;

  /** One tensor as read back. */
  record Tensor(Shape shape, float[] values) {}

  private SparseCheckpoint() {}

  static void write(Model model, OutputStream sink) throws IOException {
    sink.write(MAGIC);
    sink.write(VERSION);
    Deflater deflater = new Deflater(Deflater.BEST_COMPRESSION);
    try {
      DeflaterOutputStream deflating = new DeflaterOutputStream(sink, deflater);
      writeTensors(model, new DataOutputStream(deflating));
      deflating.finish(); // the sink stays open: it belongs to the caller
    } finally {
      deflater.end();
    }
  }

  private static void writeTensors(Model model, DataOutputStream out) throws IOException {
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
      long denseBytes = 4L * values.length;
      long bitmaskBytes = (values.length + 7) / 8 + 4 + 4L * nonZero;
      if (bitmaskBytes < denseBytes) {
        out.writeByte(BITMASK);
        byte[] mask = new byte[(values.length + 7) / 8];
        float[] kept = new float[nonZero];
        int k = 0;
        for (int i = 0; i < values.length; i++) {
          if (values[i] != 0) {
            mask[i >>> 3] |= (byte) (1 << (i & 7));
            kept[k++] = values[i];
          }
        }
        out.write(mask);
        out.writeInt(nonZero);
        out.write(bytePlanes(kept));
      } else {
        out.writeByte(DENSE);
        out.write(bytePlanes(values));
      }
    }
    out.flush();
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
      if (encoding == DENSE) {
        floats(in, values.length, values);
      } else if (encoding == BITMASK) {
        byte[] mask = in.readNBytes((values.length + 7) / 8);
        float[] kept = new float[in.readInt()];
        floats(in, kept.length, kept);
        int k = 0;
        for (int i = 0; i < values.length; i++) {
          if ((mask[i >>> 3] >>> (i & 7) & 1) != 0) {
            values[i] = kept[k++];
          }
        }
        if (k != kept.length) {
          throw new IOException(name + ": mask has " + k + " entries set, " + kept.length + " values stored");
        }
      } else {
        throw new IOException(name + ": unknown encoding " + encoding);
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
