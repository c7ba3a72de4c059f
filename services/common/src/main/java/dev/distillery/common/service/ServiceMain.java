package dev.distillery.common.service;

import dev.distillery.common.config.ServiceConfig;
import io.vertx.core.Vertx;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Runs a service as a process: configuration from the environment, its stages deployed, one
 * management port, a shutdown hook that stops them in reverse order, exit 1 if it cannot start.
 */
public final class ServiceMain {
  private static final Logger LOG = LoggerFactory.getLogger(ServiceMain.class);

  private ServiceMain() {}

  public static void run(String service, Function<ServiceConfig, List<StageService<?>>> stages) {
    // Avro reads its trusted packages once; set them before anything touches a generated record.
    if (System.getProperty("org.apache.avro.SERIALIZABLE_PACKAGES") == null) {
      System.setProperty("org.apache.avro.SERIALIZABLE_PACKAGES", "dev.distillery.schemas");
    }
    Vertx vertx = ProcessMetrics.vertx();
    try {
      ServiceConfig config = ServiceConfig.load(service);
      List<StageService<?>> deployed = stages.apply(config);
      for (StageService<?> stage : deployed) {
        vertx.deployVerticle(stage).await(5, TimeUnit.MINUTES);
      }
      int port = new ManagementServer(vertx, config.managementPort()).start(deployed).await(1, TimeUnit.MINUTES);
      LOG.info("{} running; management on port {}", service, port);
      Runtime.getRuntime().addShutdownHook(new Thread(() -> {
        try {
          vertx.close().await(1, TimeUnit.MINUTES);
        } catch (Exception e) {
          LOG.warn("{} did not stop cleanly", service, e);
        }
      }, service + "-shutdown"));
    } catch (Exception e) {
      LOG.error("{} failed to start", service, e);
      vertx.close();
      System.exit(1);
    }
  }
}
