package dev.distillery.launcher;

import static org.assertj.core.api.Assertions.assertThat;

import dev.distillery.cli.Cli;
import dev.distillery.cli.JobWatcher;
import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.config.AllowedRoots;
import dev.distillery.common.config.ServiceConfig;
import dev.distillery.common.kafka.DeadLetters;
import dev.distillery.common.kafka.JobEvents;
import dev.distillery.common.kafka.KafkaClients;
import dev.distillery.kafka.embedded.EmbeddedKafkaBroker;
import dev.distillery.kafka.embedded.EmbeddedKafkaExtension;
import dev.distillery.launcher.PythonClientTest.Run;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.json.PlainJson;
import dev.distillery.schemas.kafka.Topic;
import dev.distillery.schemas.kafka.Topics;
import dev.distillery.schemas.kafka.WireFormat;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Registry mode through a real schema registry (Apicurio Registry, {@link ApicurioRegistry}): the
 * Python example and the services in Confluent's wire format, and a client still writing
 * single-object encoding answered too. About 40 s, run beside the fault-injection tests rather
 * than in the suite (README, "The two commands"), so that the suite stays under 15 minutes on 2
 * cores.
 */
@ExtendWith(EmbeddedKafkaExtension.class)
class RegistryModeTest {
  /**
   * Registry mode: the services write Confluent's wire format through a real registry; the Python
   * client does too and is answered; a client still writing single-object encoding is answered as
   * well (a migration), in a job through every stage; the schemas are registered under
   * {@code <topic>-value} with the compatibility rule set.
   */
  @Test
  void inRegistryModeThroughARealSchemaRegistry(EmbeddedKafkaBroker broker, @TempDir Path work) throws Exception {
    ArtifactStore store = new ArtifactStore(work.resolve("artifacts"));
    JsonObject request = PythonClientTest.quantizeTeacher(broker, store);
    try (ApicurioRegistry registry = ApicurioRegistry.start(work.resolve("registry.log"))) {
      Map<String, String> keys = PythonClientTest.keys(broker, store);
      keys.put("schema.registry.url", registry.url());
      try (LocalPipeline pipeline = LocalPipeline.start(keys)) {
        Run done = PythonClientTest.python(broker, work, "quantize.json", request, "--schema-registry", registry.url());
        assertThat(done.status()).as(done.output()).isZero();
        assertThat(done.output()).contains("submitted py-", "QUANTIZATION", "DONE: ", "\"kind\": \"ONNX_INT8\"");

        // A client not moved to the registry yet: its single-object request is answered too, by
        // every stage, in Confluent's format.
        JsonObject chain = request.copy().put("jobId", "single-object-" + UUID.randomUUID())
            .put("submittedAtMs", System.currentTimeMillis())
            .put("student", new JsonObject().put("architecture", "mlp"))
            .put("distillation", new JsonObject().put("epochs", 1))
            .put("pruning", new JsonObject().put("targetSparsity", 0.5).put("steps", 1).put("fineTuneEpochs", 0))
            .put("stages", new JsonArray().add("TEACHER_INFERENCE").add("DISTILLATION").add("PRUNING"));
        CompressionRequest chainRequest = PlainJson.read(PlainJson.MAPPER.readTree(chain.encode()),
            CompressionRequest.class);
        WireFormat wire = ServiceConfig.fromKeys("test", keys).wire();
        try (KafkaProducer<String, byte[]> producer = KafkaClients.producer(ServiceConfig.fromKeys("test", keys));
            JobEvents events = new JobEvents(producer);
            JobWatcher watcher = new JobWatcher(Map.of("bootstrap.servers", broker.bootstrapServers()), wire)) {
          events.send(Topics.REQUESTS, chainRequest.getJobId(), chainRequest).get(30, TimeUnit.SECONDS);
          JobWatcher.Outcome outcome = watcher.await(chainRequest.getJobId(), Duration.ofMinutes(4), progress -> {});
          assertThat(outcome.failure()).as("failure").isNull();
          assertThat(outcome.result().getPruned()).isNotNull();
        }
        String pythonJob = done.output().replaceFirst("(?s).*submitted (py-[0-9a-f]+).*", "$1");
        assertThat(firstBytes(broker, Topics.RESULTS.name(), Set.of(pythonJob, chainRequest.getJobId())))
            .as("both results in Confluent's wire format").containsExactly((byte) 0, (byte) 0);
        // The CLI and job-status read them: the CLI's result, the API's job list.
        ByteArrayOutputStream cliOutput = new ByteArrayOutputStream();
        int cliStatus = new Cli(Map.of("bootstrap.servers", broker.bootstrapServers()), wire,
            new AllowedRoots(List.of(), List.of(), List.of()), new PrintStream(cliOutput, true, StandardCharsets.UTF_8))
            .run(List.of("result", chainRequest.getJobId(), "--output", "json"));
        assertThat(cliStatus).as(cliOutput.toString(StandardCharsets.UTF_8)).isZero();
        assertThat(cliOutput.toString(StandardCharsets.UTF_8)).contains(chainRequest.getJobId());
        assertThat(doneInJobStatus(pipeline, Set.of(pythonJob, chainRequest.getJobId()))).as("both DONE in job-status")
            .isTrue();

        // A value naming a schema id the registry does not have: dead-lettered, saying so.
        try (KafkaProducer<String, byte[]> producer = KafkaClients.producer(ServiceConfig.fromKeys("test", keys))) {
          producer.send(new ProducerRecord<>(Topics.REQUESTS.name(), "unknown-id", new byte[] {0, 0, 0, 0x7f, 1, 2}))
              .get(30, TimeUnit.SECONDS);
        }
        assertThat(deadLetterReasons(broker)).anySatisfy(reason -> assertThat(reason)
            .contains("schema id 32513").contains("HTTP 404"));
      }
      // Every topic these jobs wrote (no failure, no cancellation), its schema under <topic>-value.
      for (Topic<?> topic : List.of(Topics.REQUESTS, Topics.TEACHER_SHARDS, Topics.SOFT_LABELS, Topics.CHECKPOINTS,
          Topics.PROGRESS, Topics.RESULTS)) {
        assertThat(registry.get("subjects/" + topic.name() + "-value/versions").statusCode())
            .as(topic.name() + "-value registered").isEqualTo(200);
      }
      assertThat(registry.get("config/" + Topics.RESULTS.name() + "-value").body()).contains("FULL_TRANSITIVE");
    }
  }

  /** Whether job-status's API shows all of {@code jobIds} DONE within 30 s (its view follows the topics). */
  private static boolean doneInJobStatus(LocalPipeline pipeline, Set<String> jobIds) throws Exception {
    HttpClient http = HttpClient.newHttpClient();
    HttpRequest list = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + pipeline.dashboardPort() + "/api/jobs"))
        .header("Authorization", "Bearer " + pipeline.dashboardToken()).build();
    long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
    while (System.nanoTime() < deadline) {
      Set<String> done = new HashSet<>();
      PlainJson.MAPPER.readTree(http.send(list, HttpResponse.BodyHandlers.ofString()).body()).forEach(job -> {
        if (job.get("state").asText().equals("DONE")) {
          done.add(job.get("jobId").asText());
        }
      });
      if (done.containsAll(jobIds)) {
        return true;
      }
      Thread.sleep(200);
    }
    return false;
  }


  /** The reasons on the dead-letter topic, once there is one. */
  private static List<String> deadLetterReasons(EmbeddedKafkaBroker broker) {
    try (KafkaConsumer<String, byte[]> consumer = new KafkaConsumer<>(Map.of("bootstrap.servers",
        broker.bootstrapServers(), "group.id", "dlq-" + UUID.randomUUID(), "auto.offset.reset", "earliest"),
        new StringDeserializer(), new ByteArrayDeserializer())) {
      consumer.subscribe(List.of(Topics.DEAD_LETTERS.name()));
      long deadline = System.nanoTime() + Duration.ofMinutes(1).toNanos();
      List<String> reasons = new ArrayList<>();
      while (reasons.isEmpty() && System.nanoTime() < deadline) {
        consumer.poll(Duration.ofMillis(500)).forEach(record -> reasons.add(
            new String(record.headers().lastHeader(DeadLetters.REASON).value(), StandardCharsets.UTF_8)));
      }
      return reasons;
    }
  }

  /** The first byte of every record on {@code topic} keyed by one of {@code jobIds}. */
  private static List<Byte> firstBytes(EmbeddedKafkaBroker broker, String topic, Set<String> jobIds) {
    List<Byte> first = new ArrayList<>();
    try (KafkaConsumer<String, byte[]> consumer = new KafkaConsumer<>(
        Map.of("bootstrap.servers", broker.bootstrapServers()), new StringDeserializer(), new ByteArrayDeserializer())) {
      List<TopicPartition> partitions = consumer.partitionsFor(topic).stream()
          .map(info -> new TopicPartition(topic, info.partition())).toList();
      consumer.assign(partitions);
      consumer.seekToBeginning(partitions);
      Map<TopicPartition, Long> end = consumer.endOffsets(partitions);
      while (partitions.stream().anyMatch(p -> consumer.position(p) < end.get(p))) {
        consumer.poll(Duration.ofMillis(500)).forEach(record -> {
          if (jobIds.contains(record.key())) {
            first.add(record.value()[0]);
          }
        });
      }
    }
    return first;
  }

}
