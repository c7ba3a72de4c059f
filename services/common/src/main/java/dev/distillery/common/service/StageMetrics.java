package dev.distillery.common.service;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/** Counters of one stage, served in Prometheus text format on /metrics. */
public final class StageMetrics {
  private final String service;
  private final AtomicLong consumed = new AtomicLong();
  private final AtomicLong deadLettered = new AtomicLong();
  private final AtomicLong jobsCompleted = new AtomicLong();
  private final AtomicLong jobsFailed = new AtomicLong();
  private final AtomicInteger inProgress = new AtomicInteger();

  public StageMetrics(String service) {
    this.service = service;
  }

  public void consumed() {
    consumed.incrementAndGet();
  }

  public void deadLettered() {
    deadLettered.incrementAndGet();
  }

  public void jobCompleted() {
    jobsCompleted.incrementAndGet();
  }

  public void jobFailed() {
    jobsFailed.incrementAndGet();
  }

  public void setInProgress(int records) {
    inProgress.set(records);
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
        + "# TYPE distillery_records_in_progress gauge\n"
        + "distillery_records_in_progress" + labels + " " + inProgress.get() + "\n";
  }
}
