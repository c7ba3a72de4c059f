package dev.distillery.student;

import dev.distillery.common.kafka.JobEvents;
import dev.distillery.common.kafka.RecordHandler;
import dev.distillery.common.service.JobOutcomes;
import dev.distillery.common.service.StageMetrics;
import dev.distillery.common.service.Workers;
import dev.distillery.schemas.SoftLabelBatch;
import dev.distillery.schemas.Stage;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import org.apache.kafka.clients.consumer.ConsumerRecord;

/**
 * Gathers each job's soft-label batches and starts its distillation once the set is complete.
 * No batch record is marked done before the job's checkpoint (or failure) is published, so a
 * crash mid-job re-delivers every batch of that job. Runs on the consumer thread.
 */
final class SoftLabelAssembler implements RecordHandler<SoftLabelBatch> {
  /** Jobs finished recently, whose late duplicate batches are ignored instead of re-training. */
  private static final int REMEMBERED_JOBS = 1024;

  private record Pending(SoftLabels labels, List<CompletableFuture<Void>> records) {}

  private final Map<String, Pending> pending = new HashMap<>();
  private final Map<String, Boolean> finished = new LinkedHashMap<>(16, 0.75f, false) {
    @Override
    protected boolean removeEldestEntry(Map.Entry<String, Boolean> eldest) {
      return size() > REMEMBERED_JOBS;
    }
  };
  private final Distiller distiller;
  private final JobEvents events;
  private final Workers workers;
  private final StageMetrics metrics;

  SoftLabelAssembler(Distiller distiller, JobEvents events, Workers workers, StageMetrics metrics) {
    this.distiller = distiller;
    this.events = events;
    this.workers = workers;
    this.metrics = metrics;
  }

  @Override
  public boolean busy() {
    return workers.full();
  }

  @Override
  public CompletionStage<?> handle(ConsumerRecord<String, byte[]> record, SoftLabelBatch batch) {
    String jobId = batch.getJobId();
    if (finished.containsKey(jobId)) {
      return CompletableFuture.completedFuture(null);
    }
    CompletableFuture<Void> done = new CompletableFuture<>();
    Pending job = pending.computeIfAbsent(jobId, id -> new Pending(new SoftLabels(batch), new ArrayList<>()));
    job.records().add(done);
    try {
      job.labels().add(batch);
    } catch (IllegalArgumentException e) {
      pending.remove(jobId);
      finished.put(jobId, true);
      settle(job, JobOutcomes.settle(jobId, Stage.DISTILLATION, CompletableFuture.failedFuture(e), events, metrics));
      return done;
    }
    if (job.labels().complete()) {
      pending.remove(jobId);
      finished.put(jobId, true);
      CompletableFuture<?> work = workers.submit(() -> distiller.distill(job.labels())).thenCompose(acked -> acked);
      settle(job, JobOutcomes.settle(jobId, Stage.DISTILLATION, work, events, metrics));
    }
    return done;
  }

  private static void settle(Pending job, CompletableFuture<Void> outcome) {
    outcome.whenComplete((ok, error) -> job.records().forEach(record -> {
      if (error == null) {
        record.complete(null);
      } else {
        record.completeExceptionally(error);
      }
    }));
  }
}
