package dev.distillery.common.ml;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.DataOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.GZIPOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class IdxReaderTest {
  static final Path SUBSET = Path.of("../../datasets/fashion-mnist-subset");

  @Test
  void readsPlainAndGzippedFilesAlike(@TempDir Path dir) throws IOException {
    byte[] pixels = {0, 1, 2, 3, 4, 5, 6, (byte) 255, 8, 9, 10, 11};
    writeIdx(Files.newOutputStream(dir.resolve("plain")), 0x00000803, new int[] {3, 2, 2}, pixels);
    writeIdx(new GZIPOutputStream(Files.newOutputStream(dir.resolve("zipped"))), 0x00000803, new int[] {3, 2, 2}, pixels);
    for (String name : new String[] {"plain", "zipped"}) {
      IdxReader.IdxArray array = IdxReader.read(dir.resolve(name));
      assertThat(array.shape()).containsExactly(3, 2, 2);
      assertThat(array.data()).containsExactly(pixels);
    }
  }

  @Test
  void rejectsWhatIsNotUnsignedByteIdx(@TempDir Path dir) throws IOException {
    writeIdx(Files.newOutputStream(dir.resolve("floats")), 0x00000D01, new int[] {1}, new byte[4]);
    assertThatThrownBy(() -> IdxReader.read(dir.resolve("floats"))).hasMessageContaining("not an unsigned-byte IDX");
    writeIdx(Files.newOutputStream(dir.resolve("short")), 0x00000801, new int[] {10}, new byte[3]);
    assertThatThrownBy(() -> IdxReader.read(dir.resolve("short"))).isInstanceOf(IOException.class);
  }

  /** A header claiming 2 GB in a file of a few bytes fails at once, and allocates only what is there. */
  @Test
  void aHeaderIsCheckedAgainstTheDataThere(@TempDir Path dir) throws IOException {
    writeIdx(Files.newOutputStream(dir.resolve("claims")), 0x00000803, new int[] {60_000, 28, 1278}, new byte[16]);
    writeIdx(new GZIPOutputStream(Files.newOutputStream(dir.resolve("claims.gz"))), 0x00000803,
        new int[] {60_000, 28, 1278}, new byte[16]);
    Runtime runtime = Runtime.getRuntime();
    for (String name : new String[] {"claims", "claims.gz"}) {
      long before = runtime.totalMemory() - runtime.freeMemory();
      assertThatThrownBy(() -> IdxReader.read(dir.resolve(name))).hasMessageContaining("truncated")
          .hasMessageContaining("claims 2147040000 bytes").hasMessageContaining("holds 16");
      assertThat(runtime.totalMemory() - runtime.freeMemory() - before).as("bytes allocated").isLessThan(1L << 30);
    }
    writeIdx(Files.newOutputStream(dir.resolve("huge")), 0x00000803, new int[] {1 << 30, 1 << 30, 4}, new byte[1]);
    assertThatThrownBy(() -> IdxReader.read(dir.resolve("huge"))).hasMessageContaining("too large");
    writeIdx(Files.newOutputStream(dir.resolve("negative")), 0x00000803, new int[] {-1, 28, 28}, new byte[1]);
    assertThatThrownBy(() -> IdxReader.read(dir.resolve("negative"))).hasMessageContaining("negative dimension");
  }

  @Test
  void theShippedSubsetIsFashionMnist() throws IOException {
    ImageDataset train = Datasets.read(SUBSET, "train");
    ImageDataset test = Datasets.read(SUBSET, "t10k");
    assertThat(train.size()).isEqualTo(4000);
    assertThat(test.size()).isEqualTo(1000);
    assertThat(train.numClasses()).isEqualTo(10);
    assertThat(train.imageShape().getShape()).containsExactly(1, 28, 28);
    // The first training image of Fashion-MNIST is an ankle boot (class 9), the first test image too.
    assertThat(train.label(0)).isEqualTo(9);
    assertThat(test.label(0)).isEqualTo(9);
    assertThat(train.limit(100).size()).isEqualTo(100);
  }

  /** A job with nothing to train or test on fails at once, naming the field, instead of waiting forever. */
  @Test
  void anEmptyOrUnreadableDatasetFailsNamingItsLocation(@TempDir Path dir) throws IOException {
    for (String prefix : new String[] {"train", "t10k"}) {
      writeIdx(Files.newOutputStream(dir.resolve(prefix + "-images-idx3-ubyte")), 0x00000803, new int[] {0, 28, 28}, new byte[0]);
      writeIdx(Files.newOutputStream(dir.resolve(prefix + "-labels-idx1-ubyte")), 0x00000801, new int[] {0}, new byte[0]);
    }
    var spec = dev.distillery.schemas.DatasetSpec.newBuilder().setLocation(dir.toString()).build();
    assertThatThrownBy(() -> Datasets.load(spec)).isInstanceOfSatisfying(dev.distillery.common.JobFailedException.class,
        e -> assertThat(e.field()).isEqualTo("dataset.location")).hasMessageContaining("0 training and 0 test images");
    Files.writeString(dir.resolve("train-images-idx3-ubyte"), "not idx");
    assertThatThrownBy(() -> Datasets.load(spec)).isInstanceOfSatisfying(dev.distillery.common.JobFailedException.class,
        e -> assertThat(e.field()).isEqualTo("dataset.location")).hasMessageContaining("not an unsigned-byte IDX");
  }

  @Test
  void aMissingFileIsNamed(@TempDir Path dir) {
    assertThatThrownBy(() -> Datasets.read(dir, "train")).hasMessageContaining("train-images-idx3-ubyte");
  }

  private static void writeIdx(OutputStream target, int magic, int[] shape, byte[] data) throws IOException {
    try (DataOutputStream out = new DataOutputStream(target)) {
      out.writeInt(magic);
      for (int dim : shape) {
        out.writeInt(dim);
      }
      out.write(data);
    }
  }
}
