package dev.distillery.status;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.distillery.common.RequestValidation;
import dev.distillery.common.service.ManagementServer;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.JobState;
import dev.distillery.schemas.JobStatus;
import dev.distillery.schemas.json.PlainJson;
import dev.distillery.schemas.kafka.Topics;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.eventbus.MessageConsumer;
import io.vertx.core.http.HttpServer;
import io.vertx.core.http.HttpServerResponse;
import io.vertx.ext.web.Router;
import io.vertx.ext.web.RoutingContext;
import io.vertx.ext.web.handler.BodyHandler;
import io.vertx.ext.web.handler.StaticHandler;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;

/**
 * The HTTP side of the job-status service, on one port:
 *
 * <ul>
 *   <li>{@code GET /api/jobs}: every job's status, newest first; {@code GET /api/jobs/:id}: one;
 *   <li>{@code POST /api/jobs}: a request as plain JSON, validated and published to the requests
 *       topic (202 with the job id), or 400 with each problem and the field it is in;
 *   <li>{@code GET /api/events}: server-sent events, one {@code job} event per status change,
 *       starting with every job's current status;
 *   <li>{@code GET /api/example-request}: a request to start from, without a job id;
 *   <li>{@code /}: the dashboard; {@code /health}, {@code /ready}, {@code /metrics}.
 * </ul>
 *
 * <p>Nothing here blocks the event loop: one job's lookup is an in-memory read; scans of every job
 * and publishing (which may wait for topic metadata) run on workers.
 */
final class Gateway {
  /** Event-bus address of status changes, as JSON text. */
  private static final String CHANGES = "distillery.job-status.changes";
  private static final long KEEP_ALIVE_MS = 15_000;

  private final Vertx vertx;
  private final JobStore jobs;
  private final KafkaProducer<String, byte[]> producer;
  private final BooleanSupplier healthy;
  private final BooleanSupplier ready;
  private final JsonNode exampleRequest;
  private final RequestValidation validation;
  private final AtomicLong submitted = new AtomicLong();
  private final AtomicLong rejected = new AtomicLong();
  private final AtomicLong streamsOpen = new AtomicLong();

  /** Reads of the status store; empty while the store is not queryable (starting, rebalancing). */
  interface JobStore {
    Optional<List<JobStatus>> all();

    Optional<Optional<JobStatus>> get(String jobId);
  }

  /**
   * {@code exampleRequest} (or null) prefills the dashboard's form; it has no job id, so each
   * submit is a new job.
   */
  Gateway(Vertx vertx, JobStore jobs, KafkaProducer<String, byte[]> producer, BooleanSupplier healthy,
      BooleanSupplier ready, JsonNode exampleRequest, RequestValidation validation) {
    this.vertx = vertx;
    this.jobs = jobs;
    this.producer = producer;
    this.healthy = healthy;
    this.ready = ready;
    this.exampleRequest = exampleRequest;
    this.validation = validation;
  }

  /**
   * Passes a new status to the open event streams. Called on a stream thread for every event; a
   * status (with its history) is written as JSON only when a client is there to read it.
   */
  void changed(JobStatus status) {
    if (streamsOpen.get() > 0) {
      vertx.eventBus().publish(CHANGES, PlainJson.write(status).toString());
    }
  }

  /** Starts listening; the future completes with the bound port. */
  Future<Integer> listen(int port) {
    Router router = Router.router(vertx);
    ManagementServer.probes(router, healthy, ready);
    router.get("/metrics").handler(this::metrics);
    router.get("/api/jobs").handler(this::list);
    router.get("/api/jobs/:id").handler(this::detail);
    router.post("/api/jobs").handler(BodyHandler.create(false).setBodyLimit(1 << 20)).handler(this::submit);
    router.get("/api/events").handler(this::events);
    router.get("/api/example-request").handler(ctx -> {
      if (exampleRequest == null) {
        json(ctx.response(), 404, error("no example request configured"));
      } else {
        json(ctx.response(), 200, exampleRequest);
      }
    });
    router.route("/*").handler(StaticHandler.create("webroot").setCachingEnabled(false));
    return vertx.createHttpServer().requestHandler(router).listen(port).map(HttpServer::actualPort);
  }

  /** Scanning the store and writing every job is work in proportion to the jobs: on a worker. */
  private void list(RoutingContext ctx) {
    vertx.executeBlocking(() -> jobs.all().map(all -> {
      ArrayNode array = PlainJson.MAPPER.createArrayNode();
      all.stream().sorted(Comparator.comparingLong(JobStatus::getSubmittedAtMs).reversed())
          .forEach(status -> array.add(PlainJson.write(status)));
      return array;
    })).onSuccess(array -> {
      if (array.isEmpty()) {
        unavailable(ctx);
      } else {
        json(ctx.response(), 200, array.get());
      }
    }).onFailure(ctx::fail);
  }

  private void detail(RoutingContext ctx) {
    Optional<Optional<JobStatus>> status = jobs.get(ctx.pathParam("id"));
    if (status.isEmpty()) {
      unavailable(ctx);
    } else if (status.get().isEmpty()) {
      json(ctx.response(), 404, error("no job '" + ctx.pathParam("id") + "'"));
    } else {
      json(ctx.response(), 200, PlainJson.write(status.get().get()));
    }
  }

  private void submit(RoutingContext ctx) {
    CompressionRequest request;
    try {
      JsonNode body = PlainJson.MAPPER.readTree(ctx.body().asString());
      if (body == null || !body.isObject()) {
        reject(ctx, List.of(new RequestValidation.Violation("(the request)", "must be a JSON object")));
        return;
      }
      if (!body.hasNonNull("jobId")) {
        ((ObjectNode) body).put("jobId", "job-" + UUID.randomUUID().toString().substring(0, 8));
      }
      request = PlainJson.read(body, CompressionRequest.class);
    } catch (PlainJson.InvalidJsonException e) {
      reject(ctx, List.of(new RequestValidation.Violation(e.field(), e.getMessage().substring(e.field().length() + 2))));
      return;
    } catch (Exception e) {
      reject(ctx, List.of(new RequestValidation.Violation("(the request)", "is not JSON: " + e.getMessage())));
      return;
    }
    List<RequestValidation.Violation> problems = validation.validate(request);
    if (!problems.isEmpty()) {
      reject(ctx, problems);
      return;
    }
    byte[] value = Topics.REQUESTS.valueSerde().serializer().serialize(Topics.REQUESTS.name(), request);
    vertx.executeBlocking(() -> producer.send(new ProducerRecord<>(Topics.REQUESTS.name(), request.getJobId(), value))
            .get(30, TimeUnit.SECONDS))
        .onSuccess(ack -> {
          submitted.incrementAndGet();
          ObjectNode accepted = PlainJson.MAPPER.createObjectNode().put("jobId", request.getJobId());
          json(ctx.response(), 202, accepted);
        })
        .onFailure(e -> json(ctx.response(), 503, error("could not publish the request: " + e.getMessage())));
  }

  private void reject(RoutingContext ctx, List<RequestValidation.Violation> problems) {
    rejected.incrementAndGet();
    ArrayNode errors = PlainJson.MAPPER.createArrayNode();
    problems.forEach(p -> errors.addObject().put("field", p.field()).put("problem", p.problem()));
    ObjectNode body = PlainJson.MAPPER.createObjectNode();
    body.set("errors", errors);
    json(ctx.response(), 400, body);
  }

  /**
   * Server-sent events: every current status, then each change as it happens. A client that does
   * not keep up is disconnected rather than buffered for: its EventSource reconnects and starts
   * again from a fresh snapshot. While the store is not queryable the stream ends at once with a
   * retry delay, so no client sits on a stream without its snapshot.
   */
  private void events(RoutingContext ctx) {
    HttpServerResponse response = ctx.response();
    response.setChunked(true)
        .putHeader("content-type", "text/event-stream")
        .putHeader("cache-control", "no-cache")
        .putHeader("x-accel-buffering", "no");
    response.write("retry: 2000\n\n");
    // Subscribe before the snapshot: a change in between arrives twice rather than not at all.
    MessageConsumer<String> changes = vertx.eventBus().consumer(CHANGES, message -> send(response, message.body()));
    long keepAlive = vertx.setPeriodic(KEEP_ALIVE_MS, timer -> send(response, null));
    streamsOpen.incrementAndGet();
    response.closeHandler(closed -> {
      changes.unregister();
      vertx.cancelTimer(keepAlive);
      streamsOpen.decrementAndGet();
    });
    vertx.executeBlocking(() -> jobs.all().map(all -> all.stream().map(s -> PlainJson.write(s).toString()).toList()))
        .onSuccess(snapshot -> {
          if (snapshot.isEmpty()) {
            response.end();
          } else {
            snapshot.get().forEach(json -> send(response, json));
          }
        })
        .onFailure(e -> response.reset());
  }

  /** One event ({@code json}), or a keep-alive comment for null; closes a client that fell behind. */
  private static void send(HttpServerResponse response, String json) {
    if (response.closed() || response.ended()) {
      return;
    }
    if (response.writeQueueFull()) {
      response.reset();
      return;
    }
    response.write(json == null ? ": keep-alive\n\n" : "event: job\ndata: " + json + "\n\n");
  }

  private void metrics(RoutingContext ctx) {
    vertx.executeBlocking(this::prometheus)
        .onSuccess(text -> ctx.response().putHeader("content-type", "text/plain; version=0.0.4").end(text))
        .onFailure(ctx::fail);
  }

  private String prometheus() {
    Map<JobState, Integer> byState = new EnumMap<>(JobState.class);
    double[] doneSeconds = {0, 0}; // sum, count: submitted to result, of finished jobs
    jobs.all().ifPresent(all -> all.forEach(s -> {
      byState.merge(s.getState(), 1, Integer::sum);
      if (s.getState() == JobState.DONE) {
        doneSeconds[0] += (s.getResult().getCompletedAtMs() - s.getSubmittedAtMs()) / 1000.0;
        doneSeconds[1]++;
      }
    }));
    List<String> lines = new ArrayList<>();
    lines.add("# TYPE distillery_jobs gauge");
    for (JobState state : JobState.values()) {
      lines.add("distillery_jobs{state=\"" + state + "\"} " + byState.getOrDefault(state, 0));
    }
    lines.add("# TYPE distillery_job_seconds summary");
    lines.add("distillery_job_seconds_sum " + doneSeconds[0]);
    lines.add("distillery_job_seconds_count " + (long) doneSeconds[1]);
    lines.add("# TYPE distillery_requests_submitted_total counter");
    lines.add("distillery_requests_submitted_total " + submitted.get());
    lines.add("# TYPE distillery_requests_rejected_total counter");
    lines.add("distillery_requests_rejected_total " + rejected.get());
    lines.add("# TYPE distillery_event_streams_open gauge");
    lines.add("distillery_event_streams_open " + streamsOpen.get());
    return String.join("\n", lines) + "\n";
  }

  private static void unavailable(RoutingContext ctx) {
    json(ctx.response(), 503, error("the job store is not ready yet; retry shortly"));
  }

  private static ObjectNode error(String message) {
    return PlainJson.MAPPER.createObjectNode().put("error", message);
  }

  private static void json(HttpServerResponse response, int status, JsonNode body) {
    response.setStatusCode(status).putHeader("content-type", "application/json").end(body.toString());
  }
}
