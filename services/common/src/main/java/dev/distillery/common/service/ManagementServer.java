package dev.distillery.common.service;

import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.http.HttpServer;
import io.vertx.ext.web.Router;
import java.util.List;
import java.util.function.BooleanSupplier;

/**
 * A process's management port: {@code /health} (every stage alive), {@code /ready} (every stage
 * takes work), {@code /metrics} (the process's meters,
 * {@link ProcessMetrics}, in Prometheus's text format).
 */
public final class ManagementServer {
  private final Vertx vertx;
  private final int port;

  public ManagementServer(Vertx vertx, int port) {
    this.vertx = vertx;
    this.port = port;
  }

  /** Starts listening for {@code stages}; the future completes with the bound port. */
  public Future<Integer> start(List<StageService<?>> stages) {
    BooleanSupplier healthy = () -> stages.stream().allMatch(StageService::healthy);
    BooleanSupplier ready = () -> stages.stream().allMatch(StageService::ready);
    Router router = Router.router(vertx);
    probes(router, healthy, ready);
    PrometheusMeterRegistry registry = ProcessMetrics.of(vertx);
    // Off the event loop: a scrape reads every meter, the Kafka clients' included.
    router.get("/metrics").handler(ctx -> vertx.executeBlocking(registry::scrape, false)
        .onSuccess(text -> ctx.response().putHeader("content-type", "text/plain; version=0.0.4").end(text))
        .onFailure(ctx::fail));
    // The server closes with its Vert.x instance.
    return vertx.createHttpServer().requestHandler(router).listen(port).map(HttpServer::actualPort);
  }

  /** {@code /health} and {@code /ready}: 200 {"status":"UP"} or 503 {"status":"DOWN"}, for any service's router. */
  public static void probes(Router router, BooleanSupplier healthy, BooleanSupplier ready) {
    router.get("/health").handler(ctx -> status(ctx.response(), healthy.getAsBoolean()));
    router.get("/ready").handler(ctx -> status(ctx.response(), ready.getAsBoolean()));
  }

  private static void status(io.vertx.core.http.HttpServerResponse response, boolean up) {
    response.setStatusCode(up ? 200 : 503)
        .putHeader("content-type", "application/json")
        .end(up ? "{\"status\":\"UP\"}" : "{\"status\":\"DOWN\"}");
  }
}
