package dev.distillery.teacher;

import dev.distillery.common.RequestValidation;
import dev.distillery.common.artifacts.JobClaims;
import dev.distillery.common.config.ServiceConfig;
import dev.distillery.common.service.ServiceMain;
import dev.distillery.common.service.StageService;
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
        new StageService<>(config.withService(PLANNER), Topics.REQUESTS, (events, workers, metrics) ->
            new JobPlanner(events, workers, metrics, config.roots(),
                new JobClaims(config.artifactsDir()), config.shardSize(), config.labelBatchSize())),
        labeler(config));
  }

  /** The shard-labelling stage alone: what a scaled-out replica needs. */
  public static StageService<?> labeler(ServiceConfig config) {
    RequestValidation validation = new RequestValidation(config.roots());
    return new StageService<>(config, Topics.TEACHER_SHARDS, (events, workers, metrics) ->
        new SoftLabelPublisher(events, workers, metrics, validation));
  }

  public static void main(String[] args) {
    ServiceMain.run(NAME, TeacherInferenceService::stages);
  }
}
