package dev.distillery.teacher;

import ai.djl.ndarray.types.Shape;
import dev.distillery.common.JobFailedException;
import dev.distillery.common.RequestValidation;
import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.artifacts.JobClaims;
import dev.distillery.common.config.AllowedRoots;
import dev.distillery.common.kafka.JobEvents;
import dev.distillery.common.kafka.RecordHandler;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.Evaluation;
import dev.distillery.common.ml.JobModel;
import dev.distillery.common.ml.Models;
import dev.distillery.common.service.JobRunner;
import dev.distillery.schemas.ArtifactRef;
import dev.distillery.schemas.CheckpointReady;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.JobContext;
import dev.distillery.schemas.ModelFormat;
import dev.distillery.schemas.ModelMetrics;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.StudentSpec;
import dev.distillery.schemas.TeacherShard;
import dev.distillery.schemas.TeacherSpec;
import dev.distillery.schemas.kafka.Topics;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The entry of every job: checks the request, measures the teacher on the test set, and splits
 * the training set into shards on {@code distillery.teacher-shards} for the inference replicas. A
 * job without distillation hands the teacher's checkpoint straight to the pruner instead.
 */
final class JobPlanner implements RecordHandler<CompressionRequest> {
  private static final Stage STAGE = Stage.TEACHER_INFERENCE;
  private static final Logger LOG = LoggerFactory.getLogger(JobPlanner.class);

  private final JobRunner jobs;
  private final JobEvents events;
  private final int shardSize;
  private final int batchSize;
  private final RequestValidation validation;
  private final JobClaims claims;
  /** Teacher metrics by checkpoint hash, preprocessing and test set; a few hundred bytes each. */
  private final Map<String, ModelMetrics> evaluated = Collections.synchronizedMap(
      new LinkedHashMap<>(16, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<String, ModelMetrics> eldest) {
          return size() > 256;
        }
      });

  JobPlanner(JobRunner jobs, AllowedRoots roots, JobClaims claims, int shardSize, int batchSize) {
    this.validation = new RequestValidation(roots);
    this.claims = claims;
    this.jobs = jobs;
    this.events = jobs.events();
    this.batchSize = batchSize;
    // Whole batches per shard, so every batch index is global and belongs to exactly one shard.
    this.shardSize = Math.max(1, (shardSize + batchSize - 1) / batchSize) * batchSize;
  }

  /**
   * Refuses an invalid request, or one whose job id another request owns, before any work; a
   * re-delivery of a request already planned is skipped. The claim is made on the consumer thread,
   * in the partition's order, so of two requests under one id the first one stands.
   */
  @Override
  public CompletionStage<?> handle(ConsumerRecord<String, byte[]> record, CompressionRequest request) {
    try {
      return claimAndPlan(record, request);
    } catch (IOException e) {
      return jobs.fail(request.getJobId(),
          new IOException("cannot record which request owns job id " + request.getJobId() + ": " + e.getMessage(), e));
    }
  }

  private CompletionStage<?> claimAndPlan(ConsumerRecord<String, byte[]> record, CompressionRequest request)
      throws IOException {
    String jobId = request.getJobId();
    if (!RequestValidation.validJobId(jobId)) {
      return fail(jobId, validation.validate(request));
    }
    switch (claims.claim(record.key(), jobId, record.value(), jobs.name())) {
      case TAKEN:
        return refuse(jobId, "already used by another request; the job of that id goes on as it was: "
            + "submit with a new id (or none, and the job API makes one)");
      case MISKEYED:
        return refuse(jobId, "the request's record must be keyed by its jobId, was keyed '"
            + (record.key() == null ? "" : record.key().substring(0, Math.min(64, record.key().length()))) + "'");
      case DUPLICATE:
        return CompletableFuture.completedFuture(null); // planned (or refused) before: a re-delivery
      default:
        break;
    }
    if (request.getStages().contains(Stage.TRANSFER)) {
      return CompletableFuture.completedFuture(null); // the student trainer's transfer stage checks and runs it
    }
    List<RequestValidation.Violation> problems = validation.validate(request);
    if (!problems.isEmpty()) {
      return fail(jobId, problems).thenRun(() -> finished(jobId));
    }
    return jobs.run(record, jobId, () -> plan(request));
  }

  private CompletableFuture<Void> fail(String jobId, List<RequestValidation.Violation> problems) {
    return jobs.fail(jobId, RequestValidation.failure(problems));
  }

  /** Refuses one request and leaves the job of its id (if any) as it was. */
  private CompletableFuture<?> refuse(String jobId, String reason) {
    jobs.metrics().jobFailed(0);
    return events.refusal(jobId, STAGE, reason);
  }

  /** Later deliveries of an invalid request are duplicates (JobRunner marks the jobs it runs). */
  private void finished(String jobId) {
    try {
      claims.finished(jobId, jobs.name());
    } catch (IOException e) {
      LOG.warn("job {}: cannot record that it was planned; a re-delivery would plan it again", jobId, e);
    }
  }

  /**
   * What the later stages will find wrong with the models a request names, found before any
   * compute: a TorchScript student that does not take the input or give one logit per class, and
   * pruning targets naming layers the model to prune lacks.
   */
  private static void checkModelsAhead(CompressionRequest request, Datasets.TrainTest data) throws JobFailedException {
    boolean distilled = request.getStages().contains(Stage.DISTILLATION);
    boolean pruned = request.getStages().contains(Stage.PRUNING);
    StudentSpec student = request.getStudent();
    if (!(distilled && student.getFormat() == ModelFormat.TORCHSCRIPT) && !pruned) {
      return;
    }
    int classes = data.numClasses();
    Shape image = data.train().imageShape();
    try (JobModel model = !distilled ? JobModel.load(JobModel.Source.of(request.getTeacher()), classes, image)
        : student.getFormat() == ModelFormat.TORCHSCRIPT ? JobModel.load(JobModel.Source.of(student), classes, image)
        : JobModel.create(student.getArchitecture(), student.getWidth(), classes, image, 0)) {
      model.checkTrainable(distilled ? "student.checkpointUri" : "teacher.checkpointUri");
      if (pruned) {
        model.checkLayerNames(request.getPruning());
      }
    }
  }

  /** Runs on a worker thread; the future completes when every shard (or the checkpoint) is acknowledged. */
  private CompletableFuture<?> plan(CompressionRequest request) throws Exception {
    long start = System.nanoTime();
    String jobId = request.getJobId();
    Datasets.TrainTest data = Datasets.load(request.getDataset());
    checkModelsAhead(request, data);
    TeacherSpec spec = request.getTeacher();
    Path checkpoint = ArtifactStore.localPath(spec.getCheckpointUri());
    String sha256 = ArtifactStore.sha256Of(checkpoint);
    // The same teacher is usually distilled many times: measure it once per test set.
    String evaluationKey = sha256 + " " + spec.getArchitecture() + " " + spec.getInput() + " " + request.getDataset().getLocation()
        + " " + request.getDataset().getTestLimit() + " " + request.getDataset().getClasses();
    ModelMetrics teacherMetrics = evaluated.get(evaluationKey);
    if (teacherMetrics == null) {
      try (JobModel teacher = JobModel.load(JobModel.Source.of(spec), data.numClasses(), data.train().imageShape())) {
        events.progress(jobId, STAGE, 0, data.train().size(), "evaluating teacher", Map.of());
        teacherMetrics = ModelMetrics.newBuilder()
            .setArchitecture(teacher.architecture()).setWidth(spec.getWidth())
            .setTestAccuracy(Evaluation.accuracy(teacher.model(), data.test(), teacher.input()))
            .setParameters(Models.parameterCount(teacher.model()))
            .setNonZeroParameters(Models.nonZeroCount(teacher.model()))
            .setCheckpointBytes(Files.size(checkpoint)).build();
      }
      evaluated.put(evaluationKey, teacherMetrics);
    }
    JobContext context = JobContext.newBuilder().setRequest(request).setTeacher(teacherMetrics)
        .setStageSeconds(Map.of(STAGE.name(), (System.nanoTime() - start) / 1e9))
        .setStageKernels(DjlRuntime.withKernelsOf(Map.of(), STAGE.name())).build();
    if (!request.getStages().contains(Stage.DISTILLATION)) {
      ArtifactRef ref = new ArtifactRef(checkpoint.toUri().toString(), sha256, Files.size(checkpoint));
      return events.send(Topics.CHECKPOINTS, jobId, CheckpointReady.newBuilder()
          .setJobId(jobId).setProducedBy(STAGE).setContext(context)
          .setFormat(spec.getFormat()).setArchitecture(teacherMetrics.getArchitecture()).setWidth(spec.getWidth())
          .setInput(spec.getInput()).setCheckpoint(ref).build());
    }
    int samples = data.train().size();
    int shards = (samples + shardSize - 1) / shardSize;
    List<CompletableFuture<?>> acks = new ArrayList<>();
    for (int i = 0; i < shards; i++) {
      int first = i * shardSize;
      acks.add(events.send(Topics.TEACHER_SHARDS, jobId + "/" + i, TeacherShard.newBuilder()
          .setJobId(jobId).setContext(context).setShardIndex(i).setShardCount(shards)
          .setFirstSample(first).setSampleCount(Math.min(shardSize, samples - first))
          .setBatchSize(batchSize).setTotalSamples(samples).build()));
    }
    events.progress(jobId, STAGE, 0, samples, shards + " shards of up to " + shardSize + " samples", Map.of());
    return CompletableFuture.allOf(acks.toArray(CompletableFuture[]::new));
  }
}
