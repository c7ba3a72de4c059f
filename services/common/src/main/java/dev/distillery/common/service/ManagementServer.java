package dev.distillery.common.service;

import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.http.HttpServer;
import io.vertx.ext.web.Router;
import java.util.function.BooleanSupplier;

/** The management port: {@code /health} (alive), {@code /ready} (can take work), {@code /metrics}. */
public final class ManagementServer {
  private final Vertx vertx;
  private final int port;
  private HttpServer server;

  public ManagementServer(Vertx vertx, int port) {
    this.vertx = vertx;
    this.port = port;
  }

  /** Starts listening; the future completes with the bound port. */
  public Future<Integer> start(BooleanSupplier healthy, BooleanSupplier ready, StageMetrics metrics) {
    Router router = Router.router(vertx);
    router.get("/health").handler(ctx -> status(ctx.response(), healthy.getAsBoolean()));
    router.get("/ready").handler(ctx -> status(ctx.response(), ready.getAsBoolean()));
    router.get("/metrics").handler(ctx -> ctx.response()
        .putHeader("content-type", "text/plain; version=0.0.4")
        .end(metrics.prometheus()));
    return vertx.createHttpServer().requestHandler(router).listen(port).map(s -> {
      server = s;
      return s.actualPort();
    });
  }

  public Future<Void> stop() {
    return server == null ? Future.succeededFuture() : server.close();
  }

  private static void status(io.vertx.core.http.HttpServerResponse response, boolean up) {
    response.setStatusCode(up ? 200 : 503)
        .putHeader("content-type", "application/json")
        .end(up ? "{\"status\":\"UP\"}" : "{\"status\":\"DOWN\"}");
  }
}
