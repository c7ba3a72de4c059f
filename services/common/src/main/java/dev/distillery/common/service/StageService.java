package dev.distillery.common.service;

import dev.distillery.common.artifacts.JobClaims;
import dev.distillery.common.artifacts.JobLeases;
import dev.distillery.common.config.ServiceConfig;
import dev.distillery.common.kafka.DeadLetters;
import dev.distillery.common.kafka.JobEvents;
import dev.distillery.common.kafka.JobSignals;
import dev.distillery.common.kafka.KafkaClients;
import dev.distillery.common.kafka.RecordHandler;
import dev.distillery.common.kafka.StageConsumer;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.kafka.Topic;
import io.micrometer.core.instrument.binder.kafka.KafkaClientMetrics;
import io.vertx.core.Future;
import io.vertx.core.VerticleBase;
import java.time.Duration;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
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

  /** Builds the stage's logic, given what runs its jobs ({@link JobRunner}: workers, events, faults). */
  @FunctionalInterface
  public interface HandlerFactory<V> {
    RecordHandler<V> create(JobRunner jobs);
  }

  private final ServiceConfig config;
  private final Stage stage;
  private final boolean fenced;
  private final Topic<V> input;
  private final HandlerFactory<V> factory;
  private final StageMetrics metrics;
  private KafkaProducer<String, byte[]> producer;
  private JobEvents events;
  private Workers workers;
  private JobSignals signals;
  private JobLeases leases;
  private StageConsumer<V> stageConsumer;
  /** The Kafka clients' meters: the producer's, and the current consumer's (the loop replaces a failed one). */
  private KafkaClientMetrics producerMetrics;
  private final AtomicReference<KafkaClientMetrics> consumerMetrics = new AtomicReference<>();

  private StageService(ServiceConfig config, Stage stage, boolean fenced, Topic<V> input, HandlerFactory<V> factory) {
    this.config = config;
    this.stage = stage;
    this.fenced = fenced;
    this.input = input;
    this.factory = factory;
    this.metrics = new StageMetrics(config.service());
  }

  /**
   * A stage whose consumer group is {@code config.service()} and whose jobs are each worked on by
   * one process at a time (a lease per job, see {@link JobRunner}).
   */
  public static <V> StageService<V> fenced(ServiceConfig config, Stage stage, Topic<V> input, HandlerFactory<V> factory) {
    return new StageService<>(config, stage, true, input, factory);
  }

  /** A stage whose replicas share the records of one job (the shards of a job's labelling). */
  public static <V> StageService<V> shared(ServiceConfig config, Stage stage, Topic<V> input, HandlerFactory<V> factory) {
    return new StageService<>(config, stage, false, input, factory);
  }

  @Override
  public Future<?> start() {
    // Loading libtorch and creating Kafka clients (DNS, threads) block: not on the event loop.
    return vertx.executeBlocking(() -> {
      DjlRuntime.start(config.torchThreads());
      metrics.bindTo(ProcessMetrics.of(vertx));
      producer = KafkaClients.producer(config);
      producerMetrics = ProcessMetrics.bind(vertx, producer);
      events = new JobEvents(producer, config.wire(), metrics::progressed);
      workers = new Workers(vertx, config.service() + "-worker", config.workerThreads());
      signals = new JobSignals(config).start();
      leases = new JobLeases(config.artifactsDir(), config.reliability().lease());
      DeadLetters deadLetters = new DeadLetters(events, config.service());
      JobRunner jobs = new JobRunner(config.service(), stage, fenced, config.reliability(), events, workers, metrics,
          signals, leases, new JobClaims(config.artifactsDir()), deadLetters);
      stageConsumer = new StageConsumer<>(this::consumer, config.wire().of(input),
          pausedWhileWorkersFull(factory.create(jobs)), deadLetters, metrics, jobs);
      Thread thread = new Thread(stageConsumer, config.service() + "-consumer");
      thread.setDaemon(true);
      thread.start();
      LOG.info("{} consuming {}", config.service(), input.name());
      return null;
    }).onFailure(error -> closeClients());
  }

  /** A new consumer for the stage's loop, its meters replacing those of the one it replaces. */
  private KafkaConsumer<String, byte[]> consumer() {
    KafkaConsumer<String, byte[]> consumer = KafkaClients.consumer(config);
    KafkaClientMetrics replaced = consumerMetrics.getAndSet(ProcessMetrics.bind(vertx, consumer));
    if (replaced != null) {
      replaced.close();
    }
    return consumer;
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
    if (producerMetrics != null) {
      producerMetrics.close();
    }
    KafkaClientMetrics consumer = consumerMetrics.getAndSet(null);
    if (consumer != null) {
      consumer.close();
    }
    if (workers != null) {
      workers.close();
    }
    if (signals != null) {
      signals.close();
    }
    if (leases != null) {
      leases.close();
    }
    if (producer != null) {
      producer.close();
    }
    if (events != null) {
      events.close();
    }
  }

  /** False only if the consumer loop ended without being stopped: the process should be restarted. */
  public boolean healthy() {
    return stageConsumer == null || stageConsumer.healthy();
  }

  /**
   * True while the consumer is in its group, polls and hears from the broker: the stage takes work
   * when given partitions. False while the broker is away or a failed consumer is being replaced.
   */
  public boolean ready() {
    return stageConsumer != null && stageConsumer.ready();
  }

  public StageMetrics metrics() {
    return metrics;
  }
}
