package dev.distillery.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.distillery.common.config.AllowedRoots;
import dev.distillery.common.kafka.KafkaTopics;
import dev.distillery.kafka.embedded.EmbeddedKafkaBroker;
import dev.distillery.kafka.embedded.EmbeddedKafkaExtension;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.JobCancellation;
import dev.distillery.schemas.JobFailure;
import dev.distillery.schemas.JobProgress;
import dev.distillery.schemas.JobResult;
import dev.distillery.schemas.ModelMetrics;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.ArtifactRef;
import dev.distillery.schemas.json.PlainJson;
import dev.distillery.schemas.kafka.Topic;
import dev.distillery.schemas.kafka.Topics;
import dev.distillery.schemas.kafka.WireFormat;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * {@code distillery cancel} and how the other commands show a cancelled job, through the CLI's own
 * entry point ({@link Cli#run}) against the real in-process broker. The jobs' events are published
 * as the services would publish them; no service runs here (WatchingJobsTest cancels a job the real
 * services are running).
 */
class CliCancelTest {
  @RegisterExtension
  static final EmbeddedKafkaExtension KAFKA = EmbeddedKafkaExtension.perClass(Map.of());
  private static String bootstrapServers;

  @BeforeAll
  static void topics(EmbeddedKafkaBroker broker) throws Exception {
    bootstrapServers = broker.bootstrapServers();
    KafkaTopics.ensure(bootstrapServers, 2);
  }

  @Test
  void cancelsARunningJobAndEveryCommandShowsItCancelled() throws Exception {
    String jobId = "running-" + UUID.randomUUID();
    publish(Topics.REQUESTS, jobId, request(jobId));
    publish(Topics.PROGRESS, jobId, progress(jobId, Stage.DISTILLATION, 1, 3));

    Output cancel = cli("cancel", jobId, "--reason", "wrong teacher", "--watch");
    assertThat(cancel.status()).as(cancel.text()).isZero();
    assertThat(cancel.text()).contains("cancellation of " + jobId + " sent",
        "job " + jobId + " CANCELLED by cli: wrong teacher");
    List<JobCancellation> published = cancellations(jobId);
    assertThat(published).hasSize(1);
    assertThat(published.get(0).getRequestedBy()).isEqualTo("cli");
    assertThat(published.get(0).getReason()).isEqualTo("wrong teacher");

    assertThat(cli("list").text()).containsPattern(jobId + " +CANCELLED ");
    Output result = cli("result", jobId);
    assertThat(result.status()).isEqualTo(Cli.CANCELLED);
    assertThat(result.text()).contains("CANCELLED by cli: wrong teacher; no result");
    Output watch = cli("watch", jobId);
    assertThat(watch.status()).isEqualTo(Cli.CANCELLED);
    assertThat(watch.text()).contains("DISTILLATION", "CANCELLED by cli");
    // A second cancel changes nothing and publishes nothing.
    Output again = cli("cancel", jobId);
    assertThat(again.status()).isZero();
    assertThat(again.text()).contains("already CANCELLED");
    assertThat(cancellations(jobId)).hasSize(1);
  }

  @Test
  void refusesToCancelAnUnknownOrEndedJobAndBadUsage() throws Exception {
    assertThat(cli("cancel", "no-such-job-" + UUID.randomUUID()).status()).isEqualTo(3);
    assertThat(cli("cancel").status()).isEqualTo(2);
    assertThat(cli("cancel", "a", "b").status()).isEqualTo(2);
    assertThat(cli("cancel", "a", "--reason").status()).isEqualTo(2);

    String done = "done-" + UUID.randomUUID();
    publish(Topics.REQUESTS, done, request(done));
    publish(Topics.RESULTS, done, result(done));
    Output ended = cli("cancel", done, "--watch");
    assertThat(ended.status()).isEqualTo(Cli.ALREADY_ENDED);
    assertThat(ended.text()).contains("already ended (DONE)");
    assertThat(cancellations(done)).isEmpty();
    // For scripts: one JSON document, the result as the topics carry it, and every job's status.
    Output json = cli("result", done, "--output", "json");
    assertThat(json.status()).isZero();
    assertThat(new JsonObject(json.text()).getString("jobId")).isEqualTo(done);
    JsonArray jobs = new JsonArray(cli("--output", "json", "list").text());
    assertThat(jobs.stream().map(job -> ((JsonObject) job).getString("jobId"))).contains(done);
  }

  /**
   * A watcher of any job holds a bounded summary of the jobs nobody awaits yet: of an ended one its
   * ending and each stage's latest progress, of a running one its latest {@link JobWatcher#KEPT_PER_JOB}
   * events.
   */
  @Test
  void aWatcherKeepsABoundedSummaryOfOtherJobs() throws Exception {
    String ended = "ended-" + UUID.randomUUID();
    String running = "busy-" + UUID.randomUUID();
    String awaited = "awaited-" + UUID.randomUUID();
    // All on one partition, the awaited job's end last: once it is read, so is everything before it.
    List<ProducerRecord<String, byte[]>> records = new ArrayList<>();
    for (int step = 1; step <= 400; step++) {
      records.add(record(Topics.PROGRESS, 0, ended, progress(ended, step <= 200 ? Stage.DISTILLATION : Stage.PRUNING,
          step, 400)));
      records.add(record(Topics.PROGRESS, 0, running, progress(running, Stage.DISTILLATION, step, 400)));
    }
    records.add(record(Topics.PROGRESS, 0, ended, progress(ended, Stage.DISTILLATION, 150, 400))); // a late repeat
    records.add(record(Topics.RESULTS, 0, ended, result(ended)));
    records.add(record(Topics.PROGRESS, 0, awaited, progress(awaited, Stage.DISTILLATION, 1, 1)));
    records.add(record(Topics.FAILURES, 0, awaited, new JobFailure(awaited, Stage.DISTILLATION, null, "diverged",
        System.currentTimeMillis(), false)));
    try (KafkaProducer<String, byte[]> producer = producer()) {
      for (ProducerRecord<String, byte[]> record : records) {
        producer.send(record);
      }
      producer.flush();
    }
    try (JobWatcher watcher = new JobWatcher(bootstrapServers)) {
      assertThat(watcher.await(awaited, Duration.ofSeconds(30), p -> {}).failure().getReason()).isEqualTo("diverged");
      // Ended while nobody awaited it: its ending and the last progress read of each stage.
      List<JobProgress> endedProgress = new ArrayList<>();
      assertThat(watcher.await(ended, Duration.ofSeconds(30), endedProgress::add).result()).isNotNull();
      assertThat(endedProgress).extracting(p -> p.getStage() + " " + p.getStep())
          .containsExactly("PRUNING 400", "DISTILLATION 150");
      // Still running: its latest events, at most KEPT_PER_JOB.
      List<JobProgress> runningProgress = new ArrayList<>();
      publish(Topics.RESULTS, running, result(running));
      assertThat(watcher.await(running, Duration.ofSeconds(30), runningProgress::add).result()).isNotNull();
      assertThat(runningProgress).hasSize(JobWatcher.KEPT_PER_JOB).extracting(JobProgress::getStep)
          .startsWith(400L - JobWatcher.KEPT_PER_JOB + 1).endsWith(400L);
    }
    try (JobWatcher one = JobWatcher.forJob(Map.of("bootstrap.servers", bootstrapServers), WireFormat.SINGLE_OBJECT, ended)) {
      // The watched job's own events all come through, in order.
      List<JobProgress> all = new ArrayList<>();
      assertThat(one.await(ended, Duration.ofSeconds(30), all::add).result()).isNotNull();
      assertThat(all).hasSize(401);
    }
  }

  private record Output(int status, String text) {}

  private static Output cli(String... words) {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    int status = new Cli(Map.of("bootstrap.servers", bootstrapServers), new AllowedRoots(List.of(), List.of(), List.of()),
        new PrintStream(bytes, true, StandardCharsets.UTF_8)).run(List.of(words));
    String text = bytes.toString(StandardCharsets.UTF_8);
    System.out.print(text);
    return new Output(status, text);
  }

  private static CompressionRequest request(String jobId) throws Exception {
    return PlainJson.read(PlainJson.MAPPER.readTree("""
        {"jobId": "%s",
         "teacher": {"architecture": "convnet", "checkpointUri": "file:///tmp/teacher.params"},
         "dataset": {"format": "IDX", "location": "/tmp/data"},
         "student": {"architecture": "lenet5"},
         "distillation": {}, "pruning": {}}""".formatted(jobId)), CompressionRequest.class);
  }

  private static JobProgress progress(String jobId, Stage stage, long step, long total) {
    return new JobProgress(jobId, stage, step, total, "epoch " + step, Map.of("loss", 1.0 / step),
        (double) step / total, null, System.currentTimeMillis());
  }

  private static JobResult result(String jobId) {
    ArtifactRef checkpoint = new ArtifactRef("file:///tmp/" + jobId + ".params", "ab".repeat(32), 100L);
    return JobResult.newBuilder().setJobId(jobId)
        .setPruned(ModelMetrics.newBuilder().setArchitecture("lenet5").setWidth(1.0).setTestAccuracy(0.85)
            .setParameters(100).setNonZeroParameters(50).setCheckpointBytes(400).build())
        .setFinalCheckpoint(checkpoint).setCompletedAtMs(System.currentTimeMillis()).build();
  }

  private static KafkaProducer<String, byte[]> producer() {
    return new KafkaProducer<>(Map.of("bootstrap.servers", bootstrapServers), new StringSerializer(),
        new ByteArraySerializer());
  }

  private static <V> ProducerRecord<String, byte[]> record(Topic<V> topic, Integer partition, String jobId, V value) {
    return new ProducerRecord<>(topic.name(), partition, jobId,
        topic.valueSerde().serializer().serialize(topic.name(), value));
  }

  private static <V> void publish(Topic<V> topic, String jobId, V value) throws Exception {
    try (KafkaProducer<String, byte[]> producer = producer()) {
      producer.send(record(topic, null, jobId, value)).get(10, TimeUnit.SECONDS);
    }
  }

  /** The cancellations of {@code jobId} on the topic now. */
  private static List<JobCancellation> cancellations(String jobId) {
    List<JobCancellation> found = new ArrayList<>();
    try (KafkaConsumer<String, byte[]> consumer = TopicReader.fromBeginning(Map.of("bootstrap.servers",
        bootstrapServers), "cli-test-", List.of(Topics.CANCELLATIONS.name()))) {
      List<TopicPartition> partitions = new ArrayList<>(consumer.assignment());
      Map<TopicPartition, Long> end = consumer.endOffsets(partitions);
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
      while (partitions.stream().anyMatch(p -> consumer.position(p) < end.get(p))) {
        assertThat(System.nanoTime()).as("read to the end within 30 s").isLessThan(deadline);
        for (ConsumerRecord<String, byte[]> record : consumer.poll(Duration.ofMillis(200))) {
          if (jobId.equals(record.key())) {
            found.add(Topics.CANCELLATIONS.valueSerde().deserializer().deserialize(record.topic(), record.value()));
          }
        }
      }
    }
    return found;
  }
}
