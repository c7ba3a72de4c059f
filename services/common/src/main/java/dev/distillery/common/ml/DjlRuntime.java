package dev.distillery.common.ml;

import ai.djl.engine.Engine;
import ai.djl.pytorch.jni.JniUtils;
import com.sun.jna.NativeLibrary;
import com.sun.jna.Pointer;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * DJL's PyTorch engine configured to run offline. Call {@link #start(int)} before any other DJL
 * use in a JVM. The settings that must exist before the JVM starts (the environment variables
 * {@code ONEDNN_MAX_CPU_ISA=AVX2}, {@code OPT_OUT_TRACKING}, {@code DJL_CACHE_DIR}) are set by the
 * launch scripts and the build; this class warns when they are missing.
 *
 * <p>libtorch's oneDNN (mkldnn) kernels are switched off, as {@code torch.backends.mkldnn.enabled
 * = False} would: libtorch 2.7.1's oneDNN gave NaN convolution gradients with its AVX-512 kernels
 * (FINDINGS), and with them capped at AVX2 it computed wrong, thread-dependent logits for a convnet
 * whose layers have 6, 13 and 51 channels (0.66-0.74 or 0.10 test accuracy where PyTorch 1.13 and
 * libtorch without oneDNN give 0.9043; {@code OddChannelInferenceTest}). Without oneDNN libtorch
 * uses its own kernels. {@code -Ddistillery.onednn=on} keeps oneDNN, for benchmarks only.
 */
public final class DjlRuntime {
  /** Environment variables a JVM running DJL needs before it starts (set by scripts and images). */
  public static final Set<String> ENVIRONMENT = Set.of("ONEDNN_MAX_CPU_ISA", "OPT_OUT_TRACKING", "DJL_CACHE_DIR",
      "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_");
  private static final Logger LOG = LoggerFactory.getLogger(DjlRuntime.class);
  private static boolean started;

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
      if (!"AVX2".equals(System.getenv("ONEDNN_MAX_CPU_ISA"))) {
        // libtorch 2.7.1's AVX-512 oneDNN conv backward returns NaN gradients on real data.
        LOG.warn("ONEDNN_MAX_CPU_ISA is not AVX2: convolution training may produce NaN gradients");
      }
      if (System.getenv("MALLOC_MMAP_MAX_") == null) {
        // glibc hands libtorch's large buffers back to the OS and faults them in again every step.
        LOG.warn("MALLOC_MMAP_MAX_ is not set: training may run at a third of its speed (see README)");
      }
      if (System.getenv("OPT_OUT_TRACKING") == null) {
        LOG.warn("OPT_OUT_TRACKING is not set: DJL attempts a telemetry call at start");
      }
      Engine engine = Engine.getEngine("PyTorch");
      if (!"on".equals(System.getProperty("distillery.onednn"))) {
        setOneDnn(false);
      }
      started = true;
      return engine;
    }
    return Engine.getEngine("PyTorch");
  }

  /** libtorch's {@code at::globalContext().setUserEnabledMkldnn(on)}: what torch.backends.mkldnn sets. */
  public static void setOneDnn(boolean on) {
    NativeLibrary torch = torchCpu();
    Pointer context = torch.getFunction("_ZN2at13globalContextEv").invokePointer(new Object[0]);
    torch.getFunction("_ZN2at7Context20setUserEnabledMkldnnEb").invoke(new Object[] {context, on});
  }

  /** Whether libtorch's oneDNN kernels are in use. */
  public static boolean oneDnnEnabled() {
    NativeLibrary torch = torchCpu();
    Pointer context = torch.getFunction("_ZN2at13globalContextEv").invokePointer(new Object[0]);
    return (torch.getFunction("_ZNK2at7Context17userEnabledMkldnnEv").invokeInt(new Object[] {context}) & 0xff) != 0;
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
        + System.getenv().getOrDefault("DJL_CACHE_DIR", System.getProperty("DJL_CACHE_DIR")));
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
