package dev.distillery.teacher;

import dev.distillery.common.RequestValidation;
import dev.distillery.common.artifacts.JobClaims;
import dev.distillery.common.config.ServiceConfig;
import dev.distillery.common.service.ServiceMain;
import dev.distillery.common.service.StageService;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.kafka.Topics;
import java.util.List;

/**
 * Teacher inference, two stages in one process: the planner (consumer group
 * {@value #PLANNER}) takes requests and splits each job into shards; the labeler (group
 * {@value #NAME}) takes shards and publishes soft labels. Run more replicas and they share the
 * shards of every job through their common consumer group.
 */
public final class TeacherInferenceService {
  public static final String NAME = "teacher-inference";
  public static final String PLANNER = "teacher-planner";

  private TeacherInferenceService() {}

  public static List<StageService<?>> stages(ServiceConfig config) {
    return List.of(
        StageService.fenced(config.withService(PLANNER), Stage.TEACHER_INFERENCE, Topics.REQUESTS, jobs ->
            new JobPlanner(jobs, config.roots(), new JobClaims(config.artifactsDir()), config.shardSize(),
                config.labelBatchSize())),
        labeler(config));
  }

  /** The shard-labelling stage alone: what a scaled-out replica needs. */
  public static StageService<?> labeler(ServiceConfig config) {
    RequestValidation validation = new RequestValidation(config.roots());
    return StageService.shared(config, Stage.TEACHER_INFERENCE, Topics.TEACHER_SHARDS, jobs ->
        new SoftLabelPublisher(jobs, validation));
  }

  public static void main(String[] args) {
    ServiceMain.run(NAME, TeacherInferenceService::stages);
  }
}
