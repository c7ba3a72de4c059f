package dev.distillery.common.ml;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.distillery.common.JobControl;
import java.nio.FloatBuffer;
import java.util.Collection;
import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import java.util.Set;

/**
 * An ONNX model in ONNX Runtime's CPU session (every graph optimisation on, so QDQ models run on
 * its int8 kernels): where Distillery measures what its ONNX exports compute and how fast.
 */
public final class OnnxRuntime implements AutoCloseable {
  private static final int BATCH = 256;
  private static final long WARM_UP_NANOS = 250_000_000L;
  private final OrtSession session;
  private final long[] imageShape;

  /**
   * @param threads intra-op threads; measure ONNX Runtime with as many as libtorch has
   */
  public OnnxRuntime(byte[] model, long[] imageShape, int threads) throws OrtException {
    try (OrtSession.SessionOptions options = new OrtSession.SessionOptions()) {
      options.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT);
      options.setIntraOpNumThreads(threads);
      options.setInterOpNumThreads(1);
      this.session = OrtEnvironment.getEnvironment().createSession(model, options);
    }
    this.imageShape = imageShape.clone();
  }

  /** The threads libtorch computes with in this process, for a side-by-side measurement. */
  public static int torchThreads() {
    return Integer.getInteger("ai.djl.pytorch.num_threads", Runtime.getRuntime().availableProcessors());
  }

  /** The values of {@code outputs} for {@code count} preprocessed images, by output name. */
  public Map<String, float[]> run(float[] images, int count, Collection<String> outputs) throws OrtException {
    long[] shape = new long[imageShape.length + 1];
    shape[0] = count;
    System.arraycopy(imageShape, 0, shape, 1, imageShape.length);
    OrtEnvironment env = OrtEnvironment.getEnvironment();
    try (OnnxTensor input = OnnxTensor.createTensor(env, FloatBuffer.wrap(images), shape);
        OrtSession.Result result = session.run(Map.of(OnnxExport.INPUT, input), Set.copyOf(outputs))) {
      Map<String, float[]> values = new HashMap<>();
      for (String name : outputs) {
        FloatBuffer buffer = ((OnnxTensor) result.get(name).orElseThrow()).getFloatBuffer();
        float[] array = new float[buffer.remaining()];
        buffer.get(array);
        values.put(name, array);
      }
      return values;
    }
  }

  /** The logits of {@code count} preprocessed images, {@code [count * classes]}. */
  public float[] logits(float[] images, int count) throws OrtException {
    return run(images, count, Set.of(OnnxExport.OUTPUT)).get(OnnxExport.OUTPUT);
  }

  /** Top-1 accuracy on {@code data}, 0..1, in batches of 256. */
  public double accuracy(ImageDataset data, Preprocessing input) throws Exception {
    long correct = 0;
    for (int first = 0; first < data.size(); first += BATCH) {
      JobControl.checkpoint();
      int count = Math.min(BATCH, data.size() - first);
      float[] logits = logits(data.values(first, count, input), count);
      correct += Evaluation.correct(logits, count, logits.length / count, data, first);
    }
    return data.size() == 0 ? 0 : (double) correct / data.size();
  }

  /**
   * The median wall time in milliseconds of one run over {@code batch} random images, over
   * {@code repeats} runs after a warm-up of a quarter of a second: shorter
   * than {@link InferenceCost#latencyMillis}'s second for DJL, which libtorch's first passes need,
   * to keep QUANTIZATION's four measurements short (bench/README.md's ONNX figures were taken with
   * a second).
   */
  public double latencyMillis(int batch, int repeats) throws OrtException {
    long size = batch;
    for (long d : imageShape) {
      size *= d;
    }
    float[] images = new float[Math.toIntExact(size)];
    Random random = new Random(0);
    for (int i = 0; i < images.length; i++) {
      images[i] = (float) random.nextGaussian();
    }
    return InferenceCost.medianMillis(WARM_UP_NANOS, repeats, () -> {
      long start = System.nanoTime();
      logits(images, batch);
      return System.nanoTime() - start;
    });
  }

  @Override
  public void close() throws OrtException {
    session.close();
  }
}
