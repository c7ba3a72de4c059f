package dev.distillery.common.service;

import dev.distillery.common.JobFailedException;
import dev.distillery.common.kafka.JobEvents;
import dev.distillery.schemas.Stage;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Turns the end of a job's work into its last output: success, or a failure event with the reason. */
public final class JobOutcomes {
  private static final Logger LOG = LoggerFactory.getLogger(JobOutcomes.class);

  private JobOutcomes() {}

  /**
   * Completes when {@code work} succeeded, or when a failure event for it was acknowledged; fails
   * only when even the failure event could not be published (then the record must not be
   * committed).
   */
  public static CompletableFuture<Void> settle(String jobId, Stage stage, CompletableFuture<?> work,
      JobEvents events, StageMetrics metrics) {
    long start = System.nanoTime();
    return work.<Void>thenApply(done -> {
      metrics.jobCompleted((System.nanoTime() - start) / 1e9);
      LOG.info("job {}: {} done", jobId, stage);
      return null;
    }).exceptionallyCompose(error -> {
      Throwable cause = error instanceof CompletionException && error.getCause() != null ? error.getCause() : error;
      metrics.jobFailed((System.nanoTime() - start) / 1e9);
      String field = cause instanceof JobFailedException failed ? failed.field() : null;
      String reason = cause.getMessage() == null ? cause.getClass().getSimpleName() : cause.getMessage();
      if (cause instanceof JobFailedException) {
        LOG.info("job {} failed in {}: {}", jobId, stage, reason);
      } else {
        LOG.warn("job {} failed in {}", jobId, stage, cause);
      }
      return events.failure(jobId, stage, field, reason).thenAccept(ack -> {});
    });
  }
}
