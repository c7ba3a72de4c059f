package dev.distillery.student;

import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.artifacts.JobClaims;
import dev.distillery.common.RequestValidation;
import dev.distillery.common.config.ServiceConfig;
import dev.distillery.common.kafka.RecordHandler;
import dev.distillery.common.service.JobOutcomes;
import dev.distillery.common.service.ServiceMain;
import dev.distillery.common.service.StageService;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.kafka.Topics;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;

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
        new StageService<>(config, Topics.SOFT_LABELS, (events, workers, metrics) ->
            new SoftLabelAssembler(new Distiller(events, store, state, validation), events, workers, metrics,
                config.maxPendingJobs())),
        new StageService<>(config.withService(TRANSFER), Topics.REQUESTS, (events, workers, metrics) -> {
          TransferLearning transfer = new TransferLearning(events, store, state);
          JobClaims claims = new JobClaims(config.artifactsDir());
          return (RecordHandler<CompressionRequest>) (record, request) -> {
            // The planner answers invalid requests and used ids; this stage takes the valid TRANSFER ones.
            if (!request.getStages().contains(Stage.TRANSFER) || !validation.validate(request).isEmpty()) {
              return CompletableFuture.completedFuture(null);
            }
            String jobId = request.getJobId();
            CompletableFuture<?> trained;
            try {
              JobClaims.Claim claim = claims.claim(jobId, record.value(), Stage.TRANSFER.name());
              if (claim == JobClaims.Claim.TAKEN || claim == JobClaims.Claim.DUPLICATE) {
                return CompletableFuture.completedFuture(null);
              }
              trained = workers.submit(() -> transfer.transfer(request)).thenCompose(acked -> acked)
                  .thenApply(acked -> finished(claims, jobId));
            } catch (IOException e) {
              trained = CompletableFuture.failedFuture(e);
            }
            return JobOutcomes.settle(jobId, Stage.TRANSFER, trained, events, metrics);
          };
        }));
  }

  /** Marks a transfer job handed on, so a re-delivery of its request does not train it again. */
  private static Void finished(JobClaims claims, String jobId) {
    try {
      claims.finished(jobId, Stage.TRANSFER.name());
      return null;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  public static void main(String[] args) {
    ServiceMain.run(NAME, StudentTrainerService::stages);
  }
}
