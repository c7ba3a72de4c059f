package dev.distillery.pruner;

import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.config.ServiceConfig;
import dev.distillery.common.kafka.RecordHandler;
import dev.distillery.common.service.ServiceMain;
import dev.distillery.common.service.StageService;
import dev.distillery.schemas.CheckpointReady;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.kafka.Topics;
import java.util.List;

/** Prunes each checkpoint handed on by an earlier stage and publishes the job's result. */
public final class PrunerService {
  public static final String NAME = "pruner";

  private PrunerService() {}

  public static List<StageService<?>> stages(ServiceConfig config) {
    ArtifactStore store = new ArtifactStore(config.artifactsDir());
    return List.of(StageService.fenced(config, Stage.PRUNING, Topics.CHECKPOINTS, jobs -> {
      Pruner pruner = new Pruner(jobs.events(), store, config.roots());
      return (RecordHandler<CheckpointReady>) (record, event) ->
          jobs.run(record, event.getJobId(), () -> pruner.prune(event));
    }));
  }

  public static void main(String[] args) {
    ServiceMain.run(NAME, PrunerService::stages);
  }
}
