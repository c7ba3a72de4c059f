package dev.distillery.pruner;

import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.config.ServiceConfig;
import dev.distillery.common.kafka.JobEvents;
import dev.distillery.common.kafka.RecordHandler;
import dev.distillery.common.service.JobOutcomes;
import dev.distillery.common.service.ServiceMain;
import dev.distillery.common.service.StageService;
import dev.distillery.common.service.Workers;
import dev.distillery.schemas.CheckpointReady;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.kafka.Topics;
import java.util.concurrent.CompletionStage;
import org.apache.kafka.clients.consumer.ConsumerRecord;

/** Prunes each checkpoint handed on by an earlier stage and publishes the job's result. */
public final class PrunerService extends StageService<CheckpointReady> {
  public static final String NAME = "pruner";

  public PrunerService(ServiceConfig config) {
    super(config, Topics.CHECKPOINTS);
  }

  @Override
  protected RecordHandler<CheckpointReady> handler(JobEvents events, Workers workers) {
    Pruner pruner = new Pruner(events, new ArtifactStore(config.artifactsDir()));
    return new RecordHandler<>() {
      @Override
      public CompletionStage<?> handle(ConsumerRecord<String, byte[]> record, CheckpointReady event) {
        return JobOutcomes.settle(event.getJobId(), Stage.PRUNING,
            workers.submit(() -> pruner.prune(event)).thenCompose(acked -> acked), events, metrics);
      }

      @Override
      public boolean busy() {
        return workers.full();
      }
    };
  }

  public static void main(String[] args) {
    ServiceMain.run(NAME, PrunerService::new);
  }
}
