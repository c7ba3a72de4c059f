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
import dev.distillery.schemas.JobCancellation;
import dev.distillery.schemas.TeacherSpec;
import dev.distillery.schemas.json.PlainJson;
import dev.distillery.schemas.kafka.Topic;
import dev.distillery.schemas.kafka.Topics;
import io.vertx.core.Vertx;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.UUID;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Predicate;
import java.util.stream.Stream;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * The job-status service on the real in-process broker: a job submitted through the HTTP API is
 * followed to DONE through the API and the server-sent event stream, as its events reach the topics;
 * jobs cancelled through the API and on the topic, and ended jobs leaving after their retention;
 * and the API's trust boundary (tokens, Origin, JSON only, body size, used job ids), each refusal
 * asked of the real service by a real HTTP client.
 */
@ExtendWith(EmbeddedKafkaExtension.class)
class JobStatusServiceTest {
  private static final Path SUBSET = Path.of("../../datasets/fashion-mnist-subset").toAbsolutePath().normalize();
  private static final String TOKEN = "right-token-0123456789";
  private static final String DASHBOARD = "https://dashboard.example:8443";
  private final HttpClient http = HttpClient.newHttpClient();

  @Test
  void followsAJobFromSubmitToDone(EmbeddedKafkaBroker broker, @TempDir Path dir) throws Exception {
    ServiceConfig config = config(broker, dir, "job-status-follow", Map.of("api.tokens", "other-token, " + TOKEN));
    Vertx vertx = Vertx.vertx();
    try (JobStatusService service = JobStatusService.start(config, vertx, example(dir));
        KafkaProducer<String, byte[]> producer = KafkaClients.producer(config)) {
      String base = "http://127.0.0.1:" + service.port();
      await(Duration.ofMinutes(1), () -> get(base + "/ready").statusCode() == 200);

      BlockingQueue<JsonNode> events = new LinkedBlockingQueue<>();
      http.sendAsync(authorized(base + "/api/events").build(), HttpResponse.BodyHandlers.ofLines())
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

      // A valid one, from the example the dashboard starts with: without a job id, so one is made.
      HttpResponse<String> accepted = post(base + "/api/jobs", get(base + "/api/example-request").body());
      assertThat(accepted.statusCode()).as(accepted.body()).isEqualTo(202);
      String jobId = PlainJson.MAPPER.readTree(accepted.body()).get("jobId").asText();
      assertThat(jobId).matches("job-[0-9a-f]{12}");
      await(Duration.ofSeconds(30), () -> state(base, jobId).equals("ACCEPTED"));
      assertThat(next(events, e -> e.get("jobId").asText().equals(jobId)).get("state").asText()).isEqualTo("ACCEPTED");

      // The pipeline's events, as its services would publish them (the request is already there).
      var pipeline = JobStatusTopologyTest.finishedJob(jobId, System.currentTimeMillis());
      for (var event : pipeline.subList(1, pipeline.size())) {
        send(producer, event.topic(), null, jobId, event);
      }
      JsonNode done = next(events, e -> e.get("jobId").asText().equals(jobId) && e.get("state").asText().equals("DONE"));
      assertThat(done.get("stages")).extracting(stage -> stage.get("stage").asText())
          .containsExactly("TEACHER_INFERENCE", "DISTILLATION", "PRUNING");
      assertThat(done.get("result").get("sparsity").asDouble()).isEqualTo(0.5);

      String detailText = get(base + "/api/jobs/" + jobId).body();
      JsonNode detail = PlainJson.MAPPER.readTree(detailText);
      assertThat(detail.get("state").asText()).isEqualTo("DONE");
      assertThat(detail.get("history")).hasSize(4);

      // The same job id again: 409 naming jobId, nothing published, the first job as it was.
      ObjectNode again = (ObjectNode) PlainJson.MAPPER.readTree(get(base + "/api/example-request").body());
      again.put("jobId", jobId);
      HttpResponse<String> reused = post(base + "/api/jobs", again.toString());
      assertThat(reused.statusCode()).as(reused.body()).isEqualTo(409);
      assertThat(PlainJson.MAPPER.readTree(reused.body()).get("errors").findValuesAsText("field")).containsExactly("jobId");
      assertThat(requestsPublished(config, jobId)).isEqualTo(1);
      assertThat(get(base + "/api/jobs/" + jobId).body()).isEqualTo(detailText);

      assertThat(get(base + "/api/jobs/no-such-job").statusCode()).isEqualTo(404);
      JsonNode list = PlainJson.MAPPER.readTree(get(base + "/api/jobs").body());
      assertThat(list.findValuesAsText("jobId")).contains(jobId);
      assertThat(get(base + "/").body()).contains("Distillery");
      assertThat(get(base + "/metrics").body())
          .contains("distillery_jobs{state=\"DONE\"} 1.0\n", "distillery_requests_rejected_total 3.0\n",
              "distillery_requests_submitted_total 1.0\n", "distillery_job_seconds_count 1\n")
          // Kafka Streams' and the producer's own meters beside the gateway's.
          .containsPattern("kafka_stream_thread_[a-z_]+\\{[^}]*} [0-9.E]+\n")
          .containsPattern("kafka_producer_record_send_total\\{[^}]*} [0-9.E]+\n")
          .containsPattern("jvm_memory_used_bytes\\{");

      // A request on another partition than Java's partitioner picks for its key (librdkafka's
      // default partitioner does that), its job's events where the services put them: one job, DONE.
      String foreign = "foreign-" + UUID.randomUUID();
      int javaPartition = org.apache.kafka.common.utils.Utils.toPositive(
          org.apache.kafka.common.utils.Utils.murmur2(foreign.getBytes(StandardCharsets.UTF_8))) % 2;
      var foreignJob = JobStatusTopologyTest.finishedJob(foreign, System.currentTimeMillis());
      for (var event : foreignJob) {
        send(producer, event.topic(), event.topic().name().equals(Topics.REQUESTS.name()) ? 1 - javaPartition : null,
            foreign, event);
      }
      await(Duration.ofSeconds(30), () -> state(base, foreign).equals("DONE"));
      JsonNode all = PlainJson.MAPPER.readTree(get(base + "/api/jobs").body());
      List<String> listed = new java.util.ArrayList<>();
      all.forEach(status -> listed.add(status.get("jobId").asText()));
      assertThat(listed).as("one status per job").filteredOn(foreign::equals).hasSize(1);
      assertThat(PlainJson.MAPPER.readTree(get(base + "/api/jobs/" + foreign).body()).get("request").get("jobId").asText())
          .isEqualTo(foreign);
    } finally {
      vertx.close().await(30, TimeUnit.SECONDS);
    }
  }

  @Test
  void cancelsAJobThatHasNotEndedAndRefusesUnknownAndEndedOnes(EmbeddedKafkaBroker broker, @TempDir Path dir)
      throws Exception {
    ServiceConfig config = config(broker, dir, "job-status-cancel", Map.of("api.tokens", TOKEN));
    Vertx vertx = Vertx.vertx();
    try (JobStatusService service = JobStatusService.start(config, vertx, example(dir));
        KafkaProducer<String, byte[]> producer = KafkaClients.producer(config)) {
      String base = "http://127.0.0.1:" + service.port();
      await(Duration.ofMinutes(1), () -> get(base + "/ready").statusCode() == 200);
      String jobId = "to-cancel-" + UUID.randomUUID();
      ObjectNode request = (ObjectNode) PlainJson.MAPPER.readTree(get(base + "/api/example-request").body());
      assertThat(post(base + "/api/jobs", request.put("jobId", jobId).toString()).statusCode()).isEqualTo(202);
      await(Duration.ofSeconds(30), () -> state(base, jobId).equals("ACCEPTED"));

      // The same rules as every /api route: a token, and no foreign page.
      HttpResponse<String> anonymous = send(open(base + "/api/jobs/" + jobId).DELETE());
      assertThat(anonymous.statusCode()).isEqualTo(401);
      assertThat(anonymous.headers().firstValue("WWW-Authenticate")).get().asString().startsWith("Bearer");
      assertThat(send(authorized(base + "/api/jobs/" + jobId).header("Origin", "https://evil.example").DELETE())
          .statusCode()).isEqualTo(403);
      // A body, if any, is JSON with a text reason and nothing else.
      assertThat(delete(base, jobId, "text/plain", "stop").statusCode()).isEqualTo(415);
      assertThat(delete(base, jobId, "application/json", "{\"reason\": 5}").statusCode()).isEqualTo(400);
      assertThat(delete(base, jobId, "application/json", "{\"reason\": \"x\", \"force\": true}").body())
          .contains("force");
      assertThat(delete(base, jobId, "application/json", "{\"reason\": \"" + "x".repeat(Gateway.REASON_LIMIT + 1)
          + "\"}").statusCode()).isEqualTo(400);
      assertThat(published(config, Topics.CANCELLATIONS, jobId)).isEmpty();

      HttpResponse<String> unknown = send(authorized(base + "/api/jobs/no-such-job").DELETE());
      assertThat(unknown.statusCode()).isEqualTo(404);
      assertThat(unknown.body()).contains("no-such-job");

      HttpResponse<String> accepted = delete(base, jobId, "application/json", "{\"reason\": \"wrong dataset\"}");
      assertThat(accepted.statusCode()).as(accepted.body()).isEqualTo(202);
      assertThat(accepted.headers().firstValue("content-type")).contains("application/json");
      JsonNode answer = PlainJson.MAPPER.readTree(accepted.body());
      assertThat(answer.get("jobId").asText()).isEqualTo(jobId);
      assertThat(answer.get("requestedBy").asText()).isEqualTo("api");
      List<byte[]> records = published(config, Topics.CANCELLATIONS, jobId);
      assertThat(records).hasSize(1);
      JobCancellation cancellation = Topics.CANCELLATIONS.valueSerde().deserializer()
          .deserialize(Topics.CANCELLATIONS.name(), records.get(0));
      assertThat(cancellation.getJobId()).isEqualTo(jobId);
      assertThat(cancellation.getReason()).isEqualTo("wrong dataset");
      assertThat(cancellation.getRequestedBy()).isEqualTo("api");

      await(Duration.ofSeconds(30), () -> state(base, jobId).equals("CANCELLED"));
      JsonNode cancelled = PlainJson.MAPPER.readTree(get(base + "/api/jobs/" + jobId).body());
      assertThat(cancelled.get("cancellation").get("reason").asText()).isEqualTo("wrong dataset");
      // Ended, so nothing more to cancel: 409 with the state, and nothing published.
      HttpResponse<String> again = send(authorized(base + "/api/jobs/" + jobId).DELETE());
      assertThat(again.statusCode()).isEqualTo(409);
      assertThat(PlainJson.MAPPER.readTree(again.body()).get("state").asText()).isEqualTo("CANCELLED");
      assertThat(published(config, Topics.CANCELLATIONS, jobId)).hasSize(1);

      // A job that finished, as its services would publish it: 409 DONE.
      String done = "done-" + UUID.randomUUID();
      for (var event : JobStatusTopologyTest.finishedJob(done, System.currentTimeMillis())) {
        send(producer, event.topic(), null, done, event);
      }
      await(Duration.ofSeconds(30), () -> state(base, done).equals("DONE"));
      HttpResponse<String> finished = send(authorized(base + "/api/jobs/" + done).DELETE());
      assertThat(finished.statusCode()).isEqualTo(409);
      assertThat(PlainJson.MAPPER.readTree(finished.body()).get("state").asText()).isEqualTo("DONE");

      // A cancellation from another client, on another partition than Java's partitioner picks for
      // its key (where the job's own events are): one status, CANCELLED.
      String foreign = "foreign-cancel-" + UUID.randomUUID();
      int javaPartition = org.apache.kafka.common.utils.Utils.toPositive(
          org.apache.kafka.common.utils.Utils.murmur2(foreign.getBytes(StandardCharsets.UTF_8))) % 2;
      var foreignJob = JobStatusTopologyTest.finishedJob(foreign, System.currentTimeMillis());
      for (var event : foreignJob.subList(0, 4)) {
        send(producer, event.topic(), null, foreign, event);
      }
      await(Duration.ofSeconds(30), () -> state(base, foreign).equals("RUNNING"));
      JobCancellation elsewhere = new JobCancellation(foreign, "from a pipeline", "nightly-pipeline",
          System.currentTimeMillis());
      producer.send(new ProducerRecord<>(Topics.CANCELLATIONS.name(), 1 - javaPartition, foreign,
          Topics.CANCELLATIONS.valueSerde().serializer().serialize(Topics.CANCELLATIONS.name(), elsewhere)))
          .get(10, TimeUnit.SECONDS);
      await(Duration.ofSeconds(30), () -> state(base, foreign).equals("CANCELLED"));
      List<String> listed = new java.util.ArrayList<>();
      PlainJson.MAPPER.readTree(get(base + "/api/jobs").body()).forEach(s -> listed.add(s.get("jobId").asText()));
      assertThat(listed).as("one status per job").filteredOn(foreign::equals).hasSize(1);
      assertThat(PlainJson.MAPPER.readTree(get(base + "/api/jobs/" + foreign).body()).get("cancellation")
          .get("requestedBy").asText()).isEqualTo("nightly-pipeline");

      assertThat(get(base + "/metrics").body()).contains("distillery_cancellations_requested_total 1.0\n",
          "distillery_jobs{state=\"CANCELLED\"} 2.0\n");
    } finally {
      vertx.close().await(30, TimeUnit.SECONDS);
    }
  }

  /** With a short retention an ended job leaves the API and the event stream says so; a running one stays. */
  @Test
  void anEndedJobLeavesAfterItsRetention(EmbeddedKafkaBroker broker, @TempDir Path dir) throws Exception {
    ServiceConfig config = config(broker, dir, "job-status-retention",
        Map.of("api.tokens", TOKEN, "status.retention.ms", "2000"));
    Vertx vertx = Vertx.vertx();
    try (JobStatusService service = JobStatusService.start(config, vertx, example(dir));
        KafkaProducer<String, byte[]> producer = KafkaClients.producer(config)) {
      String base = "http://127.0.0.1:" + service.port();
      await(Duration.ofMinutes(1), () -> get(base + "/ready").statusCode() == 200);
      BlockingQueue<String> events = new LinkedBlockingQueue<>();
      http.sendAsync(authorized(base + "/api/events").build(), HttpResponse.BodyHandlers.ofLines())
          .thenAccept(response -> response.body().forEach(events::add));

      String ended = "ended-" + UUID.randomUUID();
      String running = "running-" + UUID.randomUUID();
      long start = System.currentTimeMillis() - 10_000; // its events are all in the past
      for (var event : JobStatusTopologyTest.finishedJob(ended, start)) {
        send(producer, event.topic(), null, ended, event);
      }
      for (var event : JobStatusTopologyTest.finishedJob(running, start).subList(0, 4)) {
        send(producer, event.topic(), null, running, event);
      }
      await(Duration.ofSeconds(30), () -> state(base, running).equals("RUNNING"));
      // Gone within the retention and a sweep; seen DONE first only if the sweep came late.
      await(Duration.ofSeconds(30), () -> get(base + "/api/jobs/" + ended).statusCode() == 404);
      awaitEvent(events, "event: removed", "data: {\"jobId\":\"" + ended + "\"}");
      assertThat(state(base, running)).isEqualTo("RUNNING");
    } finally {
      vertx.close().await(30, TimeUnit.SECONDS);
    }
  }

  @Test
  void refusesCallersWithoutTheTokenOrFromAForeignOriginAndBodiesThatAreNotSmallJson(EmbeddedKafkaBroker broker,
      @TempDir Path dir) throws Exception {
    ServiceConfig config = config(broker, dir, "job-status-boundary",
        Map.of("api.tokens", TOKEN, "api.allowed.origins", DASHBOARD + ", http://Other.Example:80/"));
    Vertx vertx = Vertx.vertx();
    try (JobStatusService service = JobStatusService.start(config, vertx, example(dir))) {
      String base = "http://127.0.0.1:" + service.port();
      // Probes are open, to a foreign page too: they say nothing but UP or DOWN.
      await(Duration.ofMinutes(1), () -> send(open(base + "/ready")).statusCode() == 200);
      assertThat(send(open(base + "/health").header("Origin", "https://evil.example")).statusCode()).isEqualTo(200);
      assertThat(send(open(base + "/metrics")).statusCode()).isEqualTo(200);
      String example = get(base + "/api/example-request").body();

      // No token, a wrong one, another scheme: 401 with a Bearer challenge and a JSON body.
      for (String path : List.of("/api/jobs", "/api/jobs/x", "/api/events", "/api/example-request")) {
        HttpResponse<String> none = send(open(base + path));
        assertThat(none.statusCode()).as(path).isEqualTo(401);
        assertThat(none.headers().firstValue("WWW-Authenticate")).get().asString().startsWith("Bearer");
        assertThat(PlainJson.MAPPER.readTree(none.body()).get("error").asText()).contains("Authorization: Bearer");
        HttpResponse<String> wrong = send(open(base + path).header("Authorization", "Bearer " + TOKEN + "x"));
        assertThat(wrong.statusCode()).as(path).isEqualTo(401);
        assertThat(wrong.headers().firstValue("WWW-Authenticate")).get().asString().contains("invalid_token");
      }
      assertThat(send(open(base + "/api/jobs").header("Authorization", "Basic " + TOKEN)).statusCode()).isEqualTo(401);
      assertThat(send(open(base + "/api/jobs").header("Authorization", "Bearer " + TOKEN.substring(1))).statusCode())
          .isEqualTo(401);
      assertThat(send(open(base + "/api/jobs").header("Authorization", "Bearer")).statusCode()).isEqualTo(401);
      assertThat(send(open(base + "/api/jobs").POST(HttpRequest.BodyPublishers.ofString(example))
          .header("content-type", "application/json")).statusCode()).isEqualTo(401);
      assertThat(get(base + "/api/jobs").statusCode()).isEqualTo(200);
      // The dashboard's files hold no data.
      assertThat(send(open(base + "/")).body()).contains("Distillery");

      // JSON only: text/plain (what a page may send anywhere without asking) and forms are refused.
      for (String type : List.of("text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin1",
          "application/jsonx")) {
        HttpResponse<String> wrongType = send(authorized(base + "/api/jobs").header("content-type", type)
            .POST(HttpRequest.BodyPublishers.ofString(example)));
        assertThat(wrongType.statusCode()).as(type).isEqualTo(415);
        assertThat(wrongType.body()).contains("application/json");
      }
      assertThat(send(authorized(base + "/api/jobs").POST(HttpRequest.BodyPublishers.ofString(example))).statusCode())
          .isEqualTo(415);
      HttpResponse<String> utf8 = send(authorized(base + "/api/jobs").header("content-type", "application/json; charset=UTF-8")
          .POST(HttpRequest.BodyPublishers.ofString(example)));
      assertThat(utf8.statusCode()).as(utf8.body()).isEqualTo(202);
      String jobId = PlainJson.MAPPER.readTree(utf8.body()).get("jobId").asText();

      // Over the limit: 413 whether the Content-Length says so or the bytes do as they arrive.
      String big = "{\"jobId\": \"big\", \"pad\": \"" + "x".repeat(Gateway.BODY_LIMIT) + "\"}";
      HttpResponse<String> tooLarge = post(base + "/api/jobs", big);
      assertThat(tooLarge.statusCode()).isEqualTo(413);
      assertThat(PlainJson.MAPPER.readTree(tooLarge.body()).get("error").asText()).contains("larger than");
      HttpResponse<String> streamed = send(authorized(base + "/api/jobs").header("content-type", "application/json")
          .POST(HttpRequest.BodyPublishers.fromPublisher(HttpRequest.BodyPublishers.ofString(big))));
      assertThat(streamed.statusCode()).isEqualTo(413);
      // 8 GiB announced: answered without reading them all (the client stops when the connection closes).
      long announced = 8L << 30;
      AtomicLong pulled = new AtomicLong();
      byte[] chunk = "x".repeat(1 << 16).getBytes(StandardCharsets.US_ASCII);
      Iterable<byte[]> endless = () -> Stream.generate(() -> {
        pulled.addAndGet(chunk.length);
        return chunk;
      }).limit(announced / chunk.length).iterator();
      HttpResponse<String> huge = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build().send(
          authorized(base + "/api/jobs").header("content-type", "application/json").POST(
              HttpRequest.BodyPublishers.fromPublisher(HttpRequest.BodyPublishers.ofByteArrays(endless), announced))
              .build(), HttpResponse.BodyHandlers.ofString());
      assertThat(huge.statusCode()).isEqualTo(413);
      assertThat(pulled.get()).isLessThan(announced / 2);

      // Another origin: 403 on every route but the probes, whatever the token; the own and the
      // allowed origin pass, and only the allowed one gets CORS headers.
      String evil = "https://evil.example";
      HttpResponse<String> foreignPost = send(authorized(base + "/api/jobs").header("Origin", evil)
          .header("content-type", "application/json").POST(HttpRequest.BodyPublishers.ofString(example)));
      assertThat(foreignPost.statusCode()).isEqualTo(403);
      assertThat(foreignPost.body()).contains(evil);
      for (String path : List.of("/api/jobs", "/api/jobs/" + jobId, "/api/events", "/metrics", "/")) {
        HttpResponse<String> foreign = send(authorized(base + path).header("Origin", evil));
        assertThat(foreign.statusCode()).as(path).isEqualTo(403);
        assertThat(foreign.headers().firstValue("Access-Control-Allow-Origin")).as(path).isEmpty();
      }
      assertThat(send(authorized(base + "/api/jobs").header("Origin", "null")).statusCode()).isEqualTo(403);
      assertThat(send(authorized(base + "/api/jobs").header("Origin", "http://127.0.0.1:1")).statusCode()).isEqualTo(403);
      HttpResponse<String> own = send(authorized(base + "/api/jobs").header("Origin", base));
      assertThat(own.statusCode()).isEqualTo(200);
      assertThat(own.headers().firstValue("Access-Control-Allow-Origin")).isEmpty();
      HttpResponse<String> allowed = send(authorized(base + "/api/jobs").header("Origin", DASHBOARD));
      assertThat(allowed.statusCode()).isEqualTo(200);
      assertThat(allowed.headers().firstValue("Access-Control-Allow-Origin")).contains(DASHBOARD);
      // Configured with its default port and a slash, sent as browsers write it.
      HttpResponse<String> other = send(authorized(base + "/api/jobs").header("Origin", "http://other.example"));
      assertThat(other.statusCode()).isEqualTo(200);
      assertThat(other.headers().firstValue("Access-Control-Allow-Origin")).contains("http://other.example");
      assertThat(send(authorized(base + "/api/jobs").header("Origin", "https://other.example")).statusCode())
          .isEqualTo(403);
      assertThat(send(open(base + "/api/jobs").header("Origin", DASHBOARD)).statusCode()).isEqualTo(401);
      HttpResponse<String> preflight = send(open(base + "/api/jobs").method("OPTIONS", HttpRequest.BodyPublishers.noBody())
          .header("Origin", DASHBOARD).header("Access-Control-Request-Method", "POST")
          .header("Access-Control-Request-Headers", "authorization, content-type"));
      assertThat(preflight.statusCode()).isEqualTo(204);
      assertThat(preflight.headers().firstValue("Access-Control-Allow-Origin")).contains(DASHBOARD);
      assertThat(preflight.headers().firstValue("Access-Control-Allow-Headers")).get().asString()
          .containsIgnoringCase("authorization").containsIgnoringCase("content-type");
      assertThat(send(open(base + "/api/jobs").method("OPTIONS", HttpRequest.BodyPublishers.noBody())
          .header("Origin", evil).header("Access-Control-Request-Method", "POST")).statusCode()).isEqualTo(403);

      // The first job id again, once the store has it and straight after its own submit: 409.
      await(Duration.ofSeconds(30), () -> state(base, jobId).equals("ACCEPTED"));
      String before = get(base + "/api/jobs/" + jobId).body();
      HttpResponse<String> reused = post(base + "/api/jobs", ((ObjectNode) PlainJson.MAPPER.readTree(example))
          .put("jobId", jobId).toString());
      assertThat(reused.statusCode()).isEqualTo(409);
      assertThat(reused.body()).contains("jobId", jobId);
      // Submitted at once, before the store can hold it: still only one is published.
      String twiceId = "at-once-" + System.nanoTime();
      HttpRequest twice = authorized(base + "/api/jobs").header("content-type", "application/json").POST(
          HttpRequest.BodyPublishers.ofString(((ObjectNode) PlainJson.MAPPER.readTree(example)).put("jobId", twiceId)
              .toString())).build();
      List<Integer> answers = Stream.generate(() -> http.sendAsync(twice, HttpResponse.BodyHandlers.ofString()))
          .limit(6).toList().stream().map(answer -> answer.join().statusCode()).toList();
      assertThat(answers).containsOnly(202, 409).containsOnlyOnce(202);
      assertThat(requestsPublished(config, twiceId)).isEqualTo(1);
      assertThat(requestsPublished(config, jobId)).isEqualTo(1);
      assertThat(get(base + "/api/jobs/" + jobId).body()).isEqualTo(before);
      // Only the two valid jobs were published: not the refused bodies, not the foreign page's.
      assertThat(get(base + "/metrics").body()).contains("distillery_requests_submitted_total 2");
    } finally {
      vertx.close().await(30, TimeUnit.SECONDS);
    }
  }

  @Test
  void theEventStreamNeedsTheTokenDeliversJobsAndIsCountedUntilItsClientLeaves(EmbeddedKafkaBroker broker,
      @TempDir Path dir) throws Exception {
    ServiceConfig config = config(broker, dir, "job-status-stream", Map.of("api.tokens", TOKEN));
    Vertx vertx = Vertx.vertx();
    try (JobStatusService service = JobStatusService.start(config, vertx, example(dir))) {
      String base = "http://127.0.0.1:" + service.port();
      await(Duration.ofMinutes(1), () -> get(base + "/ready").statusCode() == 200);
      String jobId = "streamed-" + System.nanoTime();
      ObjectNode request = (ObjectNode) PlainJson.MAPPER.readTree(get(base + "/api/example-request").body());
      assertThat(post(base + "/api/jobs", request.put("jobId", jobId).toString()).statusCode()).isEqualTo(202);
      await(Duration.ofSeconds(30), () -> state(base, jobId).equals("ACCEPTED"));

      for (HttpClient.Version version : HttpClient.Version.values()) {
        HttpClient client = HttpClient.newBuilder().version(version).build();
        HttpResponse<InputStream> stream = client.send(authorized(base + "/api/events").build(),
            HttpResponse.BodyHandlers.ofInputStream());
        assertThat(stream.statusCode()).isEqualTo(200);
        assertThat(stream.headers().firstValue("content-type")).contains("text/event-stream");
        try (InputStream body = stream.body()) {
          String seen = readUntil(body, "\"jobId\":\"" + jobId + "\"");
          assertThat(seen).contains("event: job\ndata: {");
          assertThat(openStreams(base)).as(version.toString()).isEqualTo(1);
        }
        // The client went away: its consumer and timer are gone, the count is back to 0.
        await(Duration.ofSeconds(10), () -> openStreams(base) == 0);
      }
    } finally {
      vertx.close().await(30, TimeUnit.SECONDS);
    }
  }

  @Test
  void makesATokenWhenNoneIsConfiguredAndMetricsAskForItWhenConfiguredTo(EmbeddedKafkaBroker broker,
      @TempDir Path dir) throws Exception {
    ServiceConfig config = config(broker, dir, "job-status-generated", Map.of("metrics.require.token", "true"));
    Vertx vertx = Vertx.vertx();
    try (JobStatusService service = JobStatusService.start(config, vertx, null)) {
      String base = "http://127.0.0.1:" + service.port();
      assertThat(service.token()).matches("[A-Za-z0-9_-]{43}");
      await(Duration.ofMinutes(1), () -> send(open(base + "/ready")).statusCode() == 200);
      assertThat(send(open(base + "/health")).statusCode()).isEqualTo(200);
      assertThat(send(open(base + "/api/jobs")).statusCode()).isEqualTo(401);
      assertThat(send(open(base + "/api/jobs").header("Authorization", "Bearer " + TOKEN)).statusCode()).isEqualTo(401);
      assertThat(send(open(base + "/api/jobs").header("Authorization", "Bearer " + service.token())).statusCode())
          .isEqualTo(200);
      HttpResponse<String> metrics = send(open(base + "/metrics"));
      assertThat(metrics.statusCode()).isEqualTo(401);
      assertThat(metrics.body()).doesNotContain("distillery_");
      HttpResponse<String> withToken = send(open(base + "/metrics").header("Authorization", "Bearer " + service.token()));
      assertThat(withToken.statusCode()).isEqualTo(200);
      assertThat(withToken.body()).contains("distillery_event_streams_open 0");
      assertThat(send(open(base + "/api/example-request").header("Authorization", "Bearer " + service.token()))
          .statusCode()).isEqualTo(404);
    } finally {
      vertx.close().await(30, TimeUnit.SECONDS);
    }
  }

  /** The broker, the artifact store, roots holding the example's teacher and dataset, and {@code api}. */
  private static ServiceConfig config(EmbeddedKafkaBroker broker, Path dir, String service, Map<String, String> api)
      throws Exception {
    KafkaTopics.ensure(broker.bootstrapServers(), 2);
    Map<String, String> keys = new HashMap<>(api);
    keys.put("kafka.bootstrap.servers", broker.bootstrapServers());
    keys.put("artifacts.dir", dir.resolve("artifacts").toString());
    keys.put("model.roots", dir.resolve("models").toString());
    keys.put("dataset.roots", SUBSET.getParent().toString());
    // Its own application id: its own consumer group, reading the shared topics from the start.
    return ServiceConfig.fromKeys(service, keys);
  }

  private static CompressionRequest example(Path dir) throws Exception {
    Path teacher = Files.writeString(Files.createDirectories(dir.resolve("models")).resolve("teacher.params"), "weights");
    CompressionRequest example = JobStatusTopologyTest.request("example");
    return CompressionRequest.newBuilder(example)
        .setTeacher(TeacherSpec.newBuilder(example.getTeacher()).setCheckpointUri(teacher.toUri().toString()).build())
        .setDataset(dev.distillery.schemas.DatasetSpec.newBuilder(example.getDataset()).setLocation(SUBSET.toString()).build())
        .build();
  }

  /** How many records of the requests topic carry {@code jobId} as key. */
  private static long requestsPublished(ServiceConfig config, String jobId) {
    return published(config, Topics.REQUESTS, jobId).size();
  }

  /** The values of the records of {@code topic} keyed {@code jobId}, read to the topic's current end. */
  private static List<byte[]> published(ServiceConfig config, Topic<?> topic, String jobId) {
    Map<String, String> keys = new HashMap<>();
    config.kafka().forEach((k, v) -> keys.put("kafka." + k, v));
    keys.put("artifacts.dir", config.artifactsDir().toString());
    try (KafkaConsumer<String, byte[]> consumer =
        KafkaClients.consumer(ServiceConfig.fromKeys("topic-reader-" + System.nanoTime(), keys))) {
      List<TopicPartition> partitions = consumer.partitionsFor(topic.name()).stream()
          .map(p -> new TopicPartition(p.topic(), p.partition())).toList();
      consumer.assign(partitions);
      consumer.seekToBeginning(partitions);
      Map<TopicPartition, Long> ends = consumer.endOffsets(partitions);
      List<byte[]> values = new java.util.ArrayList<>();
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
      while (partitions.stream().anyMatch(p -> consumer.position(p) < ends.get(p))) {
        if (System.nanoTime() > deadline) {
          throw new AssertionError(topic.name() + " not read to its end within 30 s");
        }
        for (ConsumerRecord<String, byte[]> record : consumer.poll(Duration.ofMillis(200))) {
          if (jobId.equals(record.key())) {
            values.add(record.value());
          }
        }
      }
      return values;
    }
  }

  /** Publishes {@code event} as {@code key}'s, as a service (or with a {@code partition}, another client) would. */
  private static void send(KafkaProducer<String, byte[]> producer, Topic<Object> topic, Integer partition, String key,
      JobStatusTopologyTest.Event event) throws Exception {
    producer.send(new ProducerRecord<>(topic.name(), partition, event.timestampMs(), key,
        topic.valueSerde().serializer().serialize(topic.name(), event.value()))).get(10, TimeUnit.SECONDS);
  }

  /** Waits for an event of {@code type} ({@code "event: ..."}) whose data line is {@code data}. */
  private static void awaitEvent(BlockingQueue<String> lines, String type, String data) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    String previous = "";
    while (System.nanoTime() < deadline) {
      String line = lines.poll(1, TimeUnit.SECONDS);
      if (line != null) {
        if (previous.equals(type) && line.equals(data)) {
          return;
        }
        previous = line;
      }
    }
    throw new AssertionError("no '" + type + "' with '" + data + "' within 30 s");
  }

  private long openStreams(String base) throws Exception {
    return get(base + "/metrics").body().lines().filter(l -> l.startsWith("distillery_event_streams_open "))
        .mapToLong(l -> (long) Double.parseDouble(l.substring(l.indexOf(' ') + 1))).findFirst().orElseThrow();
  }

  /** Reads the stream until {@code wanted} appears; what was read. */
  private static String readUntil(InputStream in, String wanted) throws Exception {
    StringBuilder seen = new StringBuilder();
    byte[] buffer = new byte[8192];
    while (!seen.toString().contains(wanted)) {
      int n = in.read(buffer);
      if (n < 0) {
        throw new AssertionError("the stream ended before '" + wanted + "': " + seen);
      }
      seen.append(new String(buffer, 0, n, StandardCharsets.UTF_8));
    }
    return seen.toString();
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

  private static HttpRequest.Builder open(String url) {
    return HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(30));
  }

  private static HttpRequest.Builder authorized(String url) {
    return open(url).header("Authorization", "Bearer " + TOKEN);
  }

  private HttpResponse<String> send(HttpRequest.Builder request) throws Exception {
    return http.send(request.build(), HttpResponse.BodyHandlers.ofString());
  }

  /** With the token: the API as its users call it. */
  private HttpResponse<String> get(String url) throws Exception {
    return send(authorized(url));
  }

  private HttpResponse<String> delete(String base, String jobId, String contentType, String body) throws Exception {
    return send(authorized(base + "/api/jobs/" + jobId).header("content-type", contentType)
        .method("DELETE", HttpRequest.BodyPublishers.ofString(body)));
  }

  private HttpResponse<String> post(String url, String body) throws Exception {
    return send(authorized(url).header("content-type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)));
  }
}
