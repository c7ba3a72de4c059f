package dev.distillery.common.ml;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The harness and the start-up probe in child JVMs, under configurations that must fail: what
 * this JVM cannot test of itself, because oneDNN reads its settings once per process.
 */
@Timeout(value = 10, unit = TimeUnit.MINUTES)
class KernelFaultsTest {

  /**
   * A child JVM with this test's classpath; the kernel knobs of the developer's shell are removed,
   * so each test sets what it means to test.
   */
  private static ChildJvm.Result java(Map<String, String> env, String... args) throws IOException, InterruptedException {
    ChildJvm.Result run = ChildJvm.run(env, List.of("DISTILLERY_KERNELS", "DISTILLERY_KERNEL_PROBE",
        "ONEDNN_MAX_CPU_ISA", "ONEDNN_DEFAULT_FPMATH_MODE", "ONEDNN_VERBOSE"), Duration.ofMinutes(3), List.of(args));
    System.out.println(run.output());
    return run;
  }

  @Test
  void aServiceWhoseProbeFailsStartsOnLibtorchsOwnKernelsAndSaysSo() throws Exception {
    // A tolerance below float32's rounding: every configuration's probe fails for real.
    ChildJvm.Result run = java(Map.of(), "-Ddistillery.kernels.probe.tolerance=1e-12", DjlRuntime.class.getName());
    assertThat(run.exitCode()).isZero();
    assertThat(run.output())
        .contains("kernel probe of onednn failed on this CPU")
        .contains("kernel probe of onednn-forward failed on this CPU")
        .contains("oneDNN implementations for conv 1->4 k3 s1 p1 w28 b64 FASHION_MNIST: [")
        .containsPattern("kernels: native \\(isa \\S+, probe onednn failed: conv 1->4");
  }

  /**
   * {@code ONEDNN_DEFAULT_FPMATH_MODE=BF16} lets oneDNN compute float32 convolutions in bfloat16 on
   * CPUs that have it: results PyTorch's float32 does not compute, which the harness must report,
   * and which the probe must refuse.
   */
  @Test
  void oneDnnInBfloat16IsReportedAndRefused() throws Exception {
    String cpu = Files.readString(Path.of("/proc/cpuinfo"));
    assumeTrue(cpu.contains("avx512_bf16") || cpu.contains("amx_bf16"), "this CPU has no bfloat16 arithmetic");
    // Where oneDNN fails the probe in float32 already, bfloat16's own effect cannot be told apart.
    ChildJvm.Result plain = java(Map.of("DISTILLERY_KERNEL_PROBE", "off"), "-Ddistillery.kernels=onednn",
        KernelParity.class.getName(), "--design", "probe", "--threads", "1,2", "--no-trace");
    assumeTrue(plain.exitCode() == 0, "oneDNN fails the probe on this CPU in float32 already");
    ChildJvm.Result harness = java(Map.of("ONEDNN_DEFAULT_FPMATH_MODE", "BF16", "DISTILLERY_KERNEL_PROBE", "off"),
        "-Ddistillery.kernels=onednn", KernelParity.class.getName(), "--design", "probe", "--threads", "1,2",
        "--no-trace");
    assertThat(harness.exitCode()).isEqualTo(1);
    assertThat(harness.output()).containsPattern("FAIL conv \\S+ k\\d .* forward relative error \\d");
    ChildJvm.Result service = java(Map.of("ONEDNN_DEFAULT_FPMATH_MODE", "BF16"), DjlRuntime.class.getName());
    assertThat(service.output()).contains("kernel probe of onednn failed on this CPU")
        .containsPattern("oneDNN implementations for \\S+.*: \\[.*convolution \\S+ forward_training")
        .contains("kernel probe of onednn-forward failed on this CPU").contains("kernels: native");
  }
}
