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
  private KafkaProducer<String, byte[]> producer;
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
    // Loading libtorch takes seconds: not on the event loop.
    return vertx.executeBlocking(() -> DjlRuntime.start(config.torchThreads())).compose(engine -> {
      producer = KafkaClients.producer(config);
      JobEvents events = new JobEvents(producer);
      workers = new Workers(vertx, config.service() + "-worker", config.workerThreads());
      stageConsumer = new StageConsumer<>(KafkaClients.consumer(config), input, handler(events, workers),
          new DeadLetters(events, config.service()), metrics);
      Thread thread = new Thread(stageConsumer, config.service() + "-consumer");
      thread.setDaemon(true);
      thread.start();
      management = new ManagementServer(vertx, config.managementPort());
      return management.start(stageConsumer::healthy, stageConsumer::ready, metrics);
    }).onSuccess(port -> {
      managementPort = port;
      LOG.info("{} consuming {}; management on port {}", config.service(), input.name(), port);
    });
  }

  @Override
  public Future<?> stop() {
    return vertx.executeBlocking(() -> {
      stageConsumer.stop();
      workers.close();
      producer.close();
      return null;
    }).compose(v -> management.stop());
  }

  /** True once the consumer has partitions: the service takes work. */
  public boolean ready() {
    return stageConsumer != null && stageConsumer.ready();
  }

  public int managementPort() {
    return managementPort;
  }
}
