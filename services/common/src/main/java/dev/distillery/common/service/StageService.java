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
import java.time.Duration;
import java.util.concurrent.CompletionStage;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One pipeline stage as a verticle: a consumer loop on its own thread reading the stage's input
 * topic in the stage's consumer group, and the stage's DJL work on a bounded worker pool. A
 * service process deploys one or more stages and serves their health on one management port
 * ({@link ServiceMain}).
 */
public final class StageService<V> extends VerticleBase {
  private static final Logger LOG = LoggerFactory.getLogger(StageService.class);
  private static final Duration SHUTDOWN_GRACE = Duration.ofSeconds(30);

  /** Builds the stage's logic, given where to publish and where to run heavy work. */
  @FunctionalInterface
  public interface HandlerFactory<V> {
    RecordHandler<V> create(JobEvents events, Workers workers, StageMetrics metrics);
  }

  private final ServiceConfig config;
  private final Topic<V> input;
  private final HandlerFactory<V> factory;
  private final StageMetrics metrics;
  private KafkaProducer<String, byte[]> producer;
  private JobEvents events;
  private Workers workers;
  private StageConsumer<V> stageConsumer;

  /** A stage whose consumer group is {@code config.service()}. */
  public StageService(ServiceConfig config, Topic<V> input, HandlerFactory<V> factory) {
    this.config = config;
    this.input = input;
    this.factory = factory;
    this.metrics = new StageMetrics(config.service());
  }

  @Override
  public Future<?> start() {
    // Loading libtorch and creating Kafka clients (DNS, threads) block: not on the event loop.
    return vertx.executeBlocking(() -> {
      DjlRuntime.start(config.torchThreads());
      producer = KafkaClients.producer(config);
      events = new JobEvents(producer, metrics::progressed);
      workers = new Workers(vertx, config.service() + "-worker", config.workerThreads());
      stageConsumer = new StageConsumer<>(KafkaClients.consumer(config), input,
          pausedWhileWorkersFull(factory.create(events, workers, metrics)), new DeadLetters(events, config.service()),
          metrics);
      Thread thread = new Thread(stageConsumer, config.service() + "-consumer");
      thread.setDaemon(true);
      thread.start();
      LOG.info("{} consuming {}", config.service(), input.name());
      return null;
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
    });
  }

  /** The one place that keeps the consumer from queueing more work than the pool has threads. */
  private RecordHandler<V> pausedWhileWorkersFull(RecordHandler<V> handler) {
    return new RecordHandler<>() {
      @Override
      public CompletionStage<?> handle(ConsumerRecord<String, byte[]> record, V value) {
        return handler.handle(record, value);
      }

      @Override
      public boolean busy() {
        return workers.full() || handler.busy();
      }

      @Override
      public void expire(long fetchingMillis) {
        handler.expire(fetchingMillis);
      }
    };
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

  /** False once the consumer loop died: the process should be restarted. */
  public boolean healthy() {
    return stageConsumer == null || stageConsumer.healthy();
  }

  /** True while the consumer is in its group and polls: the stage takes work when given partitions. */
  public boolean ready() {
    return stageConsumer != null && stageConsumer.ready();
  }

  public StageMetrics metrics() {
    return metrics;
  }
}
