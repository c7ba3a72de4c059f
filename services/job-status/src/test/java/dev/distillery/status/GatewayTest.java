package dev.distillery.status;

import static org.assertj.core.api.Assertions.assertThat;

import dev.distillery.common.RequestValidation;
import dev.distillery.common.config.AllowedRoots;
import dev.distillery.common.config.ApiAccess;
import dev.distillery.schemas.JobStatus;
import dev.distillery.schemas.kafka.WireFormat;
import io.vertx.core.Vertx;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The gateway over a store that is not queryable (Streams starting or rebalancing), which a running
 * service cannot be held in: the event stream ends at once, and what it held is let go.
 */
class GatewayTest {
  private final Vertx vertx = Vertx.vertx();
  private final HttpClient http = HttpClient.newHttpClient();

  @AfterEach
  void close() throws Exception {
    vertx.close().await(30, TimeUnit.SECONDS);
  }

  @Test
  void anEventStreamEndedBecauseTheStoreIsNotQueryableLeavesNothingOpen() throws Exception {
    Gateway.JobStore starting = new Gateway.JobStore() {
      @Override
      public Optional<List<JobStatus>> all() {
        return Optional.empty();
      }

      @Override
      public Optional<Optional<JobStatus>> get(String jobId) {
        return Optional.empty();
      }
    };
    Gateway gateway = new Gateway(vertx, starting, null, () -> true, () -> false, null,
        new RequestValidation(new AllowedRoots(List.of(), List.of(), List.of())),
        new ApiAccess(Set.of("t"), List.of(), false), WireFormat.SINGLE_OBJECT);
    String base = "http://127.0.0.1:" + gateway.listen(0).await(30, TimeUnit.SECONDS);

    // As the dashboard does: reconnect after each end. Over HTTP/1.1 (browsers') the connection
    // stays open for the next request, so only the end of the response can release the stream.
    for (HttpClient.Version version : HttpClient.Version.values()) {
      HttpClient client = HttpClient.newBuilder().version(version).build();
      for (int reconnect = 0; reconnect < 3; reconnect++) {
        HttpResponse<String> stream = client.send(HttpRequest.newBuilder(URI.create(base + "/api/events"))
            .header("Authorization", "Bearer t").timeout(Duration.ofSeconds(10)).build(),
            HttpResponse.BodyHandlers.ofString());
        assertThat(stream.statusCode()).isEqualTo(200);
        assertThat(stream.body()).isEqualTo("retry: 2000\n\n");
      }
    }
    HttpResponse<String> metrics = http.send(HttpRequest.newBuilder(URI.create(base + "/metrics")).build(),
        HttpResponse.BodyHandlers.ofString());
    assertThat(metrics.body()).contains("distillery_event_streams_open 0.0\n");
  }
}
