package dev.distillery.common.service;

import dev.distillery.common.config.ServiceConfig;
import dev.distillery.common.kafka.DeadLetters;
import dev.distillery.common.kafka.JobEvents;
import dev.distillery.common.kafka.KafkaClients;
import dev.distillery.common.kafka.RecordHandler;
import dev.distillery.common.kafka.StageConsumer;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.schemas.kafka.Topic;
import io.vertx.core.Future;
import java.time.Duration;
import io.vertx.core.VerticleBase;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A pipeline stage as a verticle: a consumer loop on its own thread reading the stage's input
 * topic, DJL work on a bounded worker pool, and a management HTTP port. Start completes once the
 * management port listens; stop tears down in reverse order.
 */
public abstract class StageService<V> extends VerticleBase {
  private static final Logger LOG = LoggerFactory.getLogger(StageService.class);

  protected final ServiceConfig config;
  private final Topic<V> input;
  protected final StageMetrics metrics;
  private static final Duration SHUTDOWN_GRACE = Duration.ofSeconds(30);

  private KafkaProducer<String, byte[]> producer;
  private JobEvents events;
  private Workers workers;
  private StageConsumer<V> stageConsumer;
  private ManagementServer management;
  private int managementPort;

  protected StageService(ServiceConfig config, Topic<V> input) {
    this.config = config;
    this.input = input;
    this.metrics = new StageMetrics(config.service());
  }

  /** The stage's logic, given where to publish and where to run heavy work. */
  protected abstract RecordHandler<V> handler(JobEvents events, Workers workers);

  @Override
  public Future<?> start() {
    // Loading libtorch and creating Kafka clients (DNS, threads) block: not on the event loop.
    return vertx.executeBlocking(() -> {
      DjlRuntime.start(config.torchThreads());
      producer = KafkaClients.producer(config);
      events = new JobEvents(producer);
      workers = new Workers(vertx, config.service() + "-worker", config.workerThreads());
      stageConsumer = new StageConsumer<>(KafkaClients.consumer(config), input, handler(events, workers),
          new DeadLetters(events, config.service()), metrics);
      return stageConsumer;
    }).compose(consumer -> {
      management = new ManagementServer(vertx, config.managementPort());
      return management.start(consumer::healthy, consumer::ready, metrics);
    }).onSuccess(port -> {
      managementPort = port;
      Thread thread = new Thread(stageConsumer, config.service() + "-consumer");
      thread.setDaemon(true);
      thread.start();
      LOG.info("{} consuming {}; management on port {}", config.service(), input.name(), port);
    }).onFailure(error -> closeClients());
  }

  /** Stops taking work, lets running jobs finish for a while, then closes the clients. */
  @Override
  public Future<?> stop() {
    return vertx.executeBlocking(() -> {
      stageConsumer.stop();
      if (!workers.awaitIdle(SHUTDOWN_GRACE)) {
        LOG.warn("{}: jobs still running after {}; they will be re-delivered", config.service(), SHUTDOWN_GRACE);
      }
      closeClients();
      return null;
    }).compose(v -> management.stop());
  }

  private void closeClients() {
    if (workers != null) {
      workers.close();
    }
    if (producer != null) {
      producer.close();
    }
    if (events != null) {
      events.close();
    }
  }

  /** True once the consumer has partitions: the service takes work. */
  public boolean ready() {
    return stageConsumer != null && stageConsumer.ready();
  }

  public int managementPort() {
    return managementPort;
  }
}
