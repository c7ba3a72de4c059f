package dev.distillery.student;

import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.artifacts.JobClaims;
import dev.distillery.common.JobFailedException;
import dev.distillery.common.RequestValidation;
import dev.distillery.common.config.ServiceConfig;
import dev.distillery.common.kafka.RecordHandler;
import dev.distillery.common.ml.TrainingCheckpoint;
import dev.distillery.common.service.ServiceMain;
import dev.distillery.common.service.StageService;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.kafka.Topics;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.slf4j.LoggerFactory;

/**
 * Trains students, two stages in one process: distillation (consumer group {@value #NAME}) from
 * the teacher's soft labels, and transfer learning (group {@value #TRANSFER}) of requests with the
 * TRANSFER stage. Both hand their checkpoint on to the pruner. Training state lives under
 * {@code <artifacts.dir>/training}, so a restarted trainer resumes its jobs.
 */
public final class StudentTrainerService {
  public static final String NAME = "student-trainer";
  public static final String TRANSFER = "student-transfer";

  private StudentTrainerService() {}

  public static List<StageService<?>> stages(ServiceConfig config) {
    ArtifactStore store = new ArtifactStore(config.artifactsDir());
    Path state = config.artifactsDir().resolve("training");
    RequestValidation validation = new RequestValidation(config.roots());
    return List.of(
        StageService.fenced(config, Stage.DISTILLATION, Topics.SOFT_LABELS, jobs ->
            new SoftLabelAssembler(new Distiller(jobs.events(), store, state, validation),
                jobs.removingStateWith(jobId -> TrainingCheckpoint.deleteAll(state.resolve(jobId))),
                config.maxPendingJobs())),
        StageService.fenced(config.withService(TRANSFER), Stage.TRANSFER, Topics.REQUESTS, jobs -> {
          jobs.removingStateWith(jobId -> TrainingCheckpoint.deleteAll(state.resolve(jobId)));
          TransferLearning transfer = new TransferLearning(jobs.events(), store, state);
          JobClaims claims = new JobClaims(config.artifactsDir());
          return (RecordHandler<CompressionRequest>) (record, request) -> {
            // Every request is claimed here too, in the partition's order, so this stage and the planner
            // agree which request owns an id; the planner answers used ids, this stage checks and runs
            // the TRANSFER requests.
            String jobId = request.getJobId();
            if (!RequestValidation.validJobId(jobId)) {
              return CompletableFuture.completedFuture(null);
            }
            try {
              JobClaims.Claim claim = claims.claim(record.key(), jobId, record.value(), jobs.name());
              if (!request.getStages().contains(Stage.TRANSFER)
                  || (claim != JobClaims.Claim.NEW && claim != JobClaims.Claim.RESUMED)) {
                return CompletableFuture.completedFuture(null);
              }
              validation.check(request);
            } catch (IOException | JobFailedException e) {
              return jobs.fail(jobId, e).thenRun(() -> finished(claims, jobs.name(), jobId));
            }
            return jobs.run(record, jobId, () -> transfer.transfer(request));
          };
        }));
  }

  /** Marks a refused transfer job ended, so a re-delivery of its request is not checked again. */
  private static void finished(JobClaims claims, String stage, String jobId) {
    try {
      claims.finished(jobId, stage);
    } catch (IOException e) {
      LoggerFactory.getLogger(StudentTrainerService.class)
          .warn("job {}: cannot record that it ended; a re-delivery would train it again", jobId, e);
    }
  }

  public static void main(String[] args) {
    ServiceMain.run(NAME, StudentTrainerService::stages);
  }
}
