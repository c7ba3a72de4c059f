package dev.distillery.common.ml;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Block;
import ai.djl.nn.Parameter;
import ai.djl.nn.convolutional.Conv2d;
import ai.djl.nn.core.Linear;
import ai.djl.pytorch.jni.JniUtils;
import ai.djl.training.GradientCollector;
import ai.djl.training.ParameterStore;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.function.Predicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Kernel parity harness: runs convolution and dense layers, and whole built-in models, through
 * DJL in float32 under this process's kernel configuration ({@link DjlRuntime#kernels()}) -
 * forward, backward-data (the input's gradient) and backward-weights and -bias - and compares each
 * with the same computation in float64, which oneDNN never serves, so the oracle cannot share a
 * oneDNN fault.
 *
 * <p>A case passes at every thread count given when every float32 output is finite; lies within
 * {@link #TOLERANCE} of the oracle (see {@link #relativeError}: for a layer, relative to the sum of
 * |terms| behind its outputs; for a whole model, relative to the oracle's largest value of that
 * output, with {@link #MODEL_GRADIENT_TOLERANCE} for its weight and bias gradients); is exactly 0
 * where no term contributes; and, for a model, picks the oracle's class for every sample
 * (near-ties aside). Holding every thread count to the oracle is what "the same result at every
 * thread count" can mean for float32, whose rounding legitimately changes with the split of a sum.
 * The whole design runs twice, the second time in reverse order, after all other work and with
 * freed memory filled with NaN first: stale scratch buffers are one suspected cause of oneDNN's
 * faults, and poisoned ones turn a read of one into a NaN (glibc hands large freed blocks back
 * out only with {@code MALLOC_MMAP_MAX_=0}, which every launcher sets; without it they come back
 * as fresh zeroed pages).
 *
 * <p>The designs ({@link #suiteDesign()}, {@link #sweepDesign()}) are pairwise covering designs:
 * every value of every dimension, and every pair of values of two dimensions, appears in some
 * case, at a fraction of the cases of the full product; {@link #probeDesign()} is a short list.
 * {@code main} runs a design and exits 1 on a failure; for each failing case it reruns the case in
 * a child JVM with {@code ONEDNN_VERBOSE=1} and reports the oneDNN implementations that served it.
 */
public final class KernelParity {
  /** Largest relative error against the float64 oracle that a float32 kernel may have. */
  public static final double TOLERANCE = 1e-4;
  /**
   * A whole model's weight and bias gradients may differ more: where two inputs of a max pooling window
   * differ by less than float32's rounding, rounding decides which one gets the gradient, and one
   * such flip moved the convnet's weight gradients by 3.5e-3 (float32 with oneDNN's forward
   * summation order against float64; libtorch's own order flips other windows). Gross faults (NaN,
   * wrong logits, the faults seen before) are far above this; single layers keep {@link #TOLERANCE}.
   */
  public static final double MODEL_GRADIENT_TOLERANCE = 1e-2;
  private static final String PROBE_IMAGES = "kernel-probe-images-idx3-ubyte.gz";
  private static final int IMAGE_SIDE = 28;

  /**
   * What a case runs: one convolution or dense layer, or a whole built-in architecture (10
   * classes, 28x28 images) whose parameters' gradients are the case's backward-weights.
   */
  public enum Layer {
    CONV(null, null),
    LINEAR(null, null),
    LENET5("lenet5", Architectures.hiddenUnits("lenet5", 1)),
    CONVNET("convnet", Architectures.hiddenUnits("convnet", 1)),
    /** The structurally pruned convnet whose logits oneDNN's AVX2 kernels got wrong (OddChannelInferenceTest). */
    CONVNET_ODD("convnet", List.of(6, 6, 13, 13, 51));

    private final String architecture;
    private final List<Integer> hidden;

    Layer(String architecture, List<Integer> hidden) {
      this.architecture = architecture;
      this.hidden = hidden;
    }

    boolean isModel() {
      return architecture != null;
    }

    String id() {
      return name().toLowerCase(Locale.ROOT).replace('_', '-');
    }
  }

  /** Where a case's inputs come from. */
  public enum Source { RANDOM, FASHION_MNIST }

  /**
   * One layer shape. For {@link Layer#LINEAR}, {@code in} and {@code out} are features and the
   * spatial fields are unused (1, 1, 0, 1). {@code channelsLast}: the input is a channels-last
   * view (ImageDataset.channelsLast), as images for inference are, which makes libtorch run
   * oneDNN's NHWC kernels; such a case is an inference and checks the forward pass only.
   */
  public record Case(Layer layer, int in, int out, int kernel, int stride, int padding, int width, int batch,
      Source source, boolean channelsLast) {
    private static final Pattern CONV = Pattern.compile(
        "conv (\\d+)->(\\d+) k(\\d+) s(\\d+) p(\\d+) w(\\d+) b(\\d+) ([A-Z_]+)( nhwc)?");
    private static final Pattern LINEAR = Pattern.compile("linear (\\d+)->(\\d+) b(\\d+) (\\w+)");
    private static final Pattern MODEL = Pattern.compile("([a-z0-9-]+) b(\\d+) ([A-Z_]+)( nhwc)?");

    public static Case conv(int in, int out, int kernel, int stride, int padding, int width, int batch, Source source,
        boolean channelsLast) {
      return new Case(Layer.CONV, in, out, kernel, stride, padding, width, batch, source, channelsLast);
    }

    public static Case linear(int in, int out, int batch, Source source) {
      return new Case(Layer.LINEAR, in, out, 1, 1, 0, 1, batch, source, false);
    }

    /**
     * A whole built-in model on 28x28 single-channel images: trained (NCHW, forward and backward)
     * or, {@code channelsLast}, run for inference (forward only), as the services use them.
     */
    public static Case model(Layer model, int batch, Source source, boolean channelsLast) {
      if (!model.isModel()) {
        throw new IllegalArgumentException(model + " is a single layer");
      }
      return new Case(model, 1, 10, 1, 1, 0, IMAGE_SIDE, batch, source, channelsLast);
    }

    /** Reads {@link #label()} back. */
    public static Case parse(String label) {
      Matcher conv = CONV.matcher(label.trim());
      if (conv.matches()) {
        int[] v = new int[7];
        for (int i = 0; i < 7; i++) {
          v[i] = Integer.parseInt(conv.group(i + 1));
        }
        return conv(v[0], v[1], v[2], v[3], v[4], v[5], v[6], Source.valueOf(conv.group(8)), conv.group(9) != null);
      }
      Matcher linear = LINEAR.matcher(label.trim());
      if (linear.matches()) {
        return linear(Integer.parseInt(linear.group(1)), Integer.parseInt(linear.group(2)),
            Integer.parseInt(linear.group(3)), Source.valueOf(linear.group(4)));
      }
      Matcher model = MODEL.matcher(label.trim());
      if (model.matches()) {
        for (Layer layer : Layer.values()) {
          if (layer.isModel() && layer.id().equals(model.group(1))) {
            return model(layer, Integer.parseInt(model.group(2)), Source.valueOf(model.group(3)),
                model.group(4) != null);
          }
        }
      }
      throw new IllegalArgumentException("not a kernel parity case: " + label);
    }

    public String label() {
      return switch (layer) {
        case CONV -> String.format("conv %d->%d k%d s%d p%d w%d b%d %s%s", in, out, kernel, stride, padding, width,
            batch, source, channelsLast ? " nhwc" : "");
        case LINEAR -> String.format("linear %d->%d b%d %s", in, out, batch, source);
        default -> String.format("%s b%d %s%s", layer.id(), batch, source, channelsLast ? " nhwc" : "");
      };
    }

    int outWidth() {
      return layer == Layer.CONV ? (width + 2 * padding - kernel) / stride + 1 : 1;
    }

    /** Multiply-accumulates of the forward pass (the backward passes cost about twice that). */
    long macs() {
      return (long) batch * out * outWidth() * outWidth() * in * kernel * kernel;
    }

    Shape inputShape() {
      return layer == Layer.LINEAR ? new Shape(batch, in) : new Shape(batch, in, width, width);
    }

    Shape weightShape() {
      return layer == Layer.CONV ? new Shape(out, in, kernel, kernel) : new Shape(out, in);
    }

    Shape outputShape() {
      return layer == Layer.CONV ? new Shape(batch, out, outWidth(), outWidth()) : new Shape(batch, out);
    }
  }

  /** One check that did not hold: which case, at how many threads, in which pass, and how. */
  public record Failure(Case testCase, int threads, int pass, String check, String detail) {
    @Override
    public String toString() {
      return testCase.label() + " threads=" + threads + " pass=" + pass + ": " + check + " " + detail;
    }
  }

  /**
   * The outcome of a run.
   *
   * @param worstError the largest relative error of any output that was finite
   * @param computations float32 computations run (cases x thread counts x passes)
   */
  public record Report(int cases, int computations, double worstError, List<Failure> failures, long millis) {
    public boolean passed() {
      return failures.isEmpty();
    }

    /** The failing cases, each once, in the order they first failed. */
    public List<Case> failingCases() {
      return failures.stream().map(Failure::testCase).distinct().toList();
    }

    public String summary() {
      return String.format("%d cases, %d float32 computations, worst relative error %.2e, %d failures (%d cases), %.1f s",
          cases, computations, worstError, failures.size(), failingCases().size(), millis / 1000.0);
    }
  }

  private record Outputs(double[] forward, double[] backwardData, double[] backwardWeights, double[] backwardBias) {
    double[] get(int i) {
      return switch (i) {
        case 0 -> forward;
        case 1 -> backwardData;
        case 2 -> backwardWeights;
        default -> backwardBias;
      };
    }
  }

  private static final String[] OUTPUTS = {"forward", "backward-data", "backward-weights", "backward-bias"};

  private final float[] images;
  private final int imageCount;
  private final double tolerance;

  private KernelParity(float[] images, int imageCount, double tolerance) {
    this.images = images;
    this.imageCount = imageCount;
    this.tolerance = tolerance;
  }

  /** This harness with another tolerance (a tolerance below float32's rounding makes every case fail). */
  public KernelParity withTolerance(double tolerance) {
    return new KernelParity(images, imageCount, tolerance);
  }

  /** A harness whose {@link Source#FASHION_MNIST} inputs are 256 real test images shipped in this jar. */
  public static KernelParity withShippedImages() {
    try (InputStream in = KernelParity.class.getResourceAsStream(PROBE_IMAGES)) {
      if (in == null) {
        throw new IllegalStateException(PROBE_IMAGES + " is missing from the classpath");
      }
      IdxReader.IdxArray array = IdxReader.read(in, PROBE_IMAGES);
      float[] images = new float[array.data().length];
      for (int i = 0; i < images.length; i++) {
        images[i] = Preprocessing.BUILT_IN.apply(array.data()[i] & 0xff);
      }
      return new KernelParity(images, array.count(), TOLERANCE);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Runs every case at every thread count, twice (the second pass in reverse order). */
  public Report run(List<Case> cases, int[] threadCounts) throws InterruptedException {
    long start = System.nanoTime();
    List<Failure> failures = new ArrayList<>();
    double worst = 0;
    // DJL allows one GradientCollector per JVM: the harness takes its turn with the trainings.
    TrainingLoop.ONE_GRADIENT_COLLECTOR_PER_JVM.lockInterruptibly();
    int threadsBefore = JniUtils.getNumThreads();
    boolean gradMode = JniUtils.isGradMode();
    try (NDManager manager = NDManager.newBaseManager()) {
      for (int pass = 1; pass <= 2; pass++) {
        for (int i = 0; i < cases.size(); i++) {
          Case c = cases.get(pass == 1 ? i : cases.size() - 1 - i);
          worst = Math.max(worst, checkCase(manager, c, threadsBefore, threadCounts, pass, failures));
        }
      }
    } finally {
      JniUtils.setNumThreads(threadsBefore);
      JniUtils.setGradMode(gradMode);
      TrainingLoop.ONE_GRADIENT_COLLECTOR_PER_JVM.unlock();
    }
    return new Report(cases.size(), 2 * cases.size() * threadCounts.length, worst, failures,
        (System.nanoTime() - start) / 1_000_000);
  }

  /**
   * One case at every thread count against its oracle, which runs at {@code oracleThreads} (the
   * caller's setting: float64 is served by libtorch's own kernels at any thread count). Returns
   * the worst relative error among the outputs held to the tolerance.
   */
  private double checkCase(NDManager manager, Case c, int oracleThreads, int[] threadCounts, int pass,
      List<Failure> failures) {
    float[][] inputs = inputs(c);
    JniUtils.setNumThreads(oracleThreads);
    Outputs oracle = compute(manager, c, inputs, DataType.FLOAT64, false);
    // A layer is linear in each input: the same layer on the inputs' magnitudes gives, per output,
    // the sum of |terms| that rounding errors scale with (see relativeError).
    Outputs scale = c.layer().isModel() ? oracle : compute(manager, c, magnitudes(inputs), DataType.FLOAT64, false);
    double worst = 0;
    for (int threads : threadCounts) {
      JniUtils.setNumThreads(threads);
      Outputs got = compute(manager, c, inputs, DataType.FLOAT32, pass == 2);
      for (int o = 0; o < OUTPUTS.length; o++) {
        double error = checkOutput(c, threads, pass, OUTPUTS[o], got.get(o), oracle.get(o), scale.get(o),
            allowed(c, o), failures);
        if (!isModelGradient(c, o)) {
          worst = Math.max(worst, error);
        }
      }
      if (c.layer().isModel()) {
        checkArgmax(c, threads, pass, got.forward(), oracle.forward(), failures);
      }
    }
    return worst;
  }

  private static boolean isModelGradient(Case c, int o) {
    return c.layer().isModel() && o >= 2;
  }

  /** The tolerance of output {@code o} (an index into OUTPUTS) of case {@code c}. */
  private double allowed(Case c, int o) {
    return isModelGradient(c, o) ? Math.max(tolerance, MODEL_GRADIENT_TOLERANCE) : tolerance;
  }

  /** Deterministic inputs of a case: input, weight, bias and the output's incoming gradient. */
  private float[][] inputs(Case c) {
    // Seeded by the label alone, so a case run on its own (--case) gets the inputs it had in a design.
    Random random = new Random(c.label().hashCode());
    float[] x = new float[(int) c.inputShape().size()];
    float[] gradient = new float[(int) c.outputShape().size()];
    if (c.source() == Source.RANDOM) {
      fillNormal(x, random, 1);
      fillNormal(gradient, random, 1);
    } else {
      realInput(c, x, random);
      if (c.layer().isModel()) {
        // A real image's background is one constant, so max pooling meets exact ties, and which
        // tied pixel gets the gradient is decided by rounding: float32 and float64 legitimately
        // differ there, and the top two logits may tie. A little noise unties them.
        for (int i = 0; i < x.length; i++) {
          x[i] += (float) (random.nextGaussian() * 0.01);
        }
      }
      if (c.layer() == Layer.CONV) {
        realGradient(c, gradient, random);
      } else {
        fillNormal(gradient, random, 1);
      }
    }
    // A model draws its weights from a pool of unit normals, scaled per parameter (computeModel).
    float[] w = new float[c.layer().isModel() ? 1 << 16 : (int) c.weightShape().size()];
    int fanIn = c.in() * c.kernel() * c.kernel();
    fillNormal(w, random, c.layer().isModel() ? 1 : (float) Math.sqrt(2.0 / fanIn));
    float[] b = new float[c.out()];
    fillNormal(b, random, 0.1f);
    return new float[][] {x, w, b, gradient};
  }

  /** Channel {@code ch} of sample {@code n} is a centred crop of a real image (a different one each). */
  private void realInput(Case c, float[] x, Random random) {
    int offset = random.nextInt(imageCount);
    if (c.layer() == Layer.LINEAR) {
      // Features are consecutive pixels of the images, as a flattened image feeds a dense layer.
      int pixels = imageCount * IMAGE_SIDE * IMAGE_SIDE;
      for (int n = 0; n < c.batch(); n++) {
        int from = (int) ((long) (offset + n) * IMAGE_SIDE * IMAGE_SIDE % pixels);
        for (int f = 0; f < c.in(); f++) {
          x[n * c.in() + f] = images[(from + f) % pixels];
        }
      }
      return;
    }
    int w = c.width();
    int crop = Math.max(0, (IMAGE_SIDE - w) / 2);
    for (int n = 0; n < c.batch(); n++) {
      for (int ch = 0; ch < c.in(); ch++) {
        int image = (offset + n * c.in() + ch) % imageCount;
        for (int r = 0; r < w; r++) {
          for (int col = 0; col < w; col++) {
            int ir = Math.min(IMAGE_SIDE - 1, crop + r);
            int ic = Math.min(IMAGE_SIDE - 1, crop + col);
            x[((n * c.in() + ch) * w + r) * w + col] = images[(image * IMAGE_SIDE + ir) * IMAGE_SIDE + ic];
          }
        }
      }
    }
  }

  /**
   * A gradient as ReLU leaves it in real training: random where a real image is foreground,
   * exactly zero on its background.
   */
  private void realGradient(Case c, float[] gradient, Random random) {
    int offset = random.nextInt(imageCount);
    int plane = c.outWidth() * c.outWidth();
    float background = Preprocessing.BUILT_IN.apply(0);
    for (int i = 0; i < gradient.length; i++) {
      int image = (offset + i / plane) % imageCount;
      int r = (i % plane) / c.outWidth() * IMAGE_SIDE / c.outWidth();
      int col = (i % plane) % c.outWidth() * IMAGE_SIDE / c.outWidth();
      boolean foreground = images[(image * IMAGE_SIDE + r) * IMAGE_SIDE + col] > background + 1e-3f;
      gradient[i] = foreground ? (float) random.nextGaussian() : 0f;
    }
  }

  private static void fillNormal(float[] values, Random random, float scale) {
    for (int i = 0; i < values.length; i++) {
      values[i] = (float) random.nextGaussian() * scale;
    }
  }

  /** The layer's output and its gradients for the objective sum(output * gradient), in {@code type}. */
  private static Outputs compute(NDManager parent, Case c, float[][] inputs, DataType type, boolean poison) {
    if (poison) {
      poison(parent, c);
    }
    try (NDManager manager = parent.newSubManager()) {
      NDArray x = input(manager, c, inputs[0]).toType(type, false);
      NDArray gradient = manager.create(inputs[3], c.outputShape()).toType(type, false);
      if (c.layer().isModel()) {
        return computeModel(manager, c, inputs, x, gradient, type);
      }
      NDArray w = manager.create(inputs[1], c.weightShape()).toType(type, false);
      NDArray b = manager.create(inputs[2], new Shape(c.out())).toType(type, false);
      if (c.channelsLast()) {
        // The inference layout: a forward pass without autograd, as Evaluation runs it.
        boolean gradMode = DjlRuntime.inferenceMode();
        try {
          return new Outputs(doubles(layer(c, x, w, b)), new double[0], new double[0], new double[0]);
        } finally {
          DjlRuntime.restoreGradMode(gradMode);
        }
      }
      x.setRequiresGradient(true);
      w.setRequiresGradient(true);
      b.setRequiresGradient(true);
      try (GradientCollector collector = Engine.getEngine("PyTorch").newGradientCollector()) {
        NDArray y = layer(c, x, w, b);
        DjlRuntime.backward(collector, y.mul(gradient).sum());
        return new Outputs(doubles(y), doubles(x.getGradient()), doubles(w.getGradient()), doubles(b.getGradient()));
      }
    }
  }

  private static NDArray layer(Case c, NDArray x, NDArray w, NDArray b) {
    return c.layer() == Layer.CONV
        ? Conv2d.conv2d(x, w, b, new Shape(c.stride(), c.stride()), new Shape(c.padding(), c.padding()),
            new Shape(1, 1)).singletonOrThrow()
        : Linear.linear(x, w, b).singletonOrThrow();
  }

  /**
   * Fills memory the kernels are likely to be given next with NaN and frees it: glibc's malloc
   * hands freed blocks of a size back out for the next request of that size, so a kernel that
   * reads a buffer it did not write (the stale-scratch suspicion) turns NaN instead of lucky zeros.
   */
  private static void poison(NDManager parent, Case c) {
    try (NDManager manager = parent.newSubManager()) {
      for (Shape shape : List.of(c.inputShape(), c.outputShape(), c.weightShape(), c.inputShape(), c.outputShape())) {
        manager.full(shape, Float.NaN).mul(1f);
      }
      manager.full(new Shape(4 * c.inputShape().size() + 4 * c.outputShape().size()), Float.NaN);
    }
  }

  /** The case's input, NCHW or as a channels-last view of the same values. */
  private static NDArray input(NDManager manager, Case c, float[] nchw) {
    if (!c.channelsLast()) {
      return manager.create(nchw, c.inputShape());
    }
    int n = c.batch();
    int channels = c.in();
    int plane = c.width() * c.width();
    float[] nhwc = new float[nchw.length];
    for (int i = 0; i < n; i++) {
      for (int ch = 0; ch < channels; ch++) {
        for (int p = 0; p < plane; p++) {
          nhwc[(i * plane + p) * channels + ch] = nchw[(i * channels + ch) * plane + p];
        }
      }
    }
    return ImageDataset.channelsLast(manager.create(nhwc, new Shape(n, c.width(), c.width(), channels)));
  }

  /**
   * A built-in model with deterministic weights (the case's weight values, reused in order; the
   * same in float32 and float64): its logits and the gradients of all its weights and biases.
   */
  private static Outputs computeModel(NDManager manager, Case c, float[][] inputs, NDArray x, NDArray gradient,
      DataType type) {
    Block block = Architectures.build(c.layer().architecture, c.layer().hidden, c.out());
    int[] next = {0};
    block.setInitializer((m, shape, dataType) -> {
      float[] values = new float[(int) shape.size()];
      float scale = shape.dimension() == 1 ? 0.1f : (float) Math.sqrt(2.0 / (shape.size() / shape.get(0)));
      for (int i = 0; i < values.length; i++) {
        values[i] = inputs[1][next[0]++ % inputs[1].length] * scale;
      }
      return m.create(values, shape).toType(dataType, false);
    }, parameter -> true);
    block.initialize(manager, type, c.inputShape());
    if (c.channelsLast()) {
      boolean gradMode = DjlRuntime.inferenceMode();
      try {
        NDArray logits = block.forward(new ParameterStore(manager, false), new NDList(x), false).singletonOrThrow();
        return new Outputs(doubles(logits), new double[0], new double[0], new double[0]);
      } finally {
        DjlRuntime.restoreGradMode(gradMode);
      }
    }
    try (GradientCollector collector = Engine.getEngine("PyTorch").newGradientCollector()) {
      NDArray logits = block.forward(new ParameterStore(manager, false), new NDList(x), true).singletonOrThrow();
      DjlRuntime.backward(collector, logits.mul(gradient).sum());
      List<double[]> weights = new ArrayList<>();
      List<double[]> biases = new ArrayList<>();
      for (Parameter p : block.getParameters().values()) {
        (p.getType() == Parameter.Type.BIAS ? biases : weights).add(doubles(p.getArray().getGradient()));
      }
      // No gradient for the images, as in training: max pooling routes an input's gradient to
      // whichever of two tied pixels rounding favours, so it is not comparable across precisions.
      return new Outputs(doubles(logits), new double[0], concat(weights), concat(biases));
    }
  }

  private static double[] concat(List<double[]> parts) {
    double[] all = new double[parts.stream().mapToInt(p -> p.length).sum()];
    int at = 0;
    for (double[] part : parts) {
      System.arraycopy(part, 0, all, at, part.length);
      at += part.length;
    }
    return all;
  }

  private static double[] doubles(NDArray array) {
    if (array.getDataType() == DataType.FLOAT64) {
      return array.toDoubleArray();
    }
    float[] floats = array.toFloatArray();
    double[] doubles = new double[floats.length];
    for (int i = 0; i < floats.length; i++) {
      doubles[i] = floats[i];
    }
    return doubles;
  }

  /**
   * Checks one output against the oracle; returns its relative error, or 0 when it was not finite.
   * Where an output has no terms at all (its scale is 0: a position a strided 1x1 convolution
   * skips, say), it must be exactly 0: that is where a kernel that leaves a buffer unzeroed shows.
   */
  private static double checkOutput(Case c, int threads, int pass, String output, double[] got, double[] oracle,
      double[] scale, double tolerance, List<Failure> failures) {
    int nonFinite = 0;
    int strayValues = 0;
    for (int i = 0; i < got.length; i++) {
      if (!Double.isFinite(got[i])) {
        nonFinite++;
      } else if (scale != oracle && scale[i] == 0 && got[i] != 0) {
        strayValues++;
      }
    }
    if (nonFinite > 0) {
      failures.add(new Failure(c, threads, pass, output, nonFinite + " of " + got.length + " values not finite"));
      return 0;
    }
    if (strayValues > 0) {
      failures.add(new Failure(c, threads, pass, output, strayValues + " values not 0 where no term contributes"));
    }
    double error = relativeError(got, oracle, scale);
    if (!(error <= tolerance)) {
      failures.add(new Failure(c, threads, pass, output, String.format("relative error %.2e", error)));
    }
    return error;
  }

  /** Every sample's largest logit must be the oracle's, unless the oracle's top two nearly tie. */
  private void checkArgmax(Case c, int threads, int pass, double[] got, double[] oracle, List<Failure> failures) {
    int perSample = oracle.length / c.batch();
    double scale = largestMagnitude(oracle);
    int differing = 0;
    for (int n = 0; n < c.batch(); n++) {
      int best = n * perSample;
      int bestGot = best;
      double second = Double.NEGATIVE_INFINITY;
      for (int i = n * perSample; i < (n + 1) * perSample; i++) {
        if (oracle[i] > oracle[best]) {
          second = oracle[best];
          best = i;
        } else if (i != best && oracle[i] > second) {
          second = oracle[i];
        }
        if (got[i] > got[bestGot]) {
          bestGot = i;
        }
      }
      boolean nearTie = oracle[best] - second <= 2 * tolerance * scale;
      if (bestGot != best && !nearTie) {
        differing++;
      }
    }
    if (differing > 0) {
      failures.add(new Failure(c, threads, pass, "argmax", differing + " of " + c.batch() + " samples differ"));
    }
  }

  /**
   * max|got - oracle| / max|scale|. For a layer, {@code scale} is the layer computed on its inputs'
   * magnitudes: each output's sum of |terms|, which bounds what float32 rounding may do to it
   * (Higham's componentwise bound for dot products). Relative to the output itself instead, a sum
   * that cancels (a bias gradient over 36,864 random terms, say) would fail on rounding alone:
   * oneDNN's blocked reduction was 1.4e-4 off such a sum, under 2e-7 of its terms' magnitude. For a
   * whole model, which is not linear, {@code scale} is the oracle itself.
   */
  static double relativeError(double[] got, double[] oracle, double[] scale) {
    double difference = 0;
    for (int i = 0; i < got.length; i++) {
      double d = Math.abs(got[i] - oracle[i]);
      if (Double.isNaN(d)) {
        return Double.NaN;
      }
      difference = Math.max(difference, d);
    }
    double largest = largestMagnitude(scale);
    return largest == 0 ? difference : difference / largest;
  }

  private static float[][] magnitudes(float[][] inputs) {
    float[][] absolute = new float[inputs.length][];
    for (int i = 0; i < inputs.length; i++) {
      absolute[i] = inputs[i].clone();
      for (int j = 0; j < absolute[i].length; j++) {
        absolute[i][j] = Math.abs(absolute[i][j]);
      }
    }
    return absolute;
  }

  private static double largestMagnitude(double[] values) {
    double largest = 0;
    for (double v : values) {
      largest = Math.max(largest, Math.abs(v));
    }
    return largest;
  }

  /**
   * The suite's design: every input channel count the issue lists (1-17, 31-33, 51, 64) against
   * every output channel count, kernel 1/3/5, stride 1/2, padding 0/same, widths divisible and not
   * divisible by 2, batch 1/16/255/256 and both sources, pairwise; plus dense layers and the
   * built-in models at several batch sizes. Each convolution's forward pass is kept under 40M
   * multiply-accumulates so the float64 oracle stays quick.
   */
  public static List<Case> suiteDesign() {
    return design(SUITE_MACS, SUITE_SEED);
  }

  private static final long SUITE_MACS = 40_000_000L;
  private static final long SUITE_SEED = 7;

  /**
   * The opt-in sweep for benchmark notes: three pairwise designs of the same dimensions (other
   * seeds, so other combinations) with convolutions up to 400M multiply-accumulates, each case once.
   */
  public static List<Case> sweepDesign() {
    Set<Case> cases = new LinkedHashSet<>();
    for (long seed : new long[] {11, 12, 13}) {
      cases.addAll(design(400_000_000L, seed));
    }
    return List.copyOf(cases);
  }

  /**
   * A second's check a service runs at start: LeNet-5's convolutions and first dense layer, the odd
   * channel counts that oneDNN's AVX2 kernels computed wrongly (6, 13, 51), the small convolutions
   * on real images whose oneDNN AVX-512 backward pass returned NaN, strided ones, and whole
   * LeNet-5, convnet and pruned convnet models (the convnet's own layers run only inside it).
   */
  public static List<Case> probeDesign() {
    Source real = Source.FASHION_MNIST;
    return List.of(
        // Training shapes in NCHW with backward passes; inference ones channels-last, forward only.
        Case.conv(1, 4, 3, 1, 1, 28, 64, real, false),
        Case.conv(4, 8, 3, 1, 1, 28, 32, real, false),
        Case.conv(1, 6, 5, 1, 2, 28, 32, real, false),
        Case.conv(6, 16, 5, 1, 0, 14, 32, real, false),
        Case.conv(6, 16, 5, 1, 0, 14, 32, real, true),
        Case.conv(1, 6, 3, 1, 1, 28, 32, real, false),
        Case.conv(6, 6, 3, 1, 1, 28, 32, real, false),
        Case.conv(6, 6, 3, 1, 1, 28, 32, real, true),
        Case.conv(6, 13, 3, 1, 1, 14, 32, real, false),
        Case.conv(6, 13, 3, 1, 1, 14, 32, real, true),
        Case.conv(13, 13, 3, 1, 1, 14, 32, real, false),
        Case.conv(32, 32, 3, 1, 1, 14, 8, Source.RANDOM, false),
        Case.conv(32, 32, 3, 1, 1, 28, 16, Source.RANDOM, true),
        Case.conv(3, 8, 1, 2, 0, 27, 16, Source.RANDOM, false),
        Case.conv(8, 16, 3, 2, 1, 13, 16, Source.RANDOM, false),
        // Odd input channels above 16: on an AMD EPYC with AVX-512 (2026-12-06) oneDNN's forward
        // convolutions gave NaN or 1-5% errors for 17, 31, 33 and 51 input channels, in the full
        // design only; the probe passed its forward kernels until these were added.
        Case.conv(17, 4, 5, 2, 2, 28, 16, real, false),
        Case.conv(31, 13, 5, 2, 2, 7, 1, real, false),
        Case.conv(33, 64, 3, 2, 1, 28, 1, real, false),
        Case.conv(51, 1, 5, 1, 0, 28, 1, real, false),
        Case.linear(637, 51, 32, real),
        Case.linear(400, 120, 32, real),
        Case.model(Layer.LENET5, 32, real, false),
        Case.model(Layer.CONVNET, 4, real, false),
        Case.model(Layer.CONVNET_ODD, 16, real, false),
        Case.model(Layer.LENET5, 32, real, true),
        Case.model(Layer.CONVNET, 16, real, true),
        Case.model(Layer.CONVNET_ODD, 16, real, true));
  }

  /**
   * The convolution dimensions, each value list least demanding first (see {@link Pairwise}): input
   * channels, output channels, kernel, stride, padding (0: none, 1: same, kernel / 2), width
   * (divisible by stride 2 or not), batch, source (index into {@link Source}), layout (1:
   * channels-last).
   */
  static final List<int[]> CONV_FACTORS = List.of(
      new int[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 31, 32, 33, 51, 64},
      new int[] {1, 4, 6, 8, 13, 16, 32, 51, 64},
      new int[] {1, 3, 5},
      new int[] {2, 1},
      new int[] {0, 1},
      new int[] {7, 13, 14, 27, 28},
      new int[] {1, 16, 255, 256},
      new int[] {0, 1},
      new int[] {0, 1});
  /** Dense layer dimensions: input features, output features, batch, source. */
  static final List<int[]> DENSE_FACTORS = List.of(
      new int[] {1, 7, 13, 16, 17, 33, 51, 64, 256, 400, 637, 784, 3136},
      new int[] {1, 10, 51, 84, 120, 256},
      new int[] {1, 16, 255, 256},
      new int[] {0, 1});

  /** Convolutions of at most {@code maxMacs} multiply-accumulates. */
  static Predicate<int[]> convUnder(long maxMacs) {
    return values -> conv(values).macs() <= maxMacs;
  }

  /** The rows (values of CONV_FACTORS) of the suite's convolutions, for checking their coverage. */
  static List<int[]> suiteConvRows() {
    return Pairwise.cover(CONV_FACTORS, convUnder(SUITE_MACS), SUITE_SEED);
  }

  private static List<Case> design(long maxMacs, long seed) {
    List<Case> cases = new ArrayList<>();
    for (int[] row : Pairwise.cover(CONV_FACTORS, convUnder(maxMacs), seed)) {
      cases.add(conv(row));
    }
    for (int[] row : Pairwise.cover(DENSE_FACTORS, values -> true, seed)) {
      cases.add(Case.linear(row[0], row[1], row[2], Source.values()[row[3]]));
    }
    for (Source source : Source.values()) {
      for (boolean inference : new boolean[] {false, true}) {
        for (int batch : new int[] {1, 16, 255, 256}) {
          cases.add(Case.model(Layer.LENET5, batch, source, inference));
        }
        for (int batch : new int[] {1, 16, 64}) {
          cases.add(Case.model(Layer.CONVNET, batch, source, inference));
          cases.add(Case.model(Layer.CONVNET_ODD, batch, source, inference));
        }
      }
    }
    return cases;
  }

  /** A row of CONV_FACTORS as a case; "same" padding of a 1x1 kernel is none. */
  static Case conv(int[] v) {
    return Case.conv(v[0], v[1], v[2], v[3], v[4] * (v[2] / 2), v[5], v[6], Source.values()[v[7]], v[8] == 1);
  }

  /**
   * Reruns {@code c} in a child JVM with {@code ONEDNN_VERBOSE=1} (the same classpath and kernel
   * configuration) and returns the oneDNN primitives that served it, each
   * as "kind implementation propagation", or why they could not be read.
   */
  public static List<String> oneDnnImplementations(Case c, int threads) {
    // The configuration under test (while DjlRuntime probes, the candidate), not the one requested.
    List<String> args = List.of("-Ddistillery.kernels=" + DjlRuntime.kernels().active().id(),
        KernelParity.class.getName(), "--case", c.label(), "--threads", String.valueOf(threads), "--no-trace");
    // The child checks only the case; its own probe at start would add unrelated primitives.
    Map<String, String> env = Map.of("ONEDNN_VERBOSE", "1", "DISTILLERY_KERNEL_PROBE", "off");
    ChildJvm.Result run;
    try {
      run = ChildJvm.run(env, List.of(), Duration.ofMinutes(2), args);
    } catch (IOException e) {
      return List.of("(the verbose rerun failed: " + e.getMessage() + ")");
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return List.of("(interrupted)");
    }
    List<String> lines = run.lines();
    // 0: the case passed in the child, 1: it failed there too; anything else is a crash.
    if (run.exitCode() > 1) {
      return List.of("(the verbose rerun exited with " + run.exitCode() + ": "
          + String.join(" | ", lines.subList(Math.max(0, lines.size() - 3), lines.size())) + ")");
    }
    Set<String> implementations = new LinkedHashSet<>();
    for (String line : lines) {
      String[] fields = line.split(",");
      int exec = Arrays.asList(fields).indexOf("exec");
      if (line.startsWith("onednn_verbose") && exec > 0 && fields.length > exec + 4) {
        implementations.add(fields[exec + 2] + " " + fields[exec + 3] + " " + fields[exec + 4]);
      }
    }
    return implementations.isEmpty() ? List.of("(no oneDNN primitive ran: libtorch's own kernels)")
        : List.copyOf(implementations);
  }

  /**
   * The oneDNN implementations behind the first {@code limit} failing cases of {@code report} (a
   * child JVM each, about a second).
   */
  public static Map<Case, List<String>> explain(Report report, int limit) {
    Map<Case, List<String>> explained = new LinkedHashMap<>();
    for (Case c : report.failingCases().stream().limit(limit).toList()) {
      int threads = report.failures().stream().filter(f -> f.testCase().equals(c)).findFirst().orElseThrow().threads();
      explained.put(c, oneDnnImplementations(c, threads));
    }
    return explained;
  }

  /**
   * Runs a design under this JVM's kernel configuration and prints the report: {@code --design
   * suite|sweep|probe} (default suite) or {@code --case "<label>"}, {@code --threads 1,2,3},
   * {@code --no-trace} (skip the verbose rerun of failing cases). Exits 1 when a check fails.
   */
  public static void main(String[] args) throws Exception {
    String design = "suite";
    String single = null;
    int[] threads = {1, 2, 3};
    boolean trace = true;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--design" -> design = args[++i];
        case "--case" -> single = args[++i];
        case "--threads" -> threads = Arrays.stream(args[++i].split(",")).mapToInt(Integer::parseInt).toArray();
        case "--no-trace" -> trace = false;
        default -> throw new IllegalArgumentException("unknown argument " + args[i]);
      }
    }
    List<Case> cases = single != null ? List.of(Case.parse(single)) : switch (design) {
      case "suite" -> suiteDesign();
      case "sweep" -> sweepDesign();
      case "probe" -> probeDesign();
      default -> throw new IllegalArgumentException("unknown design " + design + " (suite, sweep, probe)");
    };
    DjlRuntime.start(threads[threads.length - 1]);
    System.out.println("kernels: " + DjlRuntime.kernels());
    Report report = withShippedImages().run(cases, threads);
    report.failures().forEach(f -> System.out.println("FAIL " + f));
    if (trace) {
      explain(report, Integer.MAX_VALUE).forEach((c, impls) -> System.out.println("oneDNN for " + c.label() + ": " + impls));
    }
    System.out.println((report.passed() ? "PASSED " : "FAILED ") + report.summary());
    System.exit(report.passed() ? 0 : 1);
  }
}
