package dev.distillery.teacher;

import dev.distillery.common.JobFailedException;
import dev.distillery.common.RequestValidation;
import dev.distillery.common.kafka.JobEvents;
import dev.distillery.common.kafka.RecordHandler;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.JobModel;
import dev.distillery.common.ml.Evaluation;
import dev.distillery.common.service.JobRunner;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.SoftLabelBatch;
import dev.distillery.schemas.TeacherShard;
import dev.distillery.schemas.kafka.Topics;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import org.apache.kafka.clients.consumer.ConsumerRecord;

/**
 * Labels one shard: runs the teacher over the shard's samples and publishes their
 * temperature-scaled logits (logits / T, packed float32) in batches with global indices. A shard
 * re-processed after a crash publishes the same batch indices again; the trainer keeps one vector
 * per sample (the first to arrive), so nothing is doubled, and nothing is committed here before
 * every batch of the shard is acknowledged, so nothing is lost.
 */
final class SoftLabelPublisher implements RecordHandler<TeacherShard> {
  /** The job whose teacher and data a worker thread holds, so its next shard skips loading them. */
  private record Loaded(String jobId, JobModel teacher, Datasets.TrainTest data) {}

  private final ThreadLocal<Loaded> loaded = new ThreadLocal<>();
  private final JobRunner jobs;
  private final JobEvents events;
  private final RequestValidation validation;

  SoftLabelPublisher(JobRunner jobs, RequestValidation validation) {
    this.jobs = jobs;
    this.events = jobs.events();
    this.validation = validation;
  }

  @Override
  public CompletionStage<?> handle(ConsumerRecord<String, byte[]> record, TeacherShard shard) {
    return jobs.run(record, shard.getJobId(), () -> label(shard));
  }

  /** Runs on a worker thread; the future completes when every batch of the shard is acknowledged. */
  private CompletableFuture<?> label(TeacherShard shard) throws Exception {
    String jobId = shard.getJobId();
    Loaded job = load(shard);
    float temperature = (float) shard.getContext().getRequest().getDistillation().getTemperature();
    int batchSize = shard.getBatchSize();
    int batchCount = (shard.getTotalSamples() + batchSize - 1) / batchSize;
    int classes = job.data().numClasses();
    List<CompletableFuture<?>> acks = new ArrayList<>();
    Evaluation.forEachBatch(job.teacher().model(), job.data().train(), job.teacher().input(),
        shard.getFirstSample(), shard.getFirstSample() + shard.getSampleCount(), batchSize,
        (first, logits, count, outputs) -> {
          if (outputs != classes) {
            throw new JobFailedException("teacher.checkpointUri",
                "the teacher outputs " + outputs + " values per sample, the dataset has " + classes + " classes");
          }
          ByteBuffer packed = ByteBuffer.allocate(logits.length * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
          for (float logit : logits) {
            packed.putFloat(logit / temperature);
          }
          acks.add(events.send(Topics.SOFT_LABELS, jobId, SoftLabelBatch.newBuilder()
              .setJobId(jobId).setContext(shard.getContext())
              .setBatchIndex(first / batchSize).setBatchCount(batchCount).setTotalSamples(shard.getTotalSamples())
              .setFirstSample(first).setSampleCount(count).setNumClasses(classes)
              .setTemperature(temperature).setScaledLogits(packed.flip()).build()));
        });
    return CompletableFuture.allOf(acks.toArray(CompletableFuture[]::new));
  }

  private Loaded load(TeacherShard shard) throws Exception {
    Loaded current = loaded.get();
    if (current != null && current.jobId().equals(shard.getJobId())) {
      return current;
    }
    if (current != null) {
      current.teacher().close();
      loaded.remove();
    }
    CompressionRequest request = shard.getContext().getRequest();
    validation.check(request);
    Datasets.TrainTest data = Datasets.load(request.getDataset());
    if (data.train().size() != shard.getTotalSamples()) {
      throw new JobFailedException("dataset.location", "the training set has " + data.train().size()
          + " samples here, the job was planned for " + shard.getTotalSamples());
    }
    Loaded fresh = new Loaded(shard.getJobId(), JobModel.load(JobModel.Source.of(request.getTeacher()), data.numClasses(),
        data.train().imageShape()), data);
    loaded.set(fresh);
    return fresh;
  }
}
