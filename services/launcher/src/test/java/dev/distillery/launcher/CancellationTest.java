package dev.distillery.launcher;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.kafka.KafkaTopics;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.Models;
import dev.distillery.kafka.embedded.EmbeddedKafkaBroker;
import dev.distillery.kafka.embedded.EmbeddedKafkaExtension;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.DatasetSpec;
import dev.distillery.schemas.DistillationSettings;
import dev.distillery.schemas.JobCancellation;
import dev.distillery.schemas.JobProgress;
import dev.distillery.schemas.PruningMethod;
import dev.distillery.schemas.PruningSettings;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.StudentSpec;
import dev.distillery.schemas.TeacherSpec;
import dev.distillery.schemas.TransferSettings;
import dev.distillery.schemas.kafka.Topics;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Cancelling a job in each stage, through the real broker and services: before the planner takes
 * it, while its shards are labelled, while the student trains, while a transfer trains, and while
 * the pruner fine-tunes. Each stage stops the job between batches (within seconds), publishes
 * nothing more for it (no shards, soft labels, checkpoint or result), says it stopped, and frees
 * its state; the services go on with the next job.
 */
@ExtendWith(EmbeddedKafkaExtension.class)
class CancellationTest {
  private static final Duration WAIT = Duration.ofMinutes(3);
  /** From the cancellation to the stage's "stopped" note: between two batches, plus reading the topic. */
  private static final double STOP_SECONDS = 10;

  @Test
  void everyStageStopsACancelledJobWithinSecondsAndPublishesNothingMore(EmbeddedKafkaBroker broker,
      @TempDir Path work) throws Exception {
    DjlRuntime.start(2);
    String bootstrap = broker.bootstrapServers();
    KafkaTopics.ensure(bootstrap, 2);
    ArtifactStore store = new ArtifactStore(work.resolve("artifacts"));
    DatasetSpec data = DatasetSpec.newBuilder().setLocation(PipelineScenario.SUBSET.toString()).build();
    Datasets.TrainTest sets = Datasets.load(data);
    // Untrained teachers label as slowly as trained ones; resnet20 slowly enough to be caught labelling.
    Path convnet = teacher(store, "convnet", 0.5, sets);
    Path resnet = teacher(store, "resnet20", 1.0, sets);
    String suffix = UUID.randomUUID().toString().substring(0, 8);
    CompressionRequest base = CompressionRequest.newBuilder(DemoMain.request("x", convnet, data))
        .setTeacher(TeacherSpec.newBuilder(DemoMain.request("x", convnet, data).getTeacher()).setWidth(0.5).build())
        .setDistillation(DistillationSettings.newBuilder().setTemperature(4.0).setAlpha(0.7).setEpochs(6)
            .setBatchSize(64).setLearningRate(0.002).setSeed(42L).setHardLabelBaseline(false).build())
        .setPruning(PruningSettings.newBuilder().setMethod(PruningMethod.L1_UNSTRUCTURED).setTargetSparsity(0.5)
            .setSteps(3).setFineTuneEpochs(3).setLearningRate(0.0005).build())
        .build();
    CompressionRequest beforePlanning = CompressionRequest.newBuilder(base).setJobId("cancel-plan-" + suffix).build();
    CompressionRequest labelling = CompressionRequest.newBuilder(base).setJobId("cancel-label-" + suffix)
        .setTeacher(TeacherSpec.newBuilder(base.getTeacher()).setArchitecture("resnet20").setWidth(1.0)
            .setCheckpointUri(resnet.toUri().toString()).build())
        .build();
    CompressionRequest distilling = CompressionRequest.newBuilder(base).setJobId("cancel-distil-" + suffix).build();
    CompressionRequest transferring = CompressionRequest.newBuilder(base).setJobId("cancel-transfer-" + suffix)
        .setStudent(StudentSpec.newBuilder().setArchitecture("convnet").setWidth(0.5).build())
        .setTransfer(TransferSettings.newBuilder().setPretrainedClasses(10).build())
        .setStages(List.of(Stage.TRANSFER, Stage.PRUNING))
        .build();
    CompressionRequest pruning = CompressionRequest.newBuilder(base).setJobId("cancel-prune-" + suffix)
        .setStages(List.of(Stage.TEACHER_INFERENCE, Stage.PRUNING))
        .build();
    CompressionRequest after = CompressionRequest.newBuilder(base).setJobId("after-" + suffix)
        .setDistillation(DistillationSettings.newBuilder(base.getDistillation()).setEpochs(1).build())
        .setStages(List.of(Stage.TEACHER_INFERENCE, Stage.DISTILLATION))
        .build();

    Map<String, String> keys = new HashMap<>(LocalPipeline.keys(bootstrap, store.root(), 2,
        List.of(store.root().resolve("teachers")), List.of(PipelineScenario.SUBSET.getParent())));
    keys.put("shard.size", "256"); // 16 shards: a labelling job is caught between two
    try (LocalPipeline pipeline = LocalPipeline.start(keys);
        KafkaProducer<String, byte[]> producer = PipelineScenario.producer(bootstrap, store);
        JobTopics topics = new JobTopics(bootstrap)) {
      // Planner: cancelled before its request is read; then the request comes, and is not planned.
      cancel(producer, beforePlanning.getJobId());
      PipelineScenario.send(producer, beforePlanning);

      // Labelling: cancelled when the first soft labels appear.
      PipelineScenario.send(producer, labelling);
      topics.await(() -> topics.count(Topics.SOFT_LABELS.name(), labelling.getJobId()) > 0, "soft labels of " + labelling.getJobId());
      cancel(producer, labelling.getJobId());
      // The planner takes requests in order: once the next job is planned, the first was not.
      PipelineScenario.send(producer, distilling);
      topics.await(() -> topics.count(Topics.TEACHER_SHARDS.name(), distilling.getJobId()) > 0, "shards of the next job");
      assertThat(topics.count(Topics.TEACHER_SHARDS.name(), beforePlanning.getJobId())).as("shards of a job cancelled before planning").isZero();

      // Distillation: cancelled after the student's first epoch.
      long distilCancelled = cancelAt(producer, topics, distilling.getJobId(), Stage.DISTILLATION);
      assertStopped(topics, distilling.getJobId(), Stage.DISTILLATION, distilCancelled);
      assertThat(store.root().resolve("training").resolve(distilling.getJobId())).as("training state freed")
          .satisfies(dir -> assertThat(Files.exists(dir)).isFalse());

      // Transfer: cancelled after its first epoch.
      PipelineScenario.send(producer, transferring);
      long transferCancelled = cancelAt(producer, topics, transferring.getJobId(), Stage.TRANSFER);
      assertStopped(topics, transferring.getJobId(), Stage.TRANSFER, transferCancelled);

      // Pruning: cancelled while fine-tuning.
      PipelineScenario.send(producer, pruning);
      long pruneCancelled = cancelAt(producer, topics, pruning.getJobId(), Stage.PRUNING);
      assertStopped(topics, pruning.getJobId(), Stage.PRUNING, pruneCancelled);

      // The services go on: the next job finishes.
      PipelineScenario.send(producer, after);
      topics.await(() -> topics.count(Topics.CHECKPOINTS.name(), after.getJobId()) > 0, "the next job's student");

      int batches = (sets.train().size() + 255) / 256;
      System.out.printf("labelling job: %d of %d soft-label batches published before it stopped%n",
          topics.count(Topics.SOFT_LABELS.name(), labelling.getJobId()), batches);
      assertThat(topics.count(Topics.SOFT_LABELS.name(), labelling.getJobId())).as("soft-label batches").isLessThan(batches);
      for (CompressionRequest cancelled : List.of(beforePlanning, labelling, distilling, transferring, pruning)) {
        String job = cancelled.getJobId();
        assertThat(topics.count(Topics.RESULTS.name(), job)).as("results of %s", job).isZero();
        assertThat(topics.count(Topics.FAILURES.name(), job)).as("failures of %s", job).isZero();
      }
      assertThat(topics.count(Topics.CHECKPOINTS.name(), labelling.getJobId())).isZero();
      assertThat(topics.progress(labelling.getJobId())).noneMatch(p -> p.getStage() == Stage.DISTILLATION);
      assertThat(topics.checkpoints(distilling.getJobId())).noneMatch(p -> p.equals(Stage.DISTILLATION));
      assertThat(topics.checkpoints(transferring.getJobId())).isEmpty();
    }
  }

  private static Path teacher(ArtifactStore store, String architecture, double width, Datasets.TrainTest sets)
      throws Exception {
    try (Model model = Models.create(architecture, width, 10, sets.train().imageShape(), 1)) {
      return ArtifactStore.localPath(Models.save(model, store, "teachers", architecture + ".params").getUri());
    }
  }

  private static void cancel(KafkaProducer<String, byte[]> producer, String jobId) throws Exception {
    JobCancellation cancellation = new JobCancellation(jobId, "test", "cancellation-test", System.currentTimeMillis());
    producer.send(new ProducerRecord<>(Topics.CANCELLATIONS.name(), jobId,
        Topics.CANCELLATIONS.valueSerde().serializer().serialize("", cancellation))).get(30, TimeUnit.SECONDS);
  }

  /** Cancels {@code jobId} at its first progress of {@code stage} with a step; returns when, in ms. */
  private static long cancelAt(KafkaProducer<String, byte[]> producer, JobTopics topics, String jobId, Stage stage)
      throws Exception {
    topics.await(() -> topics.progress(jobId).stream().anyMatch(p -> p.getStage() == stage && p.getStep() > 0),
        stage + " progress of " + jobId);
    long at = System.currentTimeMillis();
    cancel(producer, jobId);
    return at;
  }

  private static void assertStopped(JobTopics topics, String jobId, Stage stage, long cancelledAtMs) throws Exception {
    topics.await(() -> topics.progress(jobId).stream().anyMatch(p -> p.getStage() == stage
        && p.getMessage().startsWith("stopped: cancelled")), stage + " stopping " + jobId);
    JobProgress stopped = topics.progress(jobId).stream()
        .filter(p -> p.getStage() == stage && p.getMessage().startsWith("stopped: cancelled")).findFirst().orElseThrow();
    double seconds = (stopped.getTimestampMs() - cancelledAtMs) / 1000.0;
    System.out.printf("%s stopped %s %.2f s after its cancellation%n", stage, jobId, seconds);
    assertThat(seconds).as("seconds for %s to stop", stage).isLessThan(STOP_SECONDS);
    // Nothing after the stop: no later epoch of that stage.
    assertThat(topics.progress(jobId).stream().filter(p -> p.getStage() == stage
        && p.getTimestampMs() > stopped.getTimestampMs() && p.getStep() > 0)).isEmpty();
  }

  /** Every record of the pipeline's topics, from the beginning, by job (shards keyed job/shard). */
  private static final class JobTopics implements AutoCloseable {
    private final KafkaConsumer<String, byte[]> consumer;
    private final Map<String, List<ConsumerRecord<String, byte[]>>> byTopicAndJob = new HashMap<>();

    JobTopics(String bootstrap) {
      consumer = PipelineScenario.fromBeginning(bootstrap, Topics.PROGRESS.name());
      List<org.apache.kafka.common.TopicPartition> partitions = new ArrayList<>();
      for (String topic : List.of(Topics.PROGRESS.name(), Topics.TEACHER_SHARDS.name(), Topics.SOFT_LABELS.name(),
          Topics.CHECKPOINTS.name(), Topics.RESULTS.name(), Topics.FAILURES.name())) {
        consumer.partitionsFor(topic).forEach(p -> partitions.add(new org.apache.kafka.common.TopicPartition(topic, p.partition())));
      }
      consumer.assign(partitions);
      consumer.seekToBeginning(partitions);
    }

    private void poll() {
      for (ConsumerRecord<String, byte[]> record : consumer.poll(Duration.ofMillis(100))) {
        String job = record.key() == null ? "" : record.key().split("/")[0];
        byTopicAndJob.computeIfAbsent(record.topic() + " " + job, k -> new ArrayList<>()).add(record);
      }
    }

    private List<ConsumerRecord<String, byte[]>> records(String topic, String jobId) {
      return byTopicAndJob.getOrDefault(topic + " " + jobId, List.of());
    }

    int count(String topic, String jobId) {
      poll();
      return records(topic, jobId).size();
    }

    List<JobProgress> progress(String jobId) {
      poll();
      return records(Topics.PROGRESS.name(), jobId).stream()
          .map(r -> Topics.PROGRESS.valueSerde().deserializer().deserialize(r.topic(), r.value())).toList();
    }

    /** The stages whose checkpoints the job has. */
    List<Stage> checkpoints(String jobId) {
      poll();
      return records(Topics.CHECKPOINTS.name(), jobId).stream()
          .map(r -> Topics.CHECKPOINTS.valueSerde().deserializer().deserialize(r.topic(), r.value()).getProducedBy())
          .toList();
    }

    void await(BooleanSupplier condition, String what) throws InterruptedException {
      long deadline = System.nanoTime() + WAIT.toNanos();
      while (!condition.getAsBoolean()) {
        if (System.nanoTime() > deadline) {
          throw new AssertionError("timed out waiting for: " + what);
        }
        TimeUnit.MILLISECONDS.sleep(20); // polling a condition, not waiting for time to pass
      }
    }

    @Override
    public void close() {
      consumer.close();
    }
  }
}
