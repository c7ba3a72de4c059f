package dev.distillery.schemas.kafka;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import dev.distillery.schemas.JobCancellation;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.apache.kafka.common.errors.SerializationException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The client's side of the Confluent API as a registry answers it: what it sends (login, rule,
 * schema), what it caches, and which answers make a record wait (5xx) or fail (4xx). The registry
 * itself is real in RegistryModeTest; here a stand-in answers as one would, so that a login and a
 * registry error can be seen.
 */
class SchemaRegistryTest {
  private final List<String> calls = new CopyOnWriteArrayList<>();
  private HttpServer server;
  private volatile int status = 200;

  @BeforeEach
  void start() throws IOException {
    server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
    server.createContext("/", this::answer);
    server.start();
  }

  @AfterEach
  void stop() {
    server.stop(0);
  }

  private void answer(HttpExchange exchange) throws IOException {
    String body = new String(exchange.getRequestBody().readAllBytes(), StandardCharsets.UTF_8);
    calls.add(exchange.getRequestMethod() + " " + exchange.getRequestURI() + " "
        + exchange.getRequestHeaders().getFirst("Authorization") + " " + body);
    String path = exchange.getRequestURI().getPath();
    String answer = status != 200 ? "{\"error_code\":" + status + "}"
        : path.endsWith("/versions") ? "{\"id\":7}"
        : path.startsWith("/ccompat/schemas/ids/7")
            ? "{\"schema\":" + quoted(JobCancellation.getClassSchema().toString()) + "}"
        : "{\"compatibility\":\"FULL_TRANSITIVE\"}";
    byte[] bytes = answer.getBytes(StandardCharsets.UTF_8);
    exchange.sendResponseHeaders(status, bytes.length);
    exchange.getResponseBody().write(bytes);
    exchange.close();
  }

  private static String quoted(String text) {
    return "\"" + text.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
  }

  private String url() {
    return "http://127.0.0.1:" + server.getAddress().getPort() + "/ccompat";
  }

  @Test
  void registersOnceUnderTheSubjectWithItsRuleAndLogin() {
    SchemaRegistry registry = new SchemaRegistry(url(), "svc:s3cret", "FULL_TRANSITIVE");
    assertThat(registry.idOf("distillery.cancellations-value", JobCancellation.getClassSchema())).isEqualTo(7);
    assertThat(registry.idOf("distillery.cancellations-value", JobCancellation.getClassSchema())).isEqualTo(7);
    String login = "Basic c3ZjOnMzY3JldA=="; // base64 of svc:s3cret
    assertThat(calls).hasSize(2);
    assertThat(calls.get(0)).startsWith("PUT /ccompat/config/distillery.cancellations-value " + login)
        .endsWith("{\"compatibility\":\"FULL_TRANSITIVE\"}");
    assertThat(calls.get(1)).startsWith("POST /ccompat/subjects/distillery.cancellations-value/versions " + login)
        .contains("JobCancellation");
    // The schema it registered is known by its id without asking.
    assertThat(registry.schemaById(7)).isEqualTo(JobCancellation.getClassSchema());
    assertThat(calls).hasSize(2);
  }

  @Test
  void findsASchemaByIdOnceAndReadsAValueWrittenWithIt() {
    SchemaRegistry registry = new SchemaRegistry(url(), "", "");
    AvroSerde<JobCancellation> serde = AvroSerde.of(JobCancellation.class).withRegistry(registry, "x-value");
    JobCancellation cancellation = JobCancellation.newBuilder().setJobId("j").setReason("r").setRequestedBy("me")
        .setTimestampMs(1).build();
    byte[] confluent = serde.encode(cancellation);
    assertThat(confluent).startsWith(0, 0, 0, 0, 7);
    AvroSerde<JobCancellation> reader = AvroSerde.of(JobCancellation.class).withRegistry(
        new SchemaRegistry(url(), "", ""), "x-value");
    assertThat(reader.decode(confluent)).isEqualTo(cancellation);
    assertThat(reader.decode(confluent)).isEqualTo(cancellation);
    assertThat(calls).filteredOn(call -> call.startsWith("GET /ccompat/schemas/ids/7 null")).hasSize(1);
    // No rule given: none set.
    assertThat(calls).noneMatch(call -> call.startsWith("PUT"));
  }

  @Test
  void aRegistryErrorMakesTheRecordWaitAndARefusalFailsIt() {
    status = 503;
    assertThatThrownBy(() -> new SchemaRegistry(url(), "", "").schemaById(9))
        .isInstanceOf(SchemaRegistry.Unavailable.class).hasMessageContaining("HTTP 503");
    status = 404;
    assertThatThrownBy(() -> new SchemaRegistry(url(), "", "").schemaById(9))
        .isInstanceOf(SerializationException.class).isNotInstanceOf(SchemaRegistry.Unavailable.class)
        .hasMessageContaining("schema id 9").hasMessageContaining("HTTP 404");
  }
}
