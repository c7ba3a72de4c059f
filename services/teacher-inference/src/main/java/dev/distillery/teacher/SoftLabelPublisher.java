package dev.distillery.teacher;

import ai.djl.Model;
import dev.distillery.common.JobFailedException;
import dev.distillery.common.RequestValidation;
import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.kafka.JobEvents;
import dev.distillery.common.kafka.RecordHandler;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.Evaluation;
import dev.distillery.common.ml.Models;
import dev.distillery.common.service.JobOutcomes;
import dev.distillery.common.service.StageMetrics;
import dev.distillery.common.service.Workers;
import dev.distillery.schemas.ArtifactRef;
import dev.distillery.schemas.CheckpointReady;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.JobContext;
import dev.distillery.schemas.ModelMetrics;
import dev.distillery.schemas.SoftLabelBatch;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.TeacherSpec;
import dev.distillery.schemas.kafka.Topics;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.stream.Collectors;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Runs a request's teacher over its training set and publishes temperature-scaled logits in
 * batches of {@value #BATCH} samples, each batch carrying the job's context for the trainer.
 */
final class SoftLabelPublisher implements RecordHandler<CompressionRequest> {
  private static final Logger LOG = LoggerFactory.getLogger(SoftLabelPublisher.class);
  static final int BATCH = 256;
  private static final Stage STAGE = Stage.TEACHER_INFERENCE;

  private final JobEvents events;
  private final Workers workers;
  private final StageMetrics metrics;

  SoftLabelPublisher(JobEvents events, Workers workers, StageMetrics metrics) {
    this.events = events;
    this.workers = workers;
    this.metrics = metrics;
  }

  @Override
  public boolean busy() {
    return workers.full();
  }

  @Override
  public CompletionStage<?> handle(ConsumerRecord<String, byte[]> record, CompressionRequest request) {
    String jobId = request.getJobId();
    List<RequestValidation.Violation> problems = RequestValidation.validate(request);
    if (!problems.isEmpty()) {
      metrics.jobFailed();
      String reason = problems.stream().map(Object::toString).collect(Collectors.joining("; "));
      LOG.info("job {} rejected: {}", jobId, reason);
      return events.failure(jobId, STAGE, problems.get(0).field(), "invalid request: " + reason);
    }
    return JobOutcomes.settle(jobId, STAGE, workers.submit(() -> run(request)).thenCompose(acked -> acked),
        events, metrics);
  }

  /** Runs on a worker thread; the returned future completes when every output is acknowledged. */
  private CompletableFuture<Void> run(CompressionRequest request) throws Exception {
    long start = System.nanoTime();
    String jobId = request.getJobId();
    Datasets.TrainTest data = Datasets.load(request.getDataset());
    int classes = data.numClasses();
    TeacherSpec spec = request.getTeacher();
    Path checkpoint = ArtifactStore.localPath(spec.getCheckpointUri());
    boolean distill = request.getStages().contains(Stage.DISTILLATION);
    try (Model teacher = loadTeacher(spec, classes, data, checkpoint)) {
      events.progress(jobId, STAGE, 0, data.train().size(), "evaluating teacher", Map.of());
      ModelMetrics teacherMetrics = ModelMetrics.newBuilder()
          .setArchitecture(spec.getArchitecture()).setWidth(spec.getWidth())
          .setTestAccuracy(Evaluation.accuracy(teacher, data.test()))
          .setParameters(Models.parameterCount(teacher)).setNonZeroParameters(Models.nonZeroCount(teacher))
          .setCheckpointBytes(Files.size(checkpoint)).build();
      if (!distill) {
        JobContext context = context(request, teacherMetrics, start);
        ArtifactRef ref = new ArtifactRef(checkpoint.toUri().toString(), ArtifactStore.sha256Of(checkpoint), Files.size(checkpoint));
        return events.send(Topics.CHECKPOINTS, jobId, CheckpointReady.newBuilder()
            .setJobId(jobId).setProducedBy(STAGE).setContext(context)
            .setArchitecture(spec.getArchitecture()).setWidth(spec.getWidth()).setCheckpoint(ref).build())
            .thenAccept(m -> {});
      }
      float temperature = (float) request.getDistillation().getTemperature();
      int samples = data.train().size();
      List<ByteBuffer> batches = new ArrayList<>();
      long batchStart = System.nanoTime();
      Evaluation.forEachBatch(teacher, data.train(), BATCH, (first, logits, count, numClasses) -> {
        ByteBuffer packed = ByteBuffer.allocate(count * numClasses * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
        for (float logit : logits) {
          packed.putFloat(logit / temperature);
        }
        batches.add(packed.flip());
        int done = first + count;
        if (batches.size() % 20 == 0 || done == samples) {
          double rate = done / ((System.nanoTime() - batchStart) / 1e9);
          events.progress(jobId, STAGE, done, samples, "soft labels", Map.of("samplesPerSecond", rate));
        }
      });
      JobContext context = context(request, teacherMetrics, start);
      List<CompletableFuture<?>> acks = new ArrayList<>();
      for (int i = 0; i < batches.size(); i++) {
        int count = Math.min(BATCH, samples - i * BATCH);
        acks.add(events.send(Topics.SOFT_LABELS, jobId, SoftLabelBatch.newBuilder()
            .setJobId(jobId).setContext(context).setBatchIndex(i).setBatchCount(batches.size())
            .setFirstSample(i * BATCH).setSampleCount(count).setNumClasses(classes)
            .setTemperature(temperature).setScaledLogits(batches.get(i)).build()));
      }
      return CompletableFuture.allOf(acks.toArray(CompletableFuture[]::new));
    }
  }

  private static Model loadTeacher(TeacherSpec spec, int classes, Datasets.TrainTest data, Path checkpoint)
      throws JobFailedException {
    try {
      return Models.load(spec.getArchitecture(), spec.getWidth(), classes, data.train().imageShape(), checkpoint);
    } catch (IOException e) {
      throw new JobFailedException("teacher.checkpointUri", e.getMessage(), e);
    }
  }

  private static JobContext context(CompressionRequest request, ModelMetrics teacher, long startNanos) {
    return JobContext.newBuilder().setRequest(request).setTeacher(teacher)
        .setStageSeconds(Map.of(STAGE.name(), (System.nanoTime() - startNanos) / 1e9)).build();
  }
}
