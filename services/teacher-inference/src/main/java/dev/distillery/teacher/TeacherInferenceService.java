package dev.distillery.teacher;

import dev.distillery.common.config.ServiceConfig;
import dev.distillery.common.kafka.JobEvents;
import dev.distillery.common.kafka.RecordHandler;
import dev.distillery.common.service.ServiceMain;
import dev.distillery.common.service.StageService;
import dev.distillery.common.service.Workers;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.kafka.Topics;

/**
 * The entry stage: takes compression requests, checks them, runs the teacher over the training
 * set and publishes its soft labels (or, when no distillation is asked for, hands the teacher's
 * checkpoint straight to the pruner).
 */
public final class TeacherInferenceService extends StageService<CompressionRequest> {
  public static final String NAME = "teacher-inference";

  public TeacherInferenceService(ServiceConfig config) {
    super(config, Topics.REQUESTS);
  }

  @Override
  protected RecordHandler<CompressionRequest> handler(JobEvents events, Workers workers) {
    return new SoftLabelPublisher(events, workers, metrics);
  }

  public static void main(String[] args) {
    ServiceMain.run(NAME, TeacherInferenceService::new);
  }
}
