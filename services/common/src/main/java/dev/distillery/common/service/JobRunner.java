package dev.distillery.common.service;

import dev.distillery.common.JobControl;
import dev.distillery.common.JobFailedException;
import dev.distillery.common.JobStoppedException;
import dev.distillery.common.artifacts.JobClaims;
import dev.distillery.common.artifacts.JobLeases;
import dev.distillery.common.config.ServiceConfig;
import dev.distillery.common.kafka.Attempts;
import dev.distillery.common.kafka.DeadLetters;
import dev.distillery.common.kafka.JobEvents;
import dev.distillery.common.kafka.JobGate;
import dev.distillery.common.kafka.JobSignals;
import dev.distillery.schemas.Stage;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.common.errors.RetriableException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Runs a job's work in one stage and turns its end into the stage's last output, the one place
 * for a job's life in a stage: on the worker pool; under the job's lease when the stage is fenced
 * (one process at a time; a delivery of a job the stage finished before is skipped); stopped
 * between batches when the job is cancelled or fails elsewhere ({@link JobControl}); retried with
 * back-off after a retryable error (the broker, the network, the disk), up to the stage's attempts
 * (a process that died on the job counts as one, see {@code Attempts}); and ended by a failure
 * event naming the field at fault after a final error (a bad request, divergence) or the last
 * attempt, the record then in the dead-letter topic with its attempts.
 */
public final class JobRunner implements JobGate {
  private static final Logger LOG = LoggerFactory.getLogger(JobRunner.class);
  private static final Duration LONGEST_BACKOFF = Duration.ofMinutes(1);

  /** A job's work: returns the future of its outputs' acknowledgements. */
  @FunctionalInterface
  public interface Work {
    CompletableFuture<?> call() throws Exception;
  }

  private enum End { DONE, SKIPPED, STOPPED, FAILED }

  /** {@code gaveUp}: the attempts ran out on an error that another attempt might have mended. */
  private record Outcome(End end, Throwable error, int attempts, boolean gaveUp) {
    Outcome(End end, Throwable error, int attempts) {
      this(end, error, attempts, false);
    }
  }

  private final String name;
  private final Stage stage;
  private final boolean fenced;
  private final ServiceConfig.Reliability reliability;
  private final JobEvents events;
  private final Workers workers;
  private final StageMetrics metrics;
  private final JobSignals signals;
  private final JobLeases leases;
  private final JobClaims claims;
  private final DeadLetters deadLetters;
  private volatile StateRemover stateRemover = jobId -> {};

  /** Frees what a stage keeps on disk for a job (the trainer's resumable training state). */
  @FunctionalInterface
  public interface StateRemover {
    void remove(String jobId) throws IOException;
  }

  /**
   * @param name the stage's name (its consumer group), naming its leases and finished marks
   * @param fenced whether one process at a time may work on a job (not for work shared by
   *     replicas, such as the shards of one job)
   */
  public JobRunner(String name, Stage stage, boolean fenced, ServiceConfig.Reliability reliability, JobEvents events,
      Workers workers, StageMetrics metrics, JobSignals signals, JobLeases leases, JobClaims claims,
      DeadLetters deadLetters) {
    this.name = name;
    this.stage = stage;
    this.fenced = fenced;
    this.reliability = reliability;
    this.events = events;
    this.workers = workers;
    this.metrics = metrics;
    this.signals = signals;
    this.leases = leases;
    this.claims = claims;
    this.deadLetters = deadLetters;
  }

  /**
   * What frees the stage's state of a job that ended for good here (failed, given up after its
   * attempts, cancelled), including state a process that died left behind.
   */
  public JobRunner removingStateWith(StateRemover remover) {
    this.stateRemover = remover;
    return this;
  }

  public String name() {
    return name;
  }

  public JobEvents events() {
    return events;
  }

  public StageMetrics metrics() {
    return metrics;
  }

  public Stage stage() {
    return stage;
  }

  /**
   * Runs {@code work} for the job of {@code record} on the worker pool. The future completes once
   * the job's outcome is published here (its outputs, its failure event, or nothing when it
   * stopped); it fails only when even the failure event could not be published, and then the
   * record must not be committed.
   */
  public CompletableFuture<Void> run(ConsumerRecord<String, byte[]> record, String jobId, Work work) {
    long start = System.nanoTime();
    return workers.submit(() -> attempts(record, jobId, work))
        .thenCompose(outcome -> settle(record, jobId, outcome, (System.nanoTime() - start) / 1e9));
  }

  /** Ends the job now with {@code error} (a request refused before any work, say). */
  public CompletableFuture<Void> fail(String jobId, Throwable error) {
    return settle(null, jobId, new Outcome(End.FAILED, error, 1), 0);
  }

  /** True when this stage handed the job on before: a delivery now is a duplicate. */
  public boolean finishedBefore(String jobId) {
    return claims.isFinished(jobId, name);
  }

  @Override
  public boolean ended(String jobId) {
    return signals.ended(jobId).isPresent();
  }

  @Override
  public int maxAttempts() {
    return reliability.maxAttempts();
  }

  @Override
  public CompletableFuture<Void> abandon(ConsumerRecord<String, byte[]> record, String jobId, int attempts) {
    String reason = "the process working on it ended before finishing (killed, or out of memory?) "
        + (attempts == 1 ? "once" : attempts + " times") + "; given up after " + attempts
        + (attempts == 1 ? " attempt" : " attempts");
    return settle(record, jobId, new Outcome(End.FAILED, new RuntimeException(reason), attempts, true), 0);
  }

  /** On a worker thread: the lease, then the attempts, each stopped early when the job must stop. */
  private Outcome attempts(ConsumerRecord<String, byte[]> record, String jobId, Work work) throws Exception {
    AtomicReference<JobLeases.Lease> lease = new AtomicReference<>();
    try {
      if (fenced) {
        Optional<JobLeases.Lease> taken = leases.acquire(jobId, name, () -> ended(jobId));
        if (taken.isEmpty()) {
          return new Outcome(End.STOPPED, stopOf(jobId, null).orElseThrow(), 0);
        }
        lease.set(taken.get());
        if (finishedBefore(jobId)) {
          return new Outcome(End.SKIPPED, null, 0);
        }
      }
      int attempt = Attempts.of(record);
      try (JobControl.Scope scope = JobControl.enter(jobId, () -> stopOf(jobId, lease.get()))) {
        while (true) {
          try {
            JobControl.checkpoint();
            work.call().get();
            return new Outcome(End.DONE, null, attempt);
          } catch (Throwable e) {
            Throwable cause = unwrap(e);
            if (cause instanceof JobStoppedException) {
              return new Outcome(End.STOPPED, cause, attempt);
            }
            if (!retryable(cause) || attempt >= reliability.maxAttempts()) {
              return new Outcome(End.FAILED, cause, attempt, retryable(cause));
            }
            Duration wait = backOff(attempt);
            LOG.warn("job {}: {} attempt {} of {} failed; retrying in {}", jobId, stage, attempt,
                reliability.maxAttempts(), wait, cause);
            report(jobId, attempt, cause, wait);
            try {
              waitChecking(wait);
            } catch (JobStoppedException stopped) {
              return new Outcome(End.STOPPED, stopped, attempt);
            }
            attempt++;
          }
        }
      }
    } finally {
      if (lease.get() != null) {
        lease.get().close();
      }
    }
  }

  private void report(String jobId, int attempt, Throwable cause, Duration wait) {
    try {
      events.progress(jobId, stage, 0, 0, "attempt " + attempt + " of " + reliability.maxAttempts() + " failed ("
          + reason(cause) + "); retrying in " + wait.toSeconds() + " s", Map.of("attempt", (double) attempt));
    } catch (RuntimeException e) {
      LOG.debug("job {}: retry not reported: {}", jobId, e.toString());
    }
  }

  /** Why the job must stop here, if it must. */
  private Optional<JobStoppedException> stopOf(String jobId, JobLeases.Lease lease) {
    Optional<JobSignals.Ending> ending = signals.ended(jobId);
    if (ending.isPresent()) {
      return Optional.of(new JobStoppedException(ending.get().cancelled() ? JobStoppedException.Why.CANCELLED
          : JobStoppedException.Why.ENDED, ending.get().reason()));
    }
    if (lease != null && !lease.held()) {
      return Optional.of(new JobStoppedException(JobStoppedException.Why.FENCED,
          "another process took over the job (lease epoch " + lease.epoch() + " superseded)"));
    }
    return Optional.empty();
  }

  /** Publishes the outcome: nothing more on success, a progress note when cancelled, else the failure. */
  private CompletableFuture<Void> settle(ConsumerRecord<String, byte[]> record, String jobId, Outcome outcome,
      double seconds) {
    switch (outcome.end()) {
      case DONE:
        markFinished(jobId);
        metrics.jobCompleted(seconds);
        if (fenced) {
          LOG.info("job {}: {} done", jobId, stage);
        } else {
          LOG.debug("job {}: {} part done", jobId, stage); // one of the job's many records (a shard)
        }
        return CompletableFuture.completedFuture(null);
      case SKIPPED:
        LOG.info("job {}: {} finished it before; this delivery is a duplicate", jobId, stage);
        return CompletableFuture.completedFuture(null);
      case STOPPED:
        JobStoppedException stopped = (JobStoppedException) outcome.error();
        metrics.jobStopped();
        LOG.info("job {}: {} stopped: {}", jobId, stage, stopped.getMessage());
        if (stopped.why() != JobStoppedException.Why.FENCED) {
          removeState(jobId); // the job ended: nobody resumes it
        }
        if (stopped.why() != JobStoppedException.Why.CANCELLED) {
          return CompletableFuture.completedFuture(null);
        }
        // Says the stage let go of the job, for whoever watches it stop.
        return events.progress(jobId, stage, 0, 0, "stopped: " + stopped.getMessage(), Map.of())
            .<Void>thenApply(ack -> null).exceptionally(error -> null);
      default:
        return failed(record, jobId, outcome, seconds);
    }
  }

  private CompletableFuture<Void> failed(ConsumerRecord<String, byte[]> record, String jobId, Outcome outcome,
      double seconds) {
    Throwable cause = outcome.error();
    metrics.jobFailed(seconds);
    String field = cause instanceof JobFailedException failed ? failed.field() : null;
    String reason = reason(cause) + (outcome.gaveUp() && retryable(cause) ? " (attempt " + outcome.attempts()
        + " of " + reliability.maxAttempts() + ")" : "");
    if (cause instanceof JobFailedException) {
      LOG.info("job {} failed in {}: {}", jobId, stage, reason);
    } else {
      LOG.warn("job {} failed in {}", jobId, stage, cause);
    }
    signals.markEnded(jobId, new JobSignals.Ending(false, "failed in " + stage + ": " + reason));
    markFinished(jobId);
    removeState(jobId);
    CompletableFuture<?> dead = record != null && outcome.gaveUp()
        ? deadLetters.send(record, reason, outcome.attempts()) : CompletableFuture.completedFuture(null);
    return dead.thenCompose(ack -> events.failure(jobId, stage, field, reason)).thenAccept(ack -> {});
  }

  /** Later deliveries of the job to this stage are duplicates (fenced stages only: they own their jobs). */
  private void markFinished(String jobId) {
    if (!fenced) {
      return;
    }
    try {
      claims.finished(jobId, name);
    } catch (IOException e) {
      LOG.warn("job {}: cannot record that {} ended it; a re-delivery would run it again", jobId, stage, e);
    }
  }

  private void removeState(String jobId) {
    try {
      stateRemover.remove(jobId);
    } catch (IOException | RuntimeException e) {
      LOG.warn("job {}: cannot remove its state in {}: {}", jobId, stage, e.toString());
    }
  }

  /** Errors worth another attempt: the broker, the network, the disk. A bad request or divergence is final. */
  static boolean retryable(Throwable error) {
    return !(error instanceof JobFailedException)
        && (error instanceof RetriableException || error instanceof IOException || error instanceof UncheckedIOException
            || error instanceof java.util.concurrent.TimeoutException);
  }

  private Duration backOff(int attempt) {
    long millis = reliability.retryBackoff().toMillis() << Math.min(20, attempt - 1);
    return Duration.ofMillis(Math.min(LONGEST_BACKOFF.toMillis(), millis));
  }

  /** Waits out a back-off, stopping early (by exception) when the job must stop. */
  private static void waitChecking(Duration wait) throws InterruptedException {
    long until = System.nanoTime() + wait.toNanos();
    while (System.nanoTime() < until) {
      JobControl.checkpoint();
      Thread.sleep(Math.min(200, Math.max(1, (until - System.nanoTime()) / 1_000_000)));
    }
  }

  private static Throwable unwrap(Throwable error) {
    Throwable cause = error;
    while ((cause instanceof CompletionException || cause instanceof ExecutionException) && cause.getCause() != null) {
      cause = cause.getCause();
    }
    return cause;
  }

  private static String reason(Throwable cause) {
    return cause.getMessage() == null ? cause.getClass().getSimpleName() : cause.getMessage();
  }
}
