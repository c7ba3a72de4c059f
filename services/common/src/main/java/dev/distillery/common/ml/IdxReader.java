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
      size *= shape[i];
    }
    if (size > Integer.MAX_VALUE) {
      throw new IOException(file + " is too large: shape " + Arrays.toString(shape));
    }
    byte[] data = new byte[(int) size];
    in.readFully(data);
    return new IdxArray(shape, data);
  }
}
