package dev.distillery.student;

import dev.distillery.common.kafka.JobEvents;
import dev.distillery.common.kafka.RecordHandler;
import dev.distillery.common.service.JobRunner;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.SoftLabelBatch;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeoutException;
import org.apache.kafka.clients.consumer.ConsumerRecord;

/**
 * Gathers each job's soft-label batches and starts its distillation once the set is complete.
 * Every batch record of a job, re-deliveries included, completes only when the job's checkpoint
 * (or failure) is published, so no offset is committed past a job that has no outcome yet.
 * Runs on the consumer thread.
 */
final class SoftLabelAssembler implements RecordHandler<SoftLabelBatch> {
  /** Outcomes remembered for late duplicate batches of started jobs. */
  private static final int REMEMBERED_JOBS = 1024;
  /**
   * A job whose set stays incomplete for this long of fetching (time paused behind another job's
   * training does not count: its batches could not be read) fails instead of holding its
   * partition's commits.
   */
  static final Duration INCOMPLETE_TIMEOUT = Duration.ofMinutes(10);

  private static final class Pending {
    final SoftLabels labels;
    final List<CompletableFuture<Void>> records = new ArrayList<>();
    long lastBatchMillis;

    Pending(SoftLabels labels) {
      this.labels = labels;
    }
  }

  private final Map<String, Pending> pending = new HashMap<>();
  private final int maxPendingJobs;
  /** The consumer's fetching clock, as of the last {@link #expire}. */
  private long fetchingMillis;
  private final Map<String, CompletableFuture<Void>> outcomes = new LinkedHashMap<>(16, 0.75f, false) {
    @Override
    protected boolean removeEldestEntry(Map.Entry<String, CompletableFuture<Void>> eldest) {
      return size() > REMEMBERED_JOBS && eldest.getValue().isDone();
    }
  };
  private final Distiller distiller;
  private final JobRunner jobs;
  private final JobEvents events;

  SoftLabelAssembler(Distiller distiller, JobRunner jobs, int maxPendingJobs) {
    this.maxPendingJobs = maxPendingJobs;
    this.distiller = distiller;
    this.jobs = jobs;
    this.events = jobs.events();
  }

  @Override
  public CompletionStage<?> handle(ConsumerRecord<String, byte[]> record, SoftLabelBatch batch) {
    String jobId = batch.getJobId();
    CompletableFuture<Void> outcome = outcomes.get(jobId);
    if (outcome != null) {
      return outcome; // a duplicate of a job already started: done when that job is
    }
    CompletableFuture<Void> done = new CompletableFuture<>();
    Pending job = pending.get(jobId);
    if (job == null && jobs.finishedBefore(jobId)) {
      // The tail of a job distilled before this process started (a restart, a rebalance): nothing to do.
      CompletableFuture<Void> finished = CompletableFuture.completedFuture(null);
      outcomes.put(jobId, finished);
      return finished;
    }
    try {
      if (job == null) {
        if (pending.size() >= maxPendingJobs) {
          // Each assembling job holds its soft labels in memory: a flood of job ids must not exhaust it.
          throw new IllegalArgumentException("this trainer is assembling " + pending.size()
              + " jobs already (max.pending.jobs); submit again when fewer jobs are running");
        }
        SoftLabels labels = new SoftLabels(batch);
        long taken = pending.values().stream().mapToLong(p -> p.labels.declaredFloats()).sum();
        if (taken + labels.declaredFloats() > SoftLabels.MAX_FLOATS) {
          throw new IllegalArgumentException("the soft labels of the " + pending.size() + " jobs this trainer "
              + "assembles take " + taken + " of its " + SoftLabels.MAX_FLOATS + " values; this job needs "
              + labels.declaredFloats() + ": submit again when fewer jobs are running");
        }
        job = new Pending(labels);
        pending.put(jobId, job);
      }
      job.records.add(done);
      job.lastBatchMillis = fetchingMillis;
      long before = job.labels.receivedSamples();
      if (job.labels.add(batch)) {
        reportProgress(jobId, job, before, batch.getTotalSamples());
      }
    } catch (IllegalArgumentException e) {
      if (job == null) {
        // Remembered, so the job's other batches do not fail it again.
        CompletableFuture<Void> failed = jobs.fail(jobId, e);
        outcomes.put(jobId, failed);
        return failed;
      }
      finish(jobId, jobs.fail(jobId, e));
      return done;
    }
    if (job.labels.complete()) {
      Pending complete = job;
      finish(jobId, jobs.run(record, jobId, () -> distiller.distill(complete.labels)));
    }
    return done;
  }

  /**
   * Labelling progress of the whole job, which only the trainer sees: teacher replicas each know
   * their shards. Reported at every tenth of the set.
   */
  private void reportProgress(String jobId, Pending job, long before, int totalSamples) {
    long received = job.labels.receivedSamples();
    int tenth = Math.max(1, totalSamples / 10);
    if (totalSamples > 0 && (received / tenth != before / tenth || job.labels.complete())) {
      double seconds = job.labels.arrivalSeconds();
      events.progress(jobId, Stage.TEACHER_INFERENCE, received, totalSamples, "soft labels received",
          seconds > 0 ? Map.of("samplesPerSecond", received / seconds) : Map.of());
    }
  }

  /**
   * Gives up the jobs whose sets stay incomplete too long, and drops at once the jobs that ended
   * (cancelled, or failed in another stage): their batches are done with, and their memory freed.
   */
  @Override
  public void expire(long fetchingMillis) {
    this.fetchingMillis = fetchingMillis;
    for (Iterator<Map.Entry<String, Pending>> it = pending.entrySet().iterator(); it.hasNext(); ) {
      Map.Entry<String, Pending> entry = it.next();
      String jobId = entry.getKey();
      Pending job = entry.getValue();
      if (jobs.ended(jobId)) {
        it.remove();
        settle(jobId, job, CompletableFuture.completedFuture(null));
      } else if (fetchingMillis - job.lastBatchMillis > INCOMPLETE_TIMEOUT.toMillis()) {
        it.remove();
        settle(jobId, job, jobs.fail(jobId, new TimeoutException(
            "soft labels incomplete: no batch in " + INCOMPLETE_TIMEOUT.toMinutes() + " minutes of reading")));
      }
    }
  }

  private void finish(String jobId, CompletableFuture<Void> outcome) {
    settle(jobId, pending.remove(jobId), outcome);
  }

  /** Completes every batch record of the job with its outcome (settled: published, or nothing to publish). */
  private void settle(String jobId, Pending job, CompletableFuture<Void> outcome) {
    outcomes.put(jobId, outcome);
    outcome.whenComplete((ok, error) -> job.records.forEach(record -> {
      if (error == null) {
        record.complete(null);
      } else {
        record.completeExceptionally(error);
      }
    }));
  }
}
