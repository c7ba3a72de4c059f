package dev.distillery.student;

import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.config.ServiceConfig;
import dev.distillery.common.kafka.JobEvents;
import dev.distillery.common.kafka.RecordHandler;
import dev.distillery.common.service.ServiceMain;
import dev.distillery.common.service.StageService;
import dev.distillery.common.service.Workers;
import dev.distillery.schemas.SoftLabelBatch;
import dev.distillery.schemas.kafka.Topics;

/** Distils a smaller student from the teacher's soft labels and hands its checkpoint on. */
public final class StudentTrainerService extends StageService<SoftLabelBatch> {
  public static final String NAME = "student-trainer";

  public StudentTrainerService(ServiceConfig config) {
    super(config, Topics.SOFT_LABELS);
  }

  @Override
  protected RecordHandler<SoftLabelBatch> handler(JobEvents events, Workers workers) {
    Distiller distiller = new Distiller(events, new ArtifactStore(config.artifactsDir()));
    return new SoftLabelAssembler(distiller, events, workers, metrics);
  }

  public static void main(String[] args) {
    ServiceMain.run(NAME, StudentTrainerService::new);
  }
}
