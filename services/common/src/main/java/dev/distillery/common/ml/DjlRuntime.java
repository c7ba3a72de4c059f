package dev.distillery.common.ml;

import ai.djl.engine.Engine;
import ai.djl.pytorch.jni.JniUtils;
import java.nio.file.Path;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * DJL's PyTorch engine configured to run offline. Call {@link #start(int)} before any other DJL
 * use in a JVM. The settings that must exist before the JVM starts (the environment variables
 * {@code ONEDNN_MAX_CPU_ISA=AVX2}, {@code OPT_OUT_TRACKING}, {@code DJL_CACHE_DIR}) are set by the
 * launch scripts and the build; this class warns when they are missing.
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
      started = true;
    }
    return Engine.getEngine("PyTorch");
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
