package dev.distillery.status;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.distillery.common.RequestValidation;
import dev.distillery.common.config.ApiAccess;
import dev.distillery.common.service.ManagementServer;
import dev.distillery.common.service.ProcessMetrics;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.JobCancellation;
import dev.distillery.schemas.JobState;
import dev.distillery.schemas.JobStatus;
import dev.distillery.schemas.json.PlainJson;
import dev.distillery.schemas.kafka.Topics;
import dev.distillery.schemas.kafka.WireFormat;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.FunctionTimer;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.vertx.core.Future;
import io.vertx.core.Handler;
import io.vertx.core.Vertx;
import io.vertx.core.eventbus.MessageConsumer;
import io.vertx.core.http.HttpHeaders;
import io.vertx.core.http.HttpMethod;
import io.vertx.core.http.HttpServer;
import io.vertx.core.http.HttpServerRequest;
import io.vertx.core.http.HttpServerResponse;
import io.vertx.core.http.HttpVersion;
import io.vertx.core.net.HostAndPort;
import io.vertx.ext.web.Router;
import io.vertx.ext.web.RoutingContext;
import io.vertx.ext.web.handler.BodyHandler;
import io.vertx.ext.web.handler.CorsHandler;
import io.vertx.ext.web.handler.StaticHandler;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.EnumMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The HTTP side of the job-status service, on one port:
 *
 * <ul>
 *   <li>{@code GET /api/jobs}: every job's status, newest first; {@code GET /api/jobs/:id}: one;
 *   <li>{@code POST /api/jobs}: a request as JSON ({@code Content-Type: application/json}, at most
 *       {@link #BODY_LIMIT} bytes), validated and published to the requests topic (202 with the job
 *       id, made up when the request has none), 400 with each problem and the field it is in, or 409
 *       when its job id is already used;
 *   <li>{@code DELETE /api/jobs/:id}: cancels a job that has not ended, publishing a {@link
 *       JobCancellation} (202 with it), optionally with a JSON body {@code {"reason": "..."}}; 404
 *       for a job this service does not know, 409 with its state for one that ended;
 *   <li>{@code GET /api/events}: server-sent events, one {@code job} event per status change,
 *       starting with every job's current status, and a {@code removed} event with the id of each
 *       job deleted after its retention;
 *   <li>{@code GET /api/example-request}: a request to start from, without a job id;
 *   <li>{@code /}: the dashboard; {@code /health}, {@code /ready}, {@code /metrics}.
 * </ul>
 *
 * <p>The trust boundary, in the order it is checked: {@code /health} and {@code /ready} are open,
 * for probes. Everything else refuses (403) a request whose {@code Origin} is neither this
 * service's own (the scheme and {@code Host} of the request) nor one of {@link
 * ApiAccess#allowedOrigins()}, so a page elsewhere cannot use a user's browser to reach the API;
 * allowed origins get CORS answers. Behind a proxy that terminates TLS the own origin seen here is
 * {@code http://}: list the public origin in {@code api.allowed.origins}. Every {@code /api/*}
 * route then needs {@code Authorization: Bearer} with one of {@link ApiAccess#tokens()} (401
 * otherwise), and so does {@code /metrics} if {@link ApiAccess#metricsNeedToken()}. The dashboard's
 * files hold no data and are open. The event stream takes the token in the header too, never in the
 * URL, which would reach logs.
 *
 * <p>Nothing here blocks the event loop: one job's lookup is an in-memory read; scans of every job,
 * parsing and validating a request (which resolves paths on disk) and publishing (which may wait for
 * topic metadata) run on workers.
 */
final class Gateway {
  /** Event-bus address of status changes and removals, as server-sent event frames. */
  private static final String CHANGES = "distillery.job-status.changes";
  private static final long KEEP_ALIVE_MS = 15_000;
  /** The largest request body accepted, in bytes: requests are a few hundred bytes of settings. */
  static final int BODY_LIMIT = 1 << 20;
  /** The longest reason a cancellation may give, in characters. */
  static final int REASON_LIMIT = 1000;
  /** How long a client may go on sending a body after its 413 before it is cut off. */
  private static final long LINGER_MS = 1000;
  private static final Logger LOG = LoggerFactory.getLogger(Gateway.class);

  private final Vertx vertx;
  /** How requests and cancellations are written to their topics. */
  private final WireFormat wire;
  private final JobStore jobs;
  private final KafkaProducer<String, byte[]> producer;
  private final BooleanSupplier healthy;
  private final BooleanSupplier ready;
  private final JsonNode exampleRequest;
  private final RequestValidation validation;
  private final List<byte[]> tokenDigests;
  private final Set<String> allowedOrigins;
  private final boolean metricsNeedToken;
  /** Answers preflights and adds CORS headers, for allowed origins only; null when there are none. */
  private final CorsHandler cors;
  /** Job ids published here that the store does not hold yet: a second submit of one is a conflict too. */
  private final Set<String> publishing = ConcurrentHashMap.newKeySet();
  private final AtomicLong submitted = new AtomicLong();
  private final AtomicLong rejected = new AtomicLong();
  private final AtomicLong cancelled = new AtomicLong();
  private final AtomicLong streamsOpen = new AtomicLong();
  private final PrometheusMeterRegistry registry;
  private volatile JobTally tally = new JobTally(Map.of(), 0, 0);

  /** Reads of the status store; empty while the store is not queryable (starting, rebalancing). */
  interface JobStore {
    Optional<List<JobStatus>> all();

    Optional<Optional<JobStatus>> get(String jobId);
  }

  /** What a worker decided about a request: the status and body of the answer. */
  private record Answer(int status, JsonNode body) {}

  /**
   * {@code exampleRequest} (or null) prefills the dashboard's form; it has no job id, so each
   * submit is a new job. {@code access} must name at least one token: the API is never open.
   */
  Gateway(Vertx vertx, JobStore jobs, KafkaProducer<String, byte[]> producer, BooleanSupplier healthy,
      BooleanSupplier ready, JsonNode exampleRequest, RequestValidation validation, ApiAccess access,
      WireFormat wire) {
    if (access.tokens().isEmpty()) {
      throw new IllegalArgumentException("the job API needs at least one token");
    }
    this.vertx = vertx;
    this.wire = wire;
    this.jobs = jobs;
    this.producer = producer;
    this.healthy = healthy;
    this.ready = ready;
    this.exampleRequest = exampleRequest;
    this.validation = validation;
    this.tokenDigests = access.tokens().stream().map(Gateway::sha256).toList();
    Set<String> origins = new LinkedHashSet<>();
    for (String origin : access.allowedOrigins()) {
      String canonical = canonicalOrigin(origin);
      if (canonical == null) {
        throw new IllegalArgumentException("api.allowed.origins: '" + origin
            + "' is not an origin (scheme://host or scheme://host:port; '*' is not accepted)");
      }
      origins.add(canonical);
    }
    this.allowedOrigins = Set.copyOf(origins);
    this.metricsNeedToken = access.metricsNeedToken();
    this.cors = allowedOrigins.isEmpty() ? null : CorsHandler.create()
        .addOrigins(List.copyOf(allowedOrigins))
        .allowedMethods(Set.of(HttpMethod.GET, HttpMethod.POST, HttpMethod.DELETE))
        .allowedHeaders(Set.of(HttpHeaders.AUTHORIZATION.toString(), HttpHeaders.CONTENT_TYPE.toString()))
        .maxAgeSeconds(600);
    this.registry = ProcessMetrics.of(vertx);
    bindMeters();
  }

  /**
   * Passes a new status to the open event streams. Called on a stream thread for every event; a
   * status (with its history) is written as JSON only when a client is there to read it.
   */
  void changed(JobStatus status) {
    // The store holds it now (the topology writes before it tells): its own check takes over.
    publishing.remove(status.getJobId());
    if (streamsOpen.get() > 0) {
      vertx.eventBus().publish(CHANGES, frame("job", PlainJson.write(status).toString()));
    }
  }

  /** Tells the open event streams that a job was deleted after its retention. Called on a stream thread. */
  void removed(String jobId) {
    if (streamsOpen.get() > 0) {
      vertx.eventBus().publish(CHANGES, frame("removed", PlainJson.MAPPER.createObjectNode().put("jobId", jobId)
          .toString()));
    }
  }

  /** Starts listening; the future completes with the bound port. */
  Future<Integer> listen(int port) {
    Router router = Router.router(vertx);
    // First, and open: a kubelet's probe sends neither a token nor an Origin.
    ManagementServer.probes(router, healthy, ready);
    router.route().handler(this::origin);
    if (metricsNeedToken) {
      router.get("/metrics").handler(this::authenticate);
    }
    router.get("/metrics").handler(this::metrics);
    router.route("/api/*").handler(this::authenticate);
    router.get("/api/jobs").handler(this::list);
    router.get("/api/jobs/:id").handler(this::detail);
    // The type is checked before any of the body is read (a route of its own: Vert.x puts body
    // handlers first in a route); BodyHandler refuses a body over the limit as soon as its
    // Content-Length says so, or once that many bytes arrived, keeping none.
    router.post("/api/jobs").handler(Gateway::jsonOnly);
    router.post("/api/jobs").handler(BodyHandler.create(false).setBodyLimit(BODY_LIMIT)).handler(this::submit);
    router.delete("/api/jobs/:id").handler(Gateway::jsonOrNothing);
    router.delete("/api/jobs/:id").handler(BodyHandler.create(false).setBodyLimit(BODY_LIMIT)).handler(this::cancel);
    router.get("/api/events").handler(this::events);
    router.get("/api/example-request").handler(ctx -> {
      if (exampleRequest == null) {
        json(ctx.response(), 404, error("no example request configured"));
      } else {
        json(ctx.response(), 200, exampleRequest);
      }
    });
    router.route("/*").handler(StaticHandler.create("webroot").setCachingEnabled(false));
    router.route().failureHandler(this::failed);
    return vertx.createHttpServer().requestHandler(router).listen(port).map(HttpServer::actualPort);
  }

  /**
   * Lets through a request without an {@code Origin} (not sent by a page of another origin) or
   * from this service's own origin; answers CORS for an allowed origin; refuses any other.
   */
  private void origin(RoutingContext ctx) {
    String origin = ctx.request().getHeader(HttpHeaders.ORIGIN);
    if (origin == null) {
      ctx.next();
      return;
    }
    String canonical = canonicalOrigin(origin);
    if (canonical != null && allowedOrigins.contains(canonical)) {
      cors.handle(ctx);
    } else if (canonical != null && canonical.equals(ownOrigin(ctx.request()))) {
      ctx.next();
    } else {
      json(ctx.response(), 403, error("requests from origin '" + origin
          + "' are refused: it is neither this service's own origin nor one of api.allowed.origins"));
    }
  }

  /** The request's own origin as its browser would write it: its scheme and the Host it was sent to. */
  private static String ownOrigin(HttpServerRequest request) {
    HostAndPort authority = request.authority();
    return authority == null ? null : canonical(request.scheme(), authority.host(), authority.port());
  }

  /**
   * The origin as browsers write it in {@code Origin} (lower case, no default port), which is also
   * how CORS matches it; or null for anything that is not an origin (such as {@code null}, which
   * sandboxed pages send, or {@code *}).
   */
  static String canonicalOrigin(String origin) {
    try {
      URI uri = new URI(origin.trim());
      boolean bare = uri.getRawPath() == null || uri.getRawPath().isEmpty() || uri.getRawPath().equals("/");
      if (uri.getScheme() == null || uri.getHost() == null || uri.getRawUserInfo() != null || !bare
          || uri.getRawQuery() != null || uri.getRawFragment() != null) {
        return null;
      }
      return canonical(uri.getScheme(), uri.getHost(), uri.getPort());
    } catch (URISyntaxException e) {
      return null;
    }
  }

  private static String canonical(String scheme, String host, int port) {
    String s = scheme.toLowerCase(Locale.ROOT);
    String h = host.toLowerCase(Locale.ROOT);
    if (h.startsWith("[") && h.endsWith("]")) {
      h = h.substring(1, h.length() - 1);
    }
    boolean defaultPort = port < 0 || port == 80 && s.equals("http") || port == 443 && s.equals("https");
    return s + "://" + (h.contains(":") ? "[" + h + "]" : h) + (defaultPort ? "" : ":" + port);
  }

  /** Lets through a request with {@code Authorization: Bearer} and an accepted token; 401 otherwise. */
  private void authenticate(RoutingContext ctx) {
    String header = ctx.request().getHeader(HttpHeaders.AUTHORIZATION);
    if (header == null || !header.regionMatches(true, 0, "Bearer ", 0, 7)) {
      unauthorized(ctx, "Bearer realm=\"distillery\"",
          "this API needs a token: send 'Authorization: Bearer <token>'");
    } else if (!accepted(header.substring(7).trim())) {
      unauthorized(ctx, "Bearer realm=\"distillery\", error=\"invalid_token\"",
          "the bearer token is not one this service accepts");
    } else {
      ctx.next();
    }
  }

  /**
   * Whether {@code token} is one of the configured ones. Digests are compared, each in full, so the
   * time taken says nothing of how much of a token, or of its length, was right.
   */
  private boolean accepted(String token) {
    byte[] presented = sha256(token);
    boolean match = false;
    for (byte[] digest : tokenDigests) {
      match |= MessageDigest.isEqual(digest, presented);
    }
    return match;
  }

  private static byte[] sha256(String token) {
    try {
      return MessageDigest.getInstance("SHA-256").digest(token.getBytes(StandardCharsets.UTF_8));
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("every Java runtime has SHA-256", e);
    }
  }

  private static void unauthorized(RoutingContext ctx, String challenge, String message) {
    ctx.response().putHeader("WWW-Authenticate", challenge);
    json(ctx.response(), 401, error(message));
  }

  /** A request body must be JSON, in UTF-8 if a charset is named: a form or text/plain is refused. */
  private static void jsonOnly(RoutingContext ctx) {
    String type = ctx.request().getHeader(HttpHeaders.CONTENT_TYPE);
    if (isJson(type)) {
      ctx.next();
    } else {
      json(ctx.response(), 415, error("the body must be JSON sent as 'Content-Type: application/json', was "
          + (type == null ? "no Content-Type" : "'" + type + "'")));
    }
  }

  /** A body is optional (a cancellation's reason), but one that is sent must be JSON, as for {@link #jsonOnly}. */
  private static void jsonOrNothing(RoutingContext ctx) {
    HttpServerRequest request = ctx.request();
    String length = request.getHeader(HttpHeaders.CONTENT_LENGTH);
    boolean noBody = request.getHeader(HttpHeaders.CONTENT_TYPE) == null
        && request.getHeader(HttpHeaders.TRANSFER_ENCODING) == null && (length == null || length.trim().equals("0"));
    if (noBody) {
      ctx.next();
    } else {
      jsonOnly(ctx);
    }
  }

  static boolean isJson(String contentType) {
    if (contentType == null) {
      return false;
    }
    String[] parts = contentType.split(";");
    if (!parts[0].trim().equalsIgnoreCase("application/json")) {
      return false;
    }
    for (int i = 1; i < parts.length; i++) {
      String[] parameter = parts[i].split("=", 2);
      String value = parameter.length == 2 ? parameter[1].trim().replace("\"", "") : "";
      if (!parameter[0].trim().equalsIgnoreCase("charset") || !value.equalsIgnoreCase("utf-8")) {
        return false;
      }
    }
    return true;
  }

  /**
   * Failures as JSON, like every other answer: a body over the limit (413, after which the rest of
   * the body is refused rather than drained), a refusal by CORS, a handler's error.
   */
  private void failed(RoutingContext ctx) {
    int status = ctx.statusCode() < 400 ? 500 : ctx.statusCode();
    HttpServerResponse response = ctx.response();
    if (status >= 500) {
      LOG.warn("{} {} failed", ctx.request().method(), ctx.request().path(), ctx.failure());
    }
    if (response.headWritten()) {
      response.reset();
      return;
    }
    // Setting the status sets its reason phrase, such as "Forbidden" for a refusal by CORS.
    String reason = response.setStatusCode(status).getStatusMessage();
    String message = status == 413 ? "the body is larger than " + BODY_LIMIT + " bytes"
        : status >= 500 ? "internal error" : reason;
    if (status == 413) {
      if (ctx.request().version() != HttpVersion.HTTP_2) {
        response.putHeader(HttpHeaders.CONNECTION, "close"); // not to be used again by the client
      }
      tooLarge(ctx, json(response, status, error(message)));
    } else {
      json(response, status, error(message));
    }
  }

  /**
   * After a 413 the rest of the body is not wanted, and what arrives is dropped. The client may
   * finish sending, for {@link #LINGER_MS} at most, so that it reads the answer rather than a reset;
   * then one still sending is cut off: HTTP/1 by closing the connection (it is closed anyway, as
   * the answer said), HTTP/2 by resetting the stream (NO_ERROR), which leaves other streams be.
   */
  private void tooLarge(RoutingContext ctx, Future<Void> sent) {
    HttpServerRequest request = ctx.request();
    boolean http2 = request.version() == HttpVersion.HTTP_2;
    sent.onComplete(answered -> {
      if (request.isEnded()) {
        if (!http2) {
          request.connection().close();
        }
        return;
      }
      long linger = vertx.setTimer(LINGER_MS, timer -> {
        if (http2) {
          ctx.response().reset(0);
        } else {
          request.connection().close();
        }
      });
      request.endHandler(ended -> {
        vertx.cancelTimer(linger);
        if (!http2) {
          request.connection().close();
        }
      });
    });
  }

  /** Scanning the store and writing every job is work in proportion to the jobs: on a worker. */
  private void list(RoutingContext ctx) {
    vertx.executeBlocking(() -> jobs.all().map(all -> {
      ArrayNode array = PlainJson.MAPPER.createArrayNode();
      all.stream().sorted(Comparator.comparingLong(JobStatus::getSubmittedAtMs).reversed())
          .forEach(status -> array.add(PlainJson.write(status)));
      return array;
    }), false).onSuccess(array -> {
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

  /** Parsing and validating (which resolves paths on disk) and publishing run on a worker. */
  private void submit(RoutingContext ctx) {
    String body = ctx.body().asString();
    // Not ordered: a publish waiting for the broker holds up no other request.
    vertx.executeBlocking(() -> accept(body), false)
        .onSuccess(answer -> json(ctx.response(), answer.status(), answer.body()))
        .onFailure(ctx::fail);
  }

  /**
   * Publishes a valid request whose job id is new (202 with the id; one is made when the request
   * has none), or says why not: 400 with each problem, 409 for a job id already used (nothing is
   * published, so that job is untouched), 503 while it cannot be told or published.
   */
  private Answer accept(String text) {
    CompressionRequest request;
    try {
      JsonNode body = PlainJson.MAPPER.readTree(text);
      if (body == null || !body.isObject()) {
        return reject(400, List.of(new RequestValidation.Violation("(the request)", "must be a JSON object")));
      }
      if (!body.hasNonNull("jobId")) {
        ((ObjectNode) body).put("jobId", RequestValidation.newJobId());
      }
      request = PlainJson.read(body, CompressionRequest.class);
    } catch (PlainJson.InvalidJsonException e) {
      return reject(400, List.of(new RequestValidation.Violation(e.field(),
          e.getMessage().substring(e.field().length() + 2))));
    } catch (Exception e) {
      return reject(400, List.of(new RequestValidation.Violation("(the request)", "is not JSON: " + e.getMessage())));
    }
    List<RequestValidation.Violation> problems = validation.validate(request);
    if (!problems.isEmpty()) {
      return reject(400, problems);
    }
    String jobId = request.getJobId();
    // Reserve the id first, then look it up: a status folded in between cannot let two through.
    if (!publishing.add(jobId)) {
      return usedId(jobId);
    }
    Optional<Optional<JobStatus>> known = jobs.get(jobId);
    if (known.isEmpty() || known.get().isPresent()) {
      publishing.remove(jobId);
      return known.isEmpty() ? new Answer(503, error("the job store is not ready yet, so a new job id cannot be "
          + "told from a used one; retry shortly")) : usedId(jobId);
    }
    try {
      byte[] value = wire.of(Topics.REQUESTS).valueSerde().serializer().serialize(Topics.REQUESTS.name(), request);
      producer.send(new ProducerRecord<>(Topics.REQUESTS.name(), jobId, value)).get(30, TimeUnit.SECONDS);
    } catch (KafkaException e) {
      // In registry mode: the registry is away, or refused the schema.
      publishing.remove(jobId);
      return new Answer(503, error("could not encode or publish the request: " + e.getMessage()));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      publishing.remove(jobId);
      return new Answer(503, error("could not publish the request: interrupted"));
    } catch (ExecutionException | TimeoutException e) {
      publishing.remove(jobId);
      Throwable cause = e instanceof ExecutionException && e.getCause() != null ? e.getCause() : e;
      return new Answer(503, error("could not publish the request: " + cause.getMessage()));
    }
    submitted.incrementAndGet();
    return new Answer(202, PlainJson.MAPPER.createObjectNode().put("jobId", jobId));
  }

  /** Reading the body, looking the job up and publishing (which may wait for the broker) run on a worker. */
  private void cancel(RoutingContext ctx) {
    String jobId = ctx.pathParam("id");
    String body = ctx.body().asString();
    vertx.executeBlocking(() -> cancellation(jobId, body), false)
        .onSuccess(answer -> json(ctx.response(), answer.status(), answer.body()))
        .onFailure(ctx::fail);
  }

  /**
   * Publishes a cancellation of a job that has not ended (202 with it), or says why not: 400 for
   * a body that is not {@code {"reason": "..."}}, 404 for a job not in the store, 409 with the state
   * of one that ended, 503 while the store cannot be read or the broker does not acknowledge.
   */
  private Answer cancellation(String jobId, String text) {
    String reason = "";
    if (text != null && !text.isBlank()) {
      JsonNode body;
      try {
        body = PlainJson.MAPPER.readTree(text);
      } catch (Exception e) {
        return new Answer(400, error("the body is not JSON: " + e.getMessage()));
      }
      List<String> unknown = new ArrayList<>();
      if (body != null && body.isObject()) {
        body.fieldNames().forEachRemaining(name -> {
          if (!name.equals("reason")) {
            unknown.add(name);
          }
        });
      }
      JsonNode given = body == null ? null : body.get("reason");
      if (body == null || !body.isObject() || !unknown.isEmpty() || given != null && !given.isTextual()
          && !given.isNull()) {
        return new Answer(400, error("the body must be a JSON object with at most a text 'reason'"
            + (unknown.isEmpty() ? "" : "; unknown fields: " + String.join(", ", unknown))));
      }
      reason = given == null || given.isNull() ? "" : given.asText();
      if (reason.length() > REASON_LIMIT) {
        return new Answer(400, error("the reason is longer than " + REASON_LIMIT + " characters"));
      }
    }
    Optional<Optional<JobStatus>> known = jobs.get(jobId);
    if (known.isEmpty()) {
      return new Answer(503, error("the job store is not ready yet; retry shortly"));
    }
    if (known.get().isEmpty()) {
      return new Answer(404, error("no job '" + jobId + "'"));
    }
    JobState state = known.get().get().getState();
    if (JobStatusFold.ended(state)) {
      return new Answer(409, error("job '" + jobId + "' has already ended (" + state + "): nothing to cancel")
          .put("jobId", jobId).put("state", state.toString()));
    }
    JobCancellation cancellation = JobCancellation.newBuilder().setJobId(jobId).setReason(reason)
        .setRequestedBy("api").setTimestampMs(System.currentTimeMillis()).build();
    try {
      byte[] value = wire.of(Topics.CANCELLATIONS).valueSerde().serializer()
          .serialize(Topics.CANCELLATIONS.name(), cancellation);
      producer.send(new ProducerRecord<>(Topics.CANCELLATIONS.name(), jobId, value)).get(30, TimeUnit.SECONDS);
    } catch (KafkaException e) {
      return new Answer(503, error("could not encode or publish the cancellation: " + e.getMessage()));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return new Answer(503, error("could not publish the cancellation: interrupted"));
    } catch (ExecutionException | TimeoutException e) {
      Throwable cause = e instanceof ExecutionException && e.getCause() != null ? e.getCause() : e;
      return new Answer(503, error("could not publish the cancellation: " + cause.getMessage()));
    }
    cancelled.incrementAndGet();
    return new Answer(202, PlainJson.write(cancellation));
  }

  private Answer usedId(String jobId) {
    return reject(409, List.of(new RequestValidation.Violation("jobId",
        "'" + jobId + "' is already used by another job; choose another, or leave jobId out to get a new one")));
  }

  private Answer reject(int status, List<RequestValidation.Violation> problems) {
    rejected.incrementAndGet();
    ArrayNode errors = PlainJson.MAPPER.createArrayNode();
    problems.forEach(p -> errors.addObject().put("field", p.field()).put("problem", p.problem()));
    ObjectNode body = PlainJson.MAPPER.createObjectNode();
    body.set("errors", errors);
    return new Answer(status, body);
  }

  /**
   * Server-sent events: every current status, then each change as it happens. A client that does
   * not keep up is disconnected rather than buffered for: the dashboard reconnects and starts
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
    boolean[] cleaned = {false}; // the handlers below run on this request's event loop
    Handler<Void> cleanup = ignored -> {
      if (!cleaned[0]) {
        cleaned[0] = true;
        changes.unregister();
        vertx.cancelTimer(keepAlive);
        streamsOpen.decrementAndGet();
      }
    };
    // However the stream ends: ended here (the connection then stays open for the next request,
    // so no close handler would run), reset, or closed by the client.
    response.endHandler(cleanup);
    response.closeHandler(cleanup);
    vertx.executeBlocking(() -> jobs.all().map(all -> all.stream().map(s -> PlainJson.write(s).toString()).toList()),
            false)
        .onSuccess(snapshot -> {
          if (snapshot.isEmpty()) {
            response.end();
          } else {
            snapshot.get().forEach(json -> send(response, frame("job", json)));
          }
        })
        .onFailure(e -> response.reset());
  }

  /** One event's frame: its type and its data, one line of JSON. */
  private static String frame(String type, String json) {
    return "event: " + type + "\ndata: " + json + "\n\n";
  }

  /** One event's {@code frame}, or a keep-alive comment for null; closes a client that fell behind. */
  private static void send(HttpServerResponse response, String frame) {
    if (response.closed() || response.ended()) {
      return;
    }
    if (response.writeQueueFull()) {
      response.reset();
      return;
    }
    response.write(frame == null ? ": keep-alive\n\n" : frame);
  }

  private void metrics(RoutingContext ctx) {
    // Unordered, as every scan here: ordered tasks share one queue, so a flood of one would delay all.
    vertx.executeBlocking(this::prometheus, false)
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
    tally = new JobTally(byState, (long) doneSeconds[1], doneSeconds[0]);
    return registry.scrape();
  }

  /** The gateway's meters; those of the jobs read the latest {@link JobTally}. */
  private void bindMeters() {
    FunctionCounter.builder("distillery.requests.submitted", submitted, AtomicLong::get).register(registry);
    FunctionCounter.builder("distillery.requests.rejected", rejected, AtomicLong::get).register(registry);
    FunctionCounter.builder("distillery.cancellations.requested", cancelled, AtomicLong::get).register(registry);
    Gauge.builder("distillery.event.streams.open", streamsOpen, AtomicLong::get).register(registry);
    for (JobState state : JobState.values()) {
      Gauge.builder("distillery.jobs", () -> tally.byState().getOrDefault(state, 0)).tag("state", state.toString())
          .description("jobs in the status store by state").register(registry);
    }
    FunctionTimer.builder("distillery.job", this, gateway -> gateway.tally.done(),
        gateway -> gateway.tally.doneSeconds(), TimeUnit.SECONDS)
        .description("submitted to result, of the finished jobs in the status store").register(registry);
  }

  /** The status store's jobs by state, and the number and total time of the finished ones, as of a scrape. */
  private record JobTally(Map<JobState, Integer> byState, long done, double doneSeconds) {}

  private static void unavailable(RoutingContext ctx) {
    json(ctx.response(), 503, error("the job store is not ready yet; retry shortly"));
  }

  private static ObjectNode error(String message) {
    return PlainJson.MAPPER.createObjectNode().put("error", message);
  }

  private static Future<Void> json(HttpServerResponse response, int status, JsonNode body) {
    return response.setStatusCode(status).putHeader("content-type", "application/json").end(body.toString());
  }
}
