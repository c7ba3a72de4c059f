package dev.distillery.common.ml;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The harness and the start-up probe in child JVMs, under configurations that must fail: what
 * this JVM cannot test of itself, because oneDNN reads its settings once per process.
 */
class KernelFaultsTest {

  private record Run(int exitCode, String output) {}

  private static Run java(Map<String, String> env, String... args) throws IOException, InterruptedException {
    List<String> command = new ArrayList<>(List.of(ProcessHandle.current().info().command().orElse("java"),
        "-cp", System.getProperty("java.class.path"), "-Dai.djl.offline=true"));
    command.addAll(List.of(args));
    ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true);
    builder.environment().putAll(env);
    Process process = builder.start();
    String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertThat(process.waitFor(5, TimeUnit.MINUTES)).isTrue();
    System.out.println(output);
    return new Run(process.exitValue(), output);
  }

  @Test
  void aServiceWhoseProbeFailsStartsOnLibtorchsOwnKernelsAndSaysSo() throws Exception {
    // A tolerance below float32's rounding: every configuration's probe fails for real.
    Run run = java(Map.of(), "-Ddistillery.kernels.probe.tolerance=1e-12", DjlRuntime.class.getName());
    assertThat(run.exitCode()).isZero();
    assertThat(run.output())
        .contains("kernel probe of onednn failed on this CPU")
        .contains("kernel probe of onednn-forward failed on this CPU")
        .contains("oneDNN implementations for conv 1->4 k3 s1 p1 w28 b64 FASHION_MNIST: [")
        .contains("kernels: native (isa default, probe onednn failed: conv 1->4");
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
    Run harness = java(Map.of("ONEDNN_DEFAULT_FPMATH_MODE", "BF16", "DISTILLERY_KERNEL_PROBE", "off"),
        "-Ddistillery.kernels=onednn", KernelParity.class.getName(), "--design", "probe", "--threads", "1,2");
    assertThat(harness.exitCode()).isEqualTo(1);
    assertThat(harness.output()).contains("FAIL conv 1->4 k3 s1 p1 w28 b64 FASHION_MNIST threads=1 pass=1: forward relative error")
        .containsPattern("oneDNN for conv 1->4 k3 s1 p1 w28 b64 FASHION_MNIST: \\[.*convolution \\S+ forward_training");
    Run service = java(Map.of("ONEDNN_DEFAULT_FPMATH_MODE", "BF16"), DjlRuntime.class.getName());
    assertThat(service.output()).contains("kernel probe of onednn failed on this CPU")
        .contains("kernel probe of onednn-forward failed on this CPU").contains("kernels: native");
  }
}
