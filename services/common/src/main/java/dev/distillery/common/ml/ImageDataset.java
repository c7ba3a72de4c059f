package dev.distillery.common.ml;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.Arrays;
import java.util.Random;

/**
 * Labelled single-channel images kept as raw bytes (a quarter of the memory of floats), turned
 * into normalised float batches on demand.
 */
public final class ImageDataset {
  private final byte[] pixels;
  private final int[] labels;
  private final int rows;
  private final int cols;

  public ImageDataset(byte[] pixels, int[] labels, int rows, int cols) {
    if (pixels.length != labels.length * rows * cols) {
      throw new IllegalArgumentException(
          pixels.length + " pixels do not make " + labels.length + " images of " + rows + "x" + cols);
    }
    this.pixels = pixels;
    this.labels = labels;
    this.rows = rows;
    this.cols = cols;
  }

  public int size() {
    return labels.length;
  }

  public int label(int index) {
    return labels[index];
  }

  public int numClasses() {
    return Arrays.stream(labels).max().orElse(-1) + 1;
  }

  /** Shape of one image as the models take it: channels, rows, columns. */
  public Shape imageShape() {
    return new Shape(1, rows, cols);
  }

  /** The first {@code n} samples (all when {@code n} is 0 or not smaller than the size). */
  public ImageDataset limit(int n) {
    if (n <= 0 || n >= size()) {
      return this;
    }
    int imageSize = rows * cols;
    return new ImageDataset(Arrays.copyOf(pixels, n * imageSize), Arrays.copyOf(labels, n), rows, cols);
  }

  /** The samples {@code indices}, in that order, as a dataset of their own. */
  public ImageDataset subset(int[] indices) {
    int imageSize = rows * cols;
    byte[] chosenPixels = new byte[indices.length * imageSize];
    int[] chosenLabels = new int[indices.length];
    for (int i = 0; i < indices.length; i++) {
      System.arraycopy(pixels, indices[i] * imageSize, chosenPixels, i * imageSize, imageSize);
      chosenLabels[i] = labels[indices[i]];
    }
    return new ImageDataset(chosenPixels, chosenLabels, rows, cols);
  }

  /** The number of samples of each label, indexed by label, up to the largest label. */
  public int[] classCounts() {
    int[] counts = new int[numClasses()];
    for (int label : labels) {
      counts[label]++;
    }
    return counts;
  }

  /**
   * Only the samples of {@code classes}, relabelled 0..k-1 in the order given (class
   * {@code classes[0]} becomes 0): how a task on some of the classes is cut from a dataset.
   */
  public ImageDataset onlyClasses(int[] classes) {
    int[] relabel = new int[256];
    Arrays.fill(relabel, -1);
    for (int i = 0; i < classes.length; i++) {
      relabel[classes[i]] = i;
    }
    int[] kept = Arrays.stream(range(0, size())).filter(i -> labels[i] < relabel.length && relabel[labels[i]] >= 0).toArray();
    ImageDataset subset = subset(kept);
    for (int i = 0; i < subset.labels.length; i++) {
      subset.labels[i] = relabel[subset.labels[i]];
    }
    return subset;
  }

  /**
   * Images preprocessed for a model that expects {@code input}, for inference: the built-in
   * preprocessing gives a channels-last view ({@link #channelsLast}).
   */
  public NDArray images(NDManager manager, int[] indices, Preprocessing input) {
    float[] batch = new float[indices.length * rows * cols];
    fill(FloatBuffer.wrap(batch), indices, input);
    NDArray images = manager.create(batch, shape(indices.length, input));
    // The built-in models only: a user's TorchScript module may view() its input, which a
    // channels-last view refuses.
    return input.shape().length == 0 ? forInference(images) : images;
  }

  /** Images {@code from..from+count-1} preprocessed for {@code input}, one after another (NCHW), for runtimes other than DJL. */
  public float[] values(int from, int count, Preprocessing input) {
    float[] batch = new float[count * rows * cols];
    fill(FloatBuffer.wrap(batch), range(from, from + count), input);
    return batch;
  }

  /**
   * Contiguous single-channel images {@code [N, 1, H, W]} for a built-in model's inference: the
   * same bytes seen as channels-last ({@link #channelsLast}); anything else as it is.
   */
  public static NDArray forInference(NDArray images) {
    Shape shape = images.getShape();
    if (shape.dimension() != 4 || shape.get(1) != 1) {
      return images;
    }
    return channelsLast(images.reshape(shape.get(0), shape.get(2), shape.get(3), 1));
  }

  /**
   * {@code [N, H, W, C]} seen as {@code [N, C, H, W]} with channels-last strides, the layout of
   * images for inference (for one channel, the same bytes as NCHW). From such an input libtorch
   * runs oneDNN's convolutions in NHWC throughout, instead of reordering every activation between
   * NCHW and oneDNN's blocked layout (31% of oneDNN's time in convnet inference at batch 256):
   * convnet inference 1.55x faster (bench/README.md, "Kernels"). Training keeps NCHW: backward in
   * NHWC was 1.2x faster too, but oneDNN 3.7.1's 1x1 backward-weights kernel crashed the JVM
   * (SIGSEGV) on NHWC inputs in KernelParity's design (uxlfoundation/oneDNN#6035). KernelParity
   * checks NHWC forward passes and NCHW forward and backward passes, as they are used.
   */
  public static NDArray channelsLast(NDArray nhwc) {
    return nhwc.transpose(0, 3, 1, 2);
  }

  /**
   * Images {@code [indices.length, 1, rows, cols]} (or {@code input}'s shape) for training (NCHW,
   * see {@link #channelsLast}) written into {@code buffer} (direct, native
   * order, room for the batch) and returned as an array that shares it: DJL wraps a direct buffer
   * without copying. The array is valid until the buffer is filled again. Reusing one buffer per
   * training run saves a fresh, zeroed and page-faulted direct buffer per step, which is only freed
   * at a garbage collection (measured: 1.3x training speed for LeNet-5, peak RSS 650 to 400 MB).
   */
  public NDArray images(NDManager manager, int[] indices, ByteBuffer buffer, Preprocessing input) {
    return images(manager, indices, buffer, input, null);
  }

  /**
   * As {@link #images(NDManager, int[], ByteBuffer, Preprocessing)}, each image varied at random
   * when {@code shiftFlip} is given: shifted by up to {@link #MAX_SHIFT} pixels each way, the
   * uncovered border black (torchvision's {@code RandomCrop(size, padding=2)}), then mirrored
   * left-right with probability 1/2 ({@code RandomHorizontalFlip}).
   */
  public NDArray images(NDManager manager, int[] indices, ByteBuffer buffer, Preprocessing input, Random shiftFlip) {
    buffer.clear();
    FloatBuffer out = buffer.asFloatBuffer();
    if (shiftFlip == null) {
      fill(out, indices, input);
    } else {
      fillShiftedAndFlipped(out, indices, input, shiftFlip);
    }
    buffer.limit(indices.length * rows * cols * Float.BYTES);
    return manager.create(buffer, shape(indices.length, input), DataType.FLOAT32);
  }

  /** The largest shift of {@link #images(NDManager, int[], ByteBuffer, Preprocessing, Random)}, in pixels. */
  public static final int MAX_SHIFT = 2;

  private void fillShiftedAndFlipped(FloatBuffer out, int[] indices, Preprocessing input, Random random) {
    for (int index : indices) {
      int dy = random.nextInt(2 * MAX_SHIFT + 1) - MAX_SHIFT;
      int dx = random.nextInt(2 * MAX_SHIFT + 1) - MAX_SHIFT;
      shiftAndFlip(pixels, index * rows * cols, rows, cols, dy, dx, random.nextBoolean(), input, out);
    }
  }

  /**
   * Writes one image shifted by {@code dy} rows and {@code dx} columns (pixel (r, c) shows the
   * source's (r + dy, c + dx), black outside it: torchvision's crop at (dy + 2, dx + 2) of the image
   * padded by 2), then mirrored left-right when {@code flip}, preprocessed by {@code input}.
   */
  static void shiftAndFlip(byte[] pixels, int offset, int rows, int cols, int dy, int dx, boolean flip,
      Preprocessing input, FloatBuffer out) {
    float black = input.apply(0);
    for (int r = 0; r < rows; r++) {
      int sourceRow = r + dy;
      for (int c = 0; c < cols; c++) {
        int sourceCol = (flip ? cols - 1 - c : c) + dx;
        boolean inside = sourceRow >= 0 && sourceRow < rows && sourceCol >= 0 && sourceCol < cols;
        out.put(inside ? input.apply(pixels[offset + sourceRow * cols + sourceCol] & 0xff) : black);
      }
    }
  }

  /** A buffer for {@link #images(NDManager, int[], ByteBuffer, Preprocessing)} of up to {@code batchSize} images. */
  public ByteBuffer batchBuffer(int batchSize) {
    return ByteBuffer.allocateDirect(Math.multiplyExact(batchSize, rows * cols * Float.BYTES))
        .order(ByteOrder.nativeOrder());
  }

  private void fill(FloatBuffer out, int[] indices, Preprocessing input) {
    int imageSize = rows * cols;
    for (int index : indices) {
      int offset = index * imageSize;
      for (int p = 0; p < imageSize; p++) {
        out.put(input.apply(pixels[offset + p] & 0xff));
      }
    }
  }

  private Shape shape(int batch, Preprocessing input) {
    return input.batchShape(batch, imageShape());
  }

  /** Labels {@code [indices.length]} as int64, the type cross-entropy expects. */
  public NDArray labels(NDManager manager, int[] indices) {
    long[] batch = new long[indices.length];
    for (int i = 0; i < indices.length; i++) {
      batch[i] = labels[indices[i]];
    }
    return manager.create(batch);
  }

  /** Shuffles {@code order} in place (Fisher-Yates), reproducibly for a seeded {@code random}. */
  public static void shuffle(int[] order, Random random) {
    for (int i = order.length - 1; i > 0; i--) {
      int j = random.nextInt(i + 1);
      int t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
  }

  /** Indices {@code from..to-1}. */
  public static int[] range(int from, int to) {
    int[] indices = new int[to - from];
    Arrays.setAll(indices, i -> from + i);
    return indices;
  }
}
