package dev.distillery.common.service;

import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.schemas.JobProgress;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.binder.MeterBinder;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;

/**
 * What one stage did and does, kept here and bound as Micrometer meters tagged {@code stage} to
 * its process's registry ({@link ProcessMetrics}), which {@code /metrics} serves: counters
 * ({@code distillery_records_consumed_total}, {@code distillery_jobs_completed_total}, ...), gauges
 * and the time of each job's work in the stage as a histogram ({@code distillery_stage_job_seconds}).
 */
public final class StageMetrics implements MeterBinder {
  /** Histogram buckets for a stage's work on a job: a second to two hours. */
  private static final Duration[] JOB_TIME_BUCKETS = Stream.of(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200)
      .map(Duration::ofSeconds).toArray(Duration[]::new);
  private final String service;
  private final AtomicLong consumed = new AtomicLong();
  private final AtomicLong deadLettered = new AtomicLong();
  private final AtomicLong jobsCompleted = new AtomicLong();
  private final AtomicLong jobsFailed = new AtomicLong();
  private final AtomicLong jobsStopped = new AtomicLong();
  private final AtomicInteger inProgress = new AtomicInteger();
  private final AtomicLong consumerLag = new AtomicLong();
  private volatile double samplesPerSecond;
  /** Null until bound: a stage's jobs only run once its service started, and it binds at start. */
  private volatile Timer jobTime;

  public StageMetrics(String service) {
    this.service = service;
  }

  /**
   * Registers this stage's meters. Two instances of one stage bound to one registry (which only
   * tests make) share the meters of the first; each instance's own counts stay readable here.
   */
  @Override
  public void bindTo(MeterRegistry registry) {
    Tags tags = Tags.of("stage", service);
    counter(registry, "distillery.records.consumed", consumed, tags);
    counter(registry, "distillery.records.dead.lettered", deadLettered, tags);
    counter(registry, "distillery.jobs.completed", jobsCompleted, tags);
    counter(registry, "distillery.jobs.failed", jobsFailed, tags);
    FunctionCounter.builder("distillery.jobs.stopped", jobsStopped, AtomicLong::get)
        .description("cancelled, ended elsewhere, or taken over by another process").tags(tags).register(registry);
    jobTime = Timer.builder("distillery.stage.job").description("a job's work in this stage, completed or failed")
        .serviceLevelObjectives(JOB_TIME_BUCKETS).tags(tags).register(registry);
    Gauge.builder("distillery.records.in.progress", inProgress, AtomicInteger::get).tags(tags).register(registry);
    Gauge.builder("distillery.consumer.lag", consumerLag, AtomicLong::get)
        .description("records on the stage's partitions not finished yet").tags(tags).register(registry);
    Gauge.builder("distillery.samples.per.second", this, metrics -> metrics.samplesPerSecond)
        .description("the latest throughput the stage reported").tags(tags).register(registry);
    if (DjlRuntime.isStarted()) {
      // Which kernels serve this JVM's libtorch work (DjlRuntime's choice after its probe), info-style.
      DjlRuntime.KernelStatus k = DjlRuntime.kernels();
      Gauge.builder("distillery.kernels.info", () -> 1)
          .tags(tags.and("kernels", k.active().id(), "isa", k.isa(), "probe", k.probeOutcome())).register(registry);
    }
  }

  private static void counter(MeterRegistry registry, String name, AtomicLong count, Tags tags) {
    FunctionCounter.builder(name, count, AtomicLong::get).tags(tags).register(registry);
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
    timed(seconds);
  }

  /** A job's work in this stage failed after {@code seconds}. */
  public void jobFailed(double seconds) {
    jobsFailed.incrementAndGet();
    timed(seconds);
  }

  /** A job's work in this stage stopped: cancelled, ended elsewhere, or taken over by another process. */
  public void jobStopped() {
    jobsStopped.incrementAndGet();
  }

  private void timed(double seconds) {
    Timer timer = jobTime;
    if (timer != null) {
      timer.record(Duration.ofNanos(Math.round(seconds * 1e9)));
    }
  }

  /** Jobs this instance completed. */
  public long jobsCompleted() {
    return jobsCompleted.get();
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
}
