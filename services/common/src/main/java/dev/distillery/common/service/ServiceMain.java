package dev.distillery.common.service;

import dev.distillery.common.config.ServiceConfig;
import io.vertx.core.Deployable;
import io.vertx.core.Vertx;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Runs one service as a process: configuration from the environment, exit 1 if it cannot start. */
public final class ServiceMain {
  private static final Logger LOG = LoggerFactory.getLogger(ServiceMain.class);

  private ServiceMain() {}

  public static void run(String service, Function<ServiceConfig, ? extends Deployable> factory) {
    // Avro reads its trusted packages once; set them before anything touches a generated record.
    if (System.getProperty("org.apache.avro.SERIALIZABLE_PACKAGES") == null) {
      System.setProperty("org.apache.avro.SERIALIZABLE_PACKAGES", "dev.distillery.schemas");
    }
    Vertx vertx = Vertx.vertx();
    try {
      ServiceConfig config = ServiceConfig.load(service);
      String id = vertx.deployVerticle(factory.apply(config)).await(5, TimeUnit.MINUTES);
      Runtime.getRuntime().addShutdownHook(new Thread(() -> {
        try {
          vertx.undeploy(id).compose(v -> vertx.close()).await(30, TimeUnit.SECONDS);
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
