package dev.distillery.common.ml;

import java.io.BufferedInputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.zip.GZIPInputStream;

/**
 * Reads IDX files, the format of MNIST and Fashion-MNIST, gzipped or plain: a magic number whose
 * third byte is the element type (only unsigned bytes, 0x08, are used by these datasets) and whose
 * fourth is the number of dimensions, then the big-endian dimensions, then the data.
 */
public final class IdxReader {
  private static final int UNSIGNED_BYTE = 0x08;
  /** The largest array Java can hold. */
  private static final long MAX_BYTES = Integer.MAX_VALUE - 8;

  /** An IDX tensor of unsigned bytes. */
  public record IdxArray(int[] shape, byte[] data) {
    public int count() {
      return shape[0];
    }
  }

  private IdxReader() {}

  public static IdxArray read(Path file) throws IOException {
    try (InputStream raw = Files.newInputStream(file)) {
      return read(raw, file.toString());
    }
  }

  /** Reads an IDX array, gzipped or not, from {@code stream}; {@code file} names it in errors. */
  public static IdxArray read(InputStream stream, String file) throws IOException {
    InputStream raw = new BufferedInputStream(stream);
    raw.mark(2);
    boolean gzip = raw.read() == 0x1f && raw.read() == 0x8b;
    raw.reset();
    // Closing releases the inflater's native memory now; it also closes stream, as callers expect.
    try (DataInputStream in = new DataInputStream(gzip ? new GZIPInputStream(raw, 1 << 16) : raw)) {
      return read(in, file);
    }
  }

  private static IdxArray read(DataInputStream in, String file) throws IOException {
    int magic = in.readInt();
    int type = (magic >>> 8) & 0xff;
    int dims = magic & 0xff;
    if ((magic >>> 16) != 0 || type != UNSIGNED_BYTE || dims < 1 || dims > 4) {
      throw new IOException(String.format("%s is not an unsigned-byte IDX file (magic 0x%08x)", file, magic));
    }
    int[] shape = new int[dims];
    long size = 1;
    for (int i = 0; i < dims; i++) {
      shape[i] = in.readInt();
      if (shape[i] < 0) {
        throw new IOException(file + " has a negative dimension: " + shape[i]);
      }
      size = Math.min(size * shape[i], MAX_BYTES + 1); // both below 2^31: no overflow
    }
    if (size > MAX_BYTES) {
      throw new IOException(file + " is too large: shape " + Arrays.toString(shape));
    }
    // The header is a claim, not a fact: read what is there (growing as it comes) and compare,
    // rather than allocating what a corrupt or crafted header asks for.
    byte[] data = in.readNBytes((int) size);
    if (data.length != size) {
      throw new IOException(file + " is truncated: its header (shape " + Arrays.toString(shape) + ") claims "
          + size + " bytes of data, the file holds " + data.length);
    }
    return new IdxArray(shape, data);
  }
}
