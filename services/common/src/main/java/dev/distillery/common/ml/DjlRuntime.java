package dev.distillery.common.ml;

import ai.djl.engine.Engine;
import ai.djl.pytorch.jni.JniUtils;
import ai.djl.ndarray.NDArray;
import ai.djl.training.GradientCollector;
import com.sun.jna.Function;
import com.sun.jna.NativeLibrary;
import com.sun.jna.Pointer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.stream.IntStream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * DJL's PyTorch engine configured to run offline, and the one place that decides which kernels
 * serve convolutions. Call {@link #start(int)} before any other DJL use in a JVM. The settings that
 * must exist before the JVM starts ({@code OPT_OUT_TRACKING}, {@code DJL_CACHE_DIR}, the malloc
 * tuning) are set by the launch scripts and the build; this class warns when they are missing.
 *
 * <p>Kernels ({@code -Ddistillery.kernels} or {@code DISTILLERY_KERNELS}: {@code auto}, the
 * default, or one {@link Kernels} id). libtorch 2.7.1's oneDNN 3.7.1 computed wrong results on
 * earlier machines of this project: NaN convolution input-gradients from its AVX-512
 * backward-data kernel, and wrong, thread-dependent logits from its AVX2 forward kernels for 6-,
 * 13- and 51-channel layers ({@code OddChannelInferenceTest}). So whether oneDNN is
 * right depends on the CPU, and is checked on the CPU that runs: {@code auto} tries oneDNN
 * everywhere (2-5x faster than libtorch's own kernels here), then oneDNN for forward passes only (its
 * backward kernels were the NaN ones; {@link #backward} runs each {@code backward()} with
 * libtorch's kernels, which autograd chooses again at each call), then libtorch's own kernels,
 * and keeps the first that passes {@link KernelParity}'s probe, a few seconds of layers and
 * built-in models against float64. The choice is logged, exposed by {@link #kernels()} (in
 * /metrics) and recorded in every job result. {@code ONEDNN_MAX_CPU_ISA} is no longer set: with it
 * at AVX2 oneDNN was slower and, on one machine, wrong.
 */
public final class DjlRuntime {
  /** Which kernels serve libtorch's convolutions. */
  public enum Kernels {
    /** libtorch's own kernels everywhere ({@code torch.backends.mkldnn.enabled = False}): the safe choice. */
    NATIVE("native"),
    /** oneDNN for forward passes, libtorch's own kernels for every backward pass. */
    ONEDNN_FORWARD("onednn-forward"),
    /** oneDNN for forward and backward passes, as libtorch ships (faulty on some earlier machines). */
    ONEDNN("onednn");

    private final String id;

    Kernels(String id) {
      this.id = id;
    }

    public String id() {
      return id;
    }

    public static Kernels parse(String id) {
      for (Kernels k : values()) {
        if (k.id.equals(id)) {
          return k;
        }
      }
      throw new IllegalArgumentException("unknown kernels '" + id + "' (native, onednn-forward, onednn)");
    }
  }

  /**
   * What serves this JVM's convolutions and why.
   *
   * @param requested {@code auto} or a {@link Kernels} id, as configured
   * @param active the configuration in use
   * @param probe what the probe found: "passed"; "off"; "not needed" (libtorch's own kernels need
   *     none); after a fallback, one "<id> failed: <first failure>" per configuration tried and the
   *     outcome of the last, joined by "; "; "running" while it runs, "not started" before
   * @param isa {@code ONEDNN_MAX_CPU_ISA}, or "default" (the CPU's best)
   */
  public record KernelStatus(String requested, Kernels active, String probe, String isa) {
    /** "failed" when a configuration failed the probe (then {@code active} is the fallback), else {@code probe}. */
    public String probeOutcome() {
      return probe.contains("failed") ? "failed" : probe;
    }

    /** One line for logs and job results, e.g. {@code onednn (isa default, probe passed)}. */
    @Override
    public String toString() {
      return active.id() + " (isa " + isa + ", probe " + probe + ")";
    }
  }

  /** The configurations {@code auto} tries, fastest first. */
  private static final List<Kernels> AUTO = List.of(Kernels.ONEDNN, Kernels.ONEDNN_FORWARD, Kernels.NATIVE);
  /**
   * Environment variables DjlRuntime reads: the first five must be set before a DJL JVM starts
   * (scripts and images set them); the kernel knobs are optional, and ONEDNN_MAX_CPU_ISA is only
   * reported (DeploymentCheckTest keeps launchers from setting it).
   */
  public static final Set<String> ENVIRONMENT = Set.of("OPT_OUT_TRACKING", "DJL_CACHE_DIR",
      "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "DISTILLERY_KERNELS", "DISTILLERY_KERNEL_PROBE",
      "ONEDNN_MAX_CPU_ISA");
  private static final Logger LOG = LoggerFactory.getLogger(DjlRuntime.class);
  // Volatile, not guarded by start's lock: /metrics reads it while a start may still be probing.
  private static volatile boolean started;
  private static volatile KernelStatus kernels = new KernelStatus("auto", Kernels.NATIVE, "not started", "default");

  private DjlRuntime() {}

  /** Configures and loads the engine once per JVM, with {@code torchThreads} intra-op threads. */
  public static synchronized Engine start(int torchThreads) {
    if (!started) {
      setIfAbsent("ai.djl.offline", "true");
      setIfAbsent("ai.djl.pytorch.num_threads", String.valueOf(torchThreads));
      setIfAbsent("ai.djl.pytorch.num_interop_threads", "1");
      if (System.getenv("DJL_CACHE_DIR") == null) {
        setIfAbsent("DJL_CACHE_DIR", Path.of(System.getProperty("user.home"), ".djl.ai").toString());
      }
      if (System.getenv("MALLOC_MMAP_MAX_") == null) {
        // glibc hands libtorch's large buffers back to the OS and faults them in again every step.
        LOG.warn("MALLOC_MMAP_MAX_ is not set: training may run at a third of its speed (see README)");
      }
      if (System.getenv("OPT_OUT_TRACKING") == null) {
        LOG.warn("OPT_OUT_TRACKING is not set: DJL attempts a telemetry call at start");
      }
      Engine engine = Engine.getEngine("PyTorch");
      chooseKernels(torchThreads);
      started = true;
      return engine;
    }
    return Engine.getEngine("PyTorch");
  }

  /** What serves this JVM's convolutions (after {@link #start}). */
  public static KernelStatus kernels() {
    return kernels;
  }

  public static boolean isStarted() {
    return started;
  }

  /** {@code earlier} (a job's kernels per stage so far) with this JVM's kernels for {@code stage}. */
  public static Map<String, String> withKernelsOf(Map<String, String> earlier, String stage) {
    Map<String, String> all = new HashMap<>(earlier);
    all.put(stage, kernels().toString());
    return all;
  }

  /**
   * {@code collector.backward(objective)} with the backward kernels of the active configuration:
   * under {@link Kernels#ONEDNN_FORWARD}, oneDNN is off for the call. The switch is process-wide,
   * so a forward pass another thread runs meanwhile uses libtorch's kernels too (slower, not
   * wrong); no other backward can overlap, because DJL allows one GradientCollector per JVM.
   */
  public static void backward(GradientCollector collector, NDArray objective) {
    if (kernels.active() != Kernels.ONEDNN_FORWARD) {
      collector.backward(objective);
      return;
    }
    setOneDnn(false);
    try {
      collector.backward(objective);
    } finally {
      setOneDnn(true);
    }
  }

  /**
   * Tries the requested configuration ({@code auto}: each of {@link #AUTO} in turn) with the
   * harness's probe on this CPU and keeps the first that passes; libtorch's own kernels need no probe.
   */
  private static void chooseKernels(int torchThreads) {
    String isa = Optional.ofNullable(System.getenv("ONEDNN_MAX_CPU_ISA")).orElse("default");
    String requested = setting("distillery.kernels", "DISTILLERY_KERNELS", "auto");
    List<Kernels> candidates = "auto".equals(requested) ? AUTO : List.of(Kernels.parse(requested), Kernels.NATIVE);
    // Off (benchmarks, image builds): the first candidate is trusted unchecked, onednn under auto.
    boolean probing = !"off".equals(setting("distillery.kernels.probe", "DISTILLERY_KERNEL_PROBE", "on"));
    // A tolerance below float32's rounding makes the probe fail for real: how the fallback is
    // tested. It can only be tightened, never loosened into accepting wrong kernels.
    double tolerance = Math.min(KernelParity.TOLERANCE, Double.parseDouble(System.getProperty(
        "distillery.kernels.probe.tolerance", String.valueOf(KernelParity.TOLERANCE))));
    int[] threads = IntStream.of(1, torchThreads).distinct().sorted().toArray();
    List<String> failures = new ArrayList<>();
    for (Kernels candidate : candidates) {
      // The harness's backward passes follow kernels.active(): set before the probe runs.
      kernels = new KernelStatus(requested, candidate, "running", isa);
      setOneDnn(candidate != Kernels.NATIVE);
      String verdict = candidate == Kernels.NATIVE ? "not needed" : probing ? probe(candidate, tolerance, threads) : "off";
      if (verdict.startsWith("failed")) {
        failures.add(candidate.id() + " " + verdict);
        continue;
      }
      kernels = new KernelStatus(requested, candidate,
          failures.isEmpty() ? verdict : String.join("; ", failures) + "; " + candidate.id() + " " + verdict, isa);
      break;
    }
    if (!failures.isEmpty()) {
      LOG.warn("kernels: {}: oneDNN failed the probe on this CPU", kernels);
    } else {
      LOG.info("kernels: {}", kernels);
    }
  }

  /** "passed", or "failed: <first failure>" after logging the failures and oneDNN's implementations. */
  private static String probe(Kernels candidate, double tolerance, int[] threads) {
    KernelParity.Report report;
    try {
      report = KernelParity.withShippedImages().withTolerance(tolerance).run(KernelParity.probeDesign(), threads);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted during the kernel probe", e);
    } catch (RuntimeException e) {
      // oneDNN may refuse a shape ("could not create a primitive") rather than compute it wrongly.
      LOG.warn("kernel probe of {} threw on this CPU", candidate.id(), e);
      return "failed: " + e;
    }
    if (report.passed()) {
      LOG.info("kernel probe of {} passed: {}", candidate.id(), report.summary());
      return "passed";
    }
    LOG.warn("kernel probe of {} failed on this CPU, trying the next configuration: {}; {}", candidate.id(),
        report.summary(), report.failures().stream().limit(5).map(String::valueOf).toList());
    // A child JVM per case explained: the first says which implementation failed, and every
    // service start on a CPU that fails the probe pays for it (5 s each, twice on an AMD EPYC).
    KernelParity.explain(report, 1).forEach((c, impls) -> LOG.warn("oneDNN implementations for {}: {}", c.label(), impls));
    return "failed: " + report.failures().get(0);
  }

  private static String setting(String property, String variable, String fallback) {
    String value = System.getProperty(property);
    if (value == null) {
      value = System.getenv(variable);
    }
    return value == null || value.isBlank() ? fallback : value.trim();
  }

  /**
   * libtorch's {@code at::globalContext().setUserEnabledMkldnn(on)}: what torch.backends.mkldnn
   * sets. A plain C++ bool that other threads' operations read without synchronisation: each
   * operation sees either value, and both give right results once the probe has passed.
   */
  private static void setOneDnn(boolean on) {
    OneDnnSwitch.INSTANCE.set.invoke(new Object[] {OneDnnSwitch.INSTANCE.context, on});
  }

  /** The switch's native function and context, found once (a lookup reads /proc/self/maps). */
  private static final class OneDnnSwitch {
    static final OneDnnSwitch INSTANCE = new OneDnnSwitch();
    final Pointer context;
    final Function set;

    private OneDnnSwitch() {
      NativeLibrary torch = torchCpu();
      context = torch.getFunction("_ZN2at13globalContextEv").invokePointer(new Object[0]);
      set = torch.getFunction("_ZN2at7Context20setUserEnabledMkldnnEb");
    }
  }

  /** The libtorch_cpu.so this process loaded (DJL extracts it under DJL_CACHE_DIR). */
  private static NativeLibrary torchCpu() {
    try {
      for (String line : Files.readAllLines(Path.of("/proc/self/maps"))) {
        int at = line.indexOf('/');
        if (at >= 0 && line.endsWith("/libtorch_cpu.so")) {
          return NativeLibrary.getInstance(line.substring(at));
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    throw new IllegalStateException("libtorch_cpu.so is not loaded");
  }

  /**
   * Loads the engine once and exits: run while building a container image, it extracts libtorch
   * into {@code DJL_CACHE_DIR}, so containers start offline.
   */
  public static void main(String[] args) {
    Engine engine = start(1);
    System.out.println("DJL " + engine.getEngineName() + " " + engine.getVersion() + " ready in "
        + System.getenv().getOrDefault("DJL_CACHE_DIR", System.getProperty("DJL_CACHE_DIR")) + "; kernels: " + kernels());
  }

  /**
   * Turns autograd off on the calling thread (inference must not build graphs) and returns
   * whether it was on, for {@link #restoreGradMode}.
   */
  public static boolean inferenceMode() {
    boolean previous = JniUtils.isGradMode();
    JniUtils.setGradMode(false);
    return previous;
  }

  public static void restoreGradMode(boolean enabled) {
    JniUtils.setGradMode(enabled);
  }

  private static void setIfAbsent(String key, String value) {
    if (System.getProperty(key) == null) {
      System.setProperty(key, value);
    }
  }
}
