package dev.distillery.common.ml;

import static org.assertj.core.api.Assertions.assertThat;

import dev.distillery.common.service.StageMetrics;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import org.junit.jupiter.api.Test;

/**
 * The kernel parity harness's suite design under the kernels this JVM chose at start (DjlRuntime's
 * probe on this CPU): every convolution, dense layer and built-in model matches float64 in float32
 * forward, backward-data and backward-weights, at 1, 2 and 3 threads, twice.
 */
class KernelParityTest {

  @Test
  void theChosenKernelsComputeWhatFloat64Computes() throws Exception {
    DjlRuntime.start(2);
    KernelParity.Report report = KernelParity.withShippedImages().run(KernelParity.suiteDesign(), new int[] {1, 2, 3});
    System.out.println("kernels: " + DjlRuntime.kernels() + "; " + report.summary());
    report.failures().stream().limit(50).forEach(f -> System.out.println("FAIL " + f));
    if (!report.passed()) {
      KernelParity.explain(report, 10).forEach((c, impls) -> System.out.println("oneDNN for " + c.label() + ": " + impls));
    }
    assertThat(report.failures()).as("kernels %s", DjlRuntime.kernels()).isEmpty();
    assertThat(report.worstError()).isLessThan(KernelParity.TOLERANCE);
  }

  @Test
  void metricsSayWhichKernelsServeThisJvm() {
    DjlRuntime.start(2);
    DjlRuntime.KernelStatus kernels = DjlRuntime.kernels();
    PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    new StageMetrics("pruner").bindTo(registry);
    // Prometheus's text format sorts the labels.
    assertThat(registry.scrape()).contains("distillery_kernels_info{isa=\"" + kernels.isa() + "\",kernels=\""
        + kernels.active().id() + "\",probe=\"" + kernels.probeOutcome() + "\",stage=\"pruner\"} 1\n");
  }
}
