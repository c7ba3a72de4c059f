package dev.distillery.common.service;

import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.schemas.JobProgress;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.DoubleAdder;

/** What one stage did and does, served in Prometheus text format on /metrics. */
public final class StageMetrics {
  private final String service;
  private final AtomicLong consumed = new AtomicLong();
  private final AtomicLong deadLettered = new AtomicLong();
  private final AtomicLong jobsCompleted = new AtomicLong();
  private final AtomicLong jobsFailed = new AtomicLong();
  private final AtomicLong jobsStopped = new AtomicLong();
  private final DoubleAdder jobSeconds = new DoubleAdder();
  private final AtomicInteger inProgress = new AtomicInteger();
  private final AtomicLong consumerLag = new AtomicLong();
  private volatile double samplesPerSecond;

  public StageMetrics(String service) {
    this.service = service;
  }

  public void consumed() {
    consumed.incrementAndGet();
  }

  public void deadLettered() {
    deadLettered.incrementAndGet();
  }

  /** A job's work in this stage succeeded after {@code seconds}. */
  public void jobCompleted(double seconds) {
    jobsCompleted.incrementAndGet();
    jobSeconds.add(seconds);
  }

  /** A job's work in this stage failed after {@code seconds}. */
  public void jobFailed(double seconds) {
    jobsFailed.incrementAndGet();
    jobSeconds.add(seconds);
  }

  /** A job's work in this stage stopped: cancelled, ended elsewhere, or taken over by another process. */
  public void jobStopped() {
    jobsStopped.incrementAndGet();
  }

  public void setInProgress(int records) {
    inProgress.set(records);
  }

  /** Records on the stage's partitions not yet fetched by its consumer. */
  public void setConsumerLag(long records) {
    consumerLag.set(records);
  }

  /** Keeps the latest throughput a stage reported in its progress. */
  public void progressed(JobProgress progress) {
    Double rate = progress.getMetrics().get("samplesPerSecond");
    if (rate != null && Double.isFinite(rate)) {
      samplesPerSecond = rate;
    }
  }

  /**
   * Which kernels serve this JVM's libtorch work (DjlRuntime's choice after its probe), as an
   * info-style gauge; empty in a JVM that runs no DJL.
   */
  private String kernels() {
    if (!DjlRuntime.isStarted()) {
      return "";
    }
    DjlRuntime.KernelStatus k = DjlRuntime.kernels();
    return "# TYPE distillery_kernels_info gauge\n"
        + "distillery_kernels_info{stage=\"" + service + "\",kernels=\"" + k.active().id() + "\",isa=\"" + k.isa()
        + "\",probe=\"" + k.probeOutcome() + "\"} 1\n";
  }

  public String prometheus() {
    String labels = "{stage=\"" + service + "\"}";
    return "# TYPE distillery_records_consumed_total counter\n"
        + "distillery_records_consumed_total" + labels + " " + consumed.get() + "\n"
        + "# TYPE distillery_records_dead_lettered_total counter\n"
        + "distillery_records_dead_lettered_total" + labels + " " + deadLettered.get() + "\n"
        + "# TYPE distillery_jobs_completed_total counter\n"
        + "distillery_jobs_completed_total" + labels + " " + jobsCompleted.get() + "\n"
        + "# TYPE distillery_jobs_failed_total counter\n"
        + "distillery_jobs_failed_total" + labels + " " + jobsFailed.get() + "\n"
        + "# TYPE distillery_jobs_stopped_total counter\n"
        + "distillery_jobs_stopped_total" + labels + " " + jobsStopped.get() + "\n"
        + "# TYPE distillery_stage_job_seconds summary\n"
        + "distillery_stage_job_seconds_sum" + labels + " " + jobSeconds.sum() + "\n"
        + "distillery_stage_job_seconds_count" + labels + " " + (jobsCompleted.get() + jobsFailed.get()) + "\n"
        + "# TYPE distillery_records_in_progress gauge\n"
        + "distillery_records_in_progress" + labels + " " + inProgress.get() + "\n"
        + "# TYPE distillery_consumer_lag gauge\n"
        + "distillery_consumer_lag" + labels + " " + consumerLag.get() + "\n"
        + "# TYPE distillery_samples_per_second gauge\n"
        + "distillery_samples_per_second" + labels + " " + samplesPerSecond + "\n"
        + kernels();
  }
}
