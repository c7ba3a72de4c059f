package dev.distillery.launcher;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.config.ServiceConfig;
import dev.distillery.common.kafka.JobEvents;
import dev.distillery.cli.JobWatcher;
import dev.distillery.common.kafka.KafkaClients;
import dev.distillery.common.kafka.KafkaTopics;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.Models;
import dev.distillery.common.service.StageService;
import dev.distillery.common.testing.ServiceProcess;
import dev.distillery.kafka.embedded.EmbeddedKafkaBroker;
import dev.distillery.kafka.embedded.EmbeddedKafkaExtension;
import dev.distillery.pruner.PrunerService;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.DatasetSpec;
import dev.distillery.schemas.DistillationSettings;
import dev.distillery.schemas.JobProgress;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.TeacherSpec;
import dev.distillery.schemas.kafka.Topics;
import dev.distillery.student.StudentTrainerService;
import dev.distillery.teacher.TeacherInferenceService;
import io.vertx.core.Vertx;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * The student trainer, in a JVM of its own, is killed (SIGKILL) after an epoch of a job; a new
 * trainer process takes the job over from the topics and continues after the last finished
 * epoch instead of starting over.
 */
@ExtendWith(EmbeddedKafkaExtension.class)
class TrainerRestartTest {
  private static final int EPOCHS = 5;
  private static final int KILL_AFTER_EPOCH = 2;
  private static final Duration WAIT = Duration.ofMinutes(3);

  @Test
  void aTrainerKilledAfterAnEpochResumesAtTheNextOne(EmbeddedKafkaBroker broker, @TempDir Path work) throws Exception {
    DjlRuntime.start(1);
    KafkaTopics.ensure(broker.bootstrapServers(), 2);
    Path artifacts = work.resolve("artifacts");
    DatasetSpec data = DatasetSpec.newBuilder().setLocation(PipelineScenario.SUBSET.toString()).build();
    Datasets.TrainTest sets = Datasets.load(data);
    // Any teacher does for this test: an untrained one gives soft labels as well as a trained one.
    Path teacher;
    try (Model model = Models.create("convnet", 0.5, 10, sets.train().imageShape(), 1)) {
      teacher = ArtifactStore.localPath(Models.save(model, new ArtifactStore(artifacts), "teachers", "t.params").getUri());
    }
    CompressionRequest demo = DemoMain.request("restart-" + System.nanoTime(), teacher, data);
    CompressionRequest request = CompressionRequest.newBuilder(demo)
        .setTeacher(TeacherSpec.newBuilder(demo.getTeacher()).setWidth(0.5).build())
        .setDistillation(DistillationSettings.newBuilder(demo.getDistillation()).setEpochs(EPOCHS)
            .setHardLabelBaseline(false).build())
        .setStages(List.of(Stage.TEACHER_INFERENCE, Stage.DISTILLATION))
        .build();

    Map<String, String> trainerEnv = Map.of(
        "KAFKA_BOOTSTRAP_SERVERS", broker.bootstrapServers(),
        "KAFKA_SESSION_TIMEOUT_MS", "6000",
        "KAFKA_HEARTBEAT_INTERVAL_MS", "500",
        "DISTILLERY_ARTIFACTS_DIR", artifacts.toString(),
        "DISTILLERY_MODEL_ROOTS", artifacts.resolve("teachers").toString(),
        "DISTILLERY_DATASET_ROOTS", PipelineScenario.SUBSET.getParent().toString(),
        "DISTILLERY_TORCH_THREADS", "1");
    Path log = work.resolve("trainer.log");
    Vertx vertx = Vertx.vertx();
    ServiceProcess[] trainer = {ServiceProcess.start(StudentTrainerService.class, trainerEnv, log).awaitReady(WAIT)};
    try (JobWatcher watcher = new JobWatcher(broker.bootstrapServers())) {
      Map<String, String> keys = LocalPipeline.keys(broker.bootstrapServers(), artifacts, 1,
          List.of(artifacts.resolve("teachers")), List.of(PipelineScenario.SUBSET.getParent()));
      List<StageService<?>> others = new ArrayList<>(TeacherInferenceService.stages(
          ServiceConfig.fromKeys(TeacherInferenceService.NAME, keys)));
      others.addAll(PrunerService.stages(ServiceConfig.fromKeys(PrunerService.NAME, keys)));
      for (StageService<?> stage : others) {
        vertx.deployVerticle(stage).await(1, TimeUnit.MINUTES);
      }
      ServiceProcess.await(() -> others.stream().allMatch(StageService::ready), "teacher and pruner ready", WAIT);
      publish(broker, request);

      List<JobProgress> firstRun = new ArrayList<>();
      List<JobProgress> resumed = new ArrayList<>();
      JobWatcher.Outcome outcome = watcher.await(request.getJobId(), WAIT, progress -> {
        if (progress.getStage() != Stage.DISTILLATION) {
          return;
        }
        (progress.getMetrics().containsKey("resumedAfterEpoch") ? resumed : firstRun).add(progress);
        if (progress.getStep() == KILL_AFTER_EPOCH && resumed.isEmpty()) {
          try {
            trainer[0].kill();
            trainer[0] = ServiceProcess.start(StudentTrainerService.class, trainerEnv, log);
          } catch (Exception e) {
            throw new AssertionError(e);
          }
        }
      });

      assertThat(outcome.failure()).as("failure").isNull();
      List<Long> firstEpochs = firstRun.stream().map(JobProgress::getStep).toList();
      List<Long> resumedEpochs = resumed.stream().map(JobProgress::getStep).toList();
      System.out.printf("trainer killed after epochs %s; the new trainer ran epochs %s%n", firstEpochs, resumedEpochs);
      long lastFinished = firstEpochs.get(firstEpochs.size() - 1);
      assertThat(firstEpochs).startsWith(1L, 2L).hasSizeLessThan(EPOCHS);
      assertThat(resumedEpochs).as("the epochs after the restart")
          .containsExactlyElementsOf(java.util.stream.LongStream.rangeClosed(lastFinished + 1, EPOCHS).boxed().toList());
      assertThat(resumed).allSatisfy(p ->
          assertThat(p.getMetrics().get("resumedAfterEpoch")).isEqualTo((double) lastFinished));
      assertThat(outcome.result().getStudent().getBestEpoch()).isBetween(1, EPOCHS);
      // Chance is 0.1; the untrained teacher's soft labels carry nothing, the hard labels do.
      assertThat(outcome.result().getStudent().getTestAccuracy()).isGreaterThan(0.3);
      assertThat(artifacts.resolve("training").resolve(request.getJobId())).as("training state removed")
          .satisfies(dir -> assertThat(Files.exists(dir)).isFalse());
    } finally {
      trainer[0].close();
      vertx.close().await(1, TimeUnit.MINUTES);
    }
  }

  private static void publish(EmbeddedKafkaBroker broker, CompressionRequest request) throws Exception {
    try (KafkaProducer<String, byte[]> producer = KafkaClients.producer(
            ServiceConfig.fromKeys("test", Map.of("kafka.bootstrap.servers", broker.bootstrapServers())));
        JobEvents events = new JobEvents(producer)) {
      events.send(Topics.REQUESTS, request.getJobId(), request).get(30, TimeUnit.SECONDS);
    }
  }
}
