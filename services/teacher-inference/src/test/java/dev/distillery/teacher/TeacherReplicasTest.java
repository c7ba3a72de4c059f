package dev.distillery.teacher;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.config.ServiceConfig;
import dev.distillery.common.kafka.JobEvents;
import dev.distillery.common.kafka.KafkaClients;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.Evaluation;
import dev.distillery.common.ml.JobModel;
import dev.distillery.common.ml.ImageDataset;
import dev.distillery.common.ml.Models;
import dev.distillery.common.service.StageService;
import dev.distillery.common.testing.ServiceProcess;
import dev.distillery.kafka.embedded.EmbeddedKafkaBroker;
import dev.distillery.kafka.embedded.EmbeddedKafkaExtension;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.DatasetSpec;
import dev.distillery.schemas.DistillationSettings;
import dev.distillery.schemas.ModelFormat;
import dev.distillery.schemas.PruningSettings;
import dev.distillery.schemas.SoftLabelBatch;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.StudentSpec;
import dev.distillery.schemas.TeacherSpec;
import dev.distillery.schemas.kafka.Topics;
import io.vertx.core.Vertx;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Teacher inference spread over replicas of one consumer group, on the real embedded broker: every
 * training sample gets exactly one soft-label vector (as the trainer keeps them), equal to running
 * the teacher directly, also when a replica is killed mid-job.
 */
@ExtendWith(EmbeddedKafkaExtension.class)
class TeacherReplicasTest {
  private static final Duration WAIT = Duration.ofMinutes(3);
  private static final double TEMPERATURE = 4.0;
  private static ImageDataset train;

  @BeforeAll
  static void setUp(EmbeddedKafkaBroker broker) throws Exception {
    DjlRuntime.start(1);
    train = Datasets.read(TorchScriptTeacherTest.SUBSET, "train");
    Map<String, Integer> topics = new HashMap<>();
    Topics.ALL.forEach(topic -> topics.put(topic.name(), 1));
    topics.put(Topics.TEACHER_SHARDS.name(), 4);
    broker.createTopics(topics);
  }

  @Test
  void twoReplicasShareAJobAndLabelEverySampleOnce(EmbeddedKafkaBroker broker, @TempDir Path work) throws Exception {
    TeacherSpec teacher = TorchScriptTeacherTest.spec(TorchScriptTeacherTest.golden().getJsonArray("cases").getJsonObject(0),
        List.of(1, 28, 28));
    CompressionRequest request = request("two-replicas", teacher);
    Vertx vertx = Vertx.vertx();
    try {
      ServiceConfig config = config(broker, work, 64);
      List<StageService<?>> stages = new ArrayList<>(TeacherInferenceService.stages(config));
      StageService<?> second = TeacherInferenceService.labeler(config);
      stages.add(second);
      for (StageService<?> stage : stages) {
        vertx.deployVerticle(stage).await(1, TimeUnit.MINUTES);
      }
      await(() -> stages.stream().allMatch(StageService::ready), "replicas ready");
      publish(broker, request);
      try (SoftLabelCollector labels = new SoftLabelCollector(broker.bootstrapServers(), request.getJobId())) {
        labels.awaitComplete(WAIT);
        assertThat(labels.all).as("no batch published twice").hasSize(labels.batchCount);
        assertThat(labels.batchCount).isEqualTo((train.size() + 63) / 64);
        assertEqualToDirect(labels.vectors(train.size(), 10), teacher);
      }
      StageService<?> first = stages.get(1);
      assertThat(first.metrics().jobsCompleted()).as("shards the first replica labelled").isPositive();
      assertThat(second.metrics().jobsCompleted()).as("shards the second replica labelled").isPositive();
    } finally {
      vertx.close().await(1, TimeUnit.MINUTES);
    }
  }

  @Test
  void aReplicaKilledMidJobLeavesItToTheOther(EmbeddedKafkaBroker broker, @TempDir Path work) throws Exception {
    // The convnet, slower than the TorchScript fixture, so the job is still running when the other
    // replica is killed (at half width; the first of its 32 batches is out in well under a second).
    Path checkpoint;
    try (Model model = Models.create("convnet", 0.5, 10, train.imageShape(), 11)) {
      checkpoint = ArtifactStore.localPath(Models.save(model, new ArtifactStore(work), "teachers", "wide.params").getUri());
    }
    TeacherSpec teacher = TeacherSpec.newBuilder().setFormat(ModelFormat.BUILT_IN).setArchitecture("convnet")
        .setWidth(0.5).setCheckpointUri(checkpoint.toUri().toString()).build();
    CompressionRequest request = request("killed-replica", teacher);
    ServiceProcess doomed = ServiceProcess.start(TeacherInferenceService.class, Map.of(
        "KAFKA_BOOTSTRAP_SERVERS", broker.bootstrapServers(),
        "KAFKA_SESSION_TIMEOUT_MS", "6000",
        "KAFKA_HEARTBEAT_INTERVAL_MS", "500",
        "DISTILLERY_ARTIFACTS_DIR", work.toString(),
        "DISTILLERY_MODEL_ROOTS", work.toString(),
        "DISTILLERY_DATASET_ROOTS", TorchScriptTeacherTest.SUBSET.toAbsolutePath().getParent().toString(),
        "DISTILLERY_TORCH_THREADS", "1",
        "DISTILLERY_SHARD_SIZE", "256",
        "DISTILLERY_LABEL_BATCH_SIZE", "128"), work.resolve("replica.log"));
    Vertx vertx = Vertx.vertx();
    try {
      doomed.awaitReady(WAIT);
      List<StageService<?>> survivor = TeacherInferenceService.stages(config(broker, work, 128));
      for (StageService<?> stage : survivor) {
        vertx.deployVerticle(stage).await(1, TimeUnit.MINUTES);
      }
      await(() -> survivor.stream().allMatch(StageService::ready), "surviving replica ready");
      publish(broker, request);
      try (SoftLabelCollector labels = new SoftLabelCollector(broker.bootstrapServers(), request.getJobId())) {
        await(() -> labels.poll() > 0, "first soft labels");
        doomed.kill();
        int seenAtKill = labels.firstByIndex.size();
        labels.awaitComplete(WAIT);
        assertThat(seenAtKill).as("the job was mid-way when the replica died").isLessThan(labels.batchCount);
        System.out.printf("killed replica: %d of %d batches seen at the kill, %d records in all (%d repeated)%n",
            seenAtKill, labels.batchCount, labels.all.size(), labels.all.size() - labels.batchCount);
        float[] vectors = labels.vectors(train.size(), 10);
        assertEqualToDirect(vectors, teacher);
        // A shard re-done after the kill may repeat batches: they carry the same values.
        for (SoftLabelBatch batch : labels.all) {
          float[] again = SoftLabelCollector.floats(batch);
          for (int i = 0; i < again.length; i++) {
            assertThat(again[i]).isCloseTo(vectors[batch.getFirstSample() * 10 + i], org.assertj.core.data.Offset.offset(1e-5f));
          }
        }
      }
    } finally {
      doomed.close();
      vertx.close().await(1, TimeUnit.MINUTES);
    }
  }

  private static void assertEqualToDirect(float[] vectors, TeacherSpec spec) throws Exception {
    float[] direct = new float[vectors.length];
    try (JobModel teacher = JobModel.load(JobModel.Source.of(spec), 10, train.imageShape())) {
      Evaluation.forEachBatch(teacher.model(), train, teacher.input(), 0, train.size(), 200,
          (first, logits, count, classes) -> {
            for (int i = 0; i < logits.length; i++) {
              direct[first * classes + i] = logits[i] / (float) TEMPERATURE;
            }
          });
    }
    for (int i = 0; i < vectors.length; i++) {
      if (Math.abs(vectors[i] - direct[i]) > 1e-5f) {
        throw new AssertionError("soft label " + i + " (sample " + i / 10 + ") is " + vectors[i]
            + ", the teacher run directly gives " + direct[i]);
      }
    }
  }

  private static CompressionRequest request(String jobId, TeacherSpec teacher) {
    return CompressionRequest.newBuilder()
        .setJobId(jobId + "-" + System.nanoTime())
        .setTeacher(teacher)
        .setDataset(DatasetSpec.newBuilder().setLocation(TorchScriptTeacherTest.SUBSET.toAbsolutePath().toString()).setTrainLimit(0).setTestLimit(0).build())
        .setStudent(StudentSpec.newBuilder().setArchitecture("lenet5").setWidth(1.0).build())
        .setDistillation(DistillationSettings.newBuilder().setTemperature(TEMPERATURE).build())
        .setPruning(PruningSettings.newBuilder().build())
        .setStages(List.of(Stage.TEACHER_INFERENCE, Stage.DISTILLATION))
        .build();
  }

  private static ServiceConfig config(EmbeddedKafkaBroker broker, Path work, int labelBatch) throws Exception {
    Path goldenModels = Path.of(TeacherReplicasTest.class.getResource("/golden").toURI());
    return ServiceConfig.fromKeys(TeacherInferenceService.NAME, Map.of(
        "kafka.bootstrap.servers", broker.bootstrapServers(),
        "model.roots", work + "," + goldenModels,
        "dataset.roots", TorchScriptTeacherTest.SUBSET.toAbsolutePath().getParent().toString(),
        "kafka.session.timeout.ms", "6000",
        "kafka.heartbeat.interval.ms", "500",
        "artifacts.dir", work.toString(),
        "torch.threads", "1",
        "shard.size", "256",
        "label.batch.size", String.valueOf(labelBatch)));
  }

  private static void publish(EmbeddedKafkaBroker broker, CompressionRequest request) throws Exception {
    try (KafkaProducer<String, byte[]> producer = KafkaClients.producer(
            ServiceConfig.fromKeys("test", Map.of("kafka.bootstrap.servers", broker.bootstrapServers())));
        JobEvents events = new JobEvents(producer)) {
      events.send(Topics.REQUESTS, request.getJobId(), request).get(30, TimeUnit.SECONDS);
    }
  }

  private static void await(BooleanSupplier condition, String what) throws InterruptedException {
    ServiceProcess.await(condition, what, WAIT);
  }
}
