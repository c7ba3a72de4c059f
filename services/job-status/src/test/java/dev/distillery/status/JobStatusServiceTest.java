package dev.distillery.status;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.distillery.common.config.ServiceConfig;
import dev.distillery.common.kafka.KafkaClients;
import dev.distillery.common.kafka.KafkaTopics;
import dev.distillery.kafka.embedded.EmbeddedKafkaBroker;
import dev.distillery.kafka.embedded.EmbeddedKafkaExtension;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.TeacherSpec;
import dev.distillery.schemas.json.PlainJson;
import dev.distillery.schemas.kafka.Topic;
import io.vertx.core.Vertx;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * The job-status service on the real in-process broker: a job submitted through the HTTP API is
 * followed to DONE through the API and the server-sent event stream, as its events reach the topics.
 */
@ExtendWith(EmbeddedKafkaExtension.class)
class JobStatusServiceTest {
  private static final Path SUBSET = Path.of("../../datasets/fashion-mnist-subset").toAbsolutePath().normalize();
  private final HttpClient http = HttpClient.newHttpClient();

  @Test
  void followsAJobFromSubmitToDone(EmbeddedKafkaBroker broker, @TempDir Path dir) throws Exception {
    KafkaTopics.ensure(broker.bootstrapServers(), 2);
    Path teacher = Files.writeString(dir.resolve("teacher.params"), "weights");
    ServiceConfig config = ServiceConfig.fromKeys(JobStatusService.NAME, Map.of(
        "kafka.bootstrap.servers", broker.bootstrapServers(), "artifacts.dir", dir.toString()));
    CompressionRequest example = JobStatusTopologyTest.request("example");
    example = CompressionRequest.newBuilder(example)
        .setTeacher(TeacherSpec.newBuilder(example.getTeacher()).setCheckpointUri(teacher.toUri().toString()).build())
        .setDataset(dev.distillery.schemas.DatasetSpec.newBuilder(example.getDataset()).setLocation(SUBSET.toString()).build())
        .build();
    Vertx vertx = Vertx.vertx();
    try (JobStatusService service = JobStatusService.start(config, vertx, example);
        KafkaProducer<String, byte[]> producer = KafkaClients.producer(config)) {
      String base = "http://127.0.0.1:" + service.port();
      await(Duration.ofMinutes(1), () -> get(base + "/ready").statusCode() == 200);

      BlockingQueue<JsonNode> events = new LinkedBlockingQueue<>();
      http.sendAsync(HttpRequest.newBuilder(URI.create(base + "/api/events")).build(), HttpResponse.BodyHandlers.ofLines())
          .thenAccept(response -> response.body().filter(line -> line.startsWith("data: ")).forEach(line -> {
            try {
              events.add(PlainJson.MAPPER.readTree(line.substring("data: ".length())));
            } catch (Exception e) {
              throw new IllegalStateException(e);
            }
          }));

      // An invalid request: 400, each problem with its field.
      ObjectNode bad = (ObjectNode) PlainJson.MAPPER.readTree(get(base + "/api/example-request").body());
      ((ObjectNode) bad.get("student")).put("architecture", "resnet-9000");
      ((ObjectNode) bad.get("distillation")).put("epochs", -1);
      HttpResponse<String> rejected = post(base + "/api/jobs", bad.toString());
      assertThat(rejected.statusCode()).isEqualTo(400);
      assertThat(PlainJson.MAPPER.readTree(rejected.body()).get("errors").findValuesAsText("field"))
          .contains("student.architecture", "distillation.epochs");
      HttpResponse<String> typo = post(base + "/api/jobs", "{\"jobId\": \"x\", \"studnet\": {}}");
      assertThat(typo.statusCode()).isEqualTo(400);
      assertThat(typo.body()).contains("studnet", "unknown field");

      // A valid one, from the example the dashboard starts with.
      HttpResponse<String> accepted = post(base + "/api/jobs", get(base + "/api/example-request").body());
      assertThat(accepted.statusCode()).as(accepted.body()).isEqualTo(202);
      String jobId = PlainJson.MAPPER.readTree(accepted.body()).get("jobId").asText();
      await(Duration.ofSeconds(30), () -> state(base, jobId).equals("ACCEPTED"));
      assertThat(next(events, e -> e.get("jobId").asText().equals(jobId)).get("state").asText()).isEqualTo("ACCEPTED");

      // The pipeline's events, as its services would publish them (the request is already there).
      var pipeline = JobStatusTopologyTest.finishedJob(jobId, System.currentTimeMillis());
      for (var event : pipeline.subList(1, pipeline.size())) {
        Topic<Object> topic = event.topic();
        producer.send(new ProducerRecord<>(topic.name(), null, event.timestampMs(), jobId,
            topic.valueSerde().serializer().serialize(topic.name(), event.value()))).get(10, TimeUnit.SECONDS);
      }
      JsonNode done = next(events, e -> e.get("jobId").asText().equals(jobId) && e.get("state").asText().equals("DONE"));
      assertThat(done.get("stages")).extracting(stage -> stage.get("stage").asText())
          .containsExactly("TEACHER_INFERENCE", "DISTILLATION", "PRUNING");
      assertThat(done.get("result").get("sparsity").asDouble()).isEqualTo(0.5);

      JsonNode detail = PlainJson.MAPPER.readTree(get(base + "/api/jobs/" + jobId).body());
      assertThat(detail.get("state").asText()).isEqualTo("DONE");
      assertThat(detail.get("history")).hasSize(4);
      assertThat(get(base + "/api/jobs/no-such-job").statusCode()).isEqualTo(404);
      JsonNode list = PlainJson.MAPPER.readTree(get(base + "/api/jobs").body());
      assertThat(list.findValuesAsText("jobId")).contains(jobId);
      assertThat(get(base + "/").body()).contains("Distillery");
      assertThat(get(base + "/metrics").body())
          .contains("distillery_jobs{state=\"DONE\"} 1", "distillery_requests_rejected_total 2",
              "distillery_requests_submitted_total 1");
    } finally {
      vertx.close().await(30, TimeUnit.SECONDS);
    }
  }

  private String state(String base, String jobId) throws Exception {
    HttpResponse<String> response = get(base + "/api/jobs/" + jobId);
    return response.statusCode() == 200 ? PlainJson.MAPPER.readTree(response.body()).get("state").asText() : "";
  }

  private static JsonNode next(BlockingQueue<JsonNode> events, Predicate<JsonNode> wanted) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
    while (System.nanoTime() < deadline) {
      JsonNode event = events.poll(1, TimeUnit.SECONDS);
      if (event != null && wanted.test(event)) {
        return event;
      }
    }
    throw new AssertionError("no such event within 60 s");
  }

  @FunctionalInterface
  private interface Condition {
    boolean holds() throws Exception;
  }

  /** Polls until {@code condition} holds: the service answers asynchronously. */
  private static void await(Duration timeout, Condition condition) throws Exception {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (!condition.holds()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("condition not met within " + timeout);
      }
      Thread.sleep(100);
    }
  }

  private HttpResponse<String> get(String url) throws Exception {
    return http.send(HttpRequest.newBuilder(URI.create(url)).build(), HttpResponse.BodyHandlers.ofString());
  }

  private HttpResponse<String> post(String url, String body) throws Exception {
    return http.send(HttpRequest.newBuilder(URI.create(url)).header("content-type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
  }
}
