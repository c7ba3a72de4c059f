package dev.distillery.student;

import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.config.ServiceConfig;
import dev.distillery.common.service.ServiceMain;
import dev.distillery.common.service.StageService;
import dev.distillery.schemas.kafka.Topics;
import java.util.List;

/** Distils a smaller student from the teacher's soft labels and hands its checkpoint on. */
public final class StudentTrainerService {
  public static final String NAME = "student-trainer";

  private StudentTrainerService() {}

  public static List<StageService<?>> stages(ServiceConfig config) {
    ArtifactStore store = new ArtifactStore(config.artifactsDir());
    return List.of(new StageService<>(config, Topics.SOFT_LABELS, (events, workers, metrics) ->
        new SoftLabelAssembler(new Distiller(events, store), events, workers, metrics)));
  }

  public static void main(String[] args) {
    ServiceMain.run(NAME, StudentTrainerService::stages);
  }
}
