package dev.distillery.common.kafka;

import dev.distillery.common.service.StageMetrics;
import dev.distillery.schemas.kafka.Topic;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.Set;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.clients.consumer.CommitFailedException;
import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.RebalanceInProgressException;
import org.apache.kafka.common.errors.SerializationException;
import org.apache.kafka.common.errors.TimeoutException;
import org.apache.kafka.common.errors.WakeupException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The consumer loop of a stage, on its own thread: decodes each record of the input topic, hands
 * it to the {@link RecordHandler}, pauses while the handler is busy, and commits an offset only
 * once the record and all before it on its partition have their outputs. Undecodable records go
 * to the dead-letter topic and the loop goes on.
 */
public final class StageConsumer<V> implements Runnable {
  private static final Logger LOG = LoggerFactory.getLogger(StageConsumer.class);
  private static final Duration POLL = Duration.ofMillis(100);
  /** How often the lag is read: it takes a broker round trip. */
  private static final Duration LAG_INTERVAL = Duration.ofSeconds(5);
  private static final Duration LAG_TIMEOUT = Duration.ofSeconds(5);

  private record Finished(TopicPartition partition, long offset, Throwable error) {}

  private final Consumer<String, byte[]> consumer;
  private final Topic<V> input;
  private final RecordHandler<V> handler;
  private final DeadLetters deadLetters;
  private final StageMetrics metrics;
  private final Queue<ConsumerRecord<String, byte[]>> waiting = new ArrayDeque<>();
  private long nextLagReading;
  /** Time spent fetching (not paused), for {@link RecordHandler#expire}. */
  private long fetchingNanos;
  private long lastTickNanos = System.nanoTime();
  private boolean fetching;
  private final Queue<Finished> finished = new ConcurrentLinkedQueue<>();
  private final OffsetTracker offsets = new OffsetTracker();
  private final CountDownLatch stopped = new CountDownLatch(1);
  private volatile boolean started;
  private volatile boolean running = true;
  private volatile boolean joined;
  private volatile Throwable failure;

  public StageConsumer(Consumer<String, byte[]> consumer, Topic<V> input, RecordHandler<V> handler,
      DeadLetters deadLetters, StageMetrics metrics) {
    this.consumer = consumer;
    this.input = input;
    this.handler = handler;
    this.deadLetters = deadLetters;
    this.metrics = metrics;
  }

  @Override
  public void run() {
    started = true;
    try {
      consumer.subscribe(List.of(input.name()), new Rebalance());
      while (running) {
        settleFinished();
        tick();
        handler.expire(fetchingNanos / 1_000_000);
        dispatchWaiting();
        fetching = waiting.isEmpty() && !handler.busy();
        if (fetching) {
          consumer.resume(consumer.paused());
        } else {
          consumer.pause(consumer.assignment());
        }
        for (ConsumerRecord<String, byte[]> record : consumer.poll(POLL)) {
          waiting.add(record);
        }
        metrics.setInProgress(offsets.inProgress());
        if (System.nanoTime() >= nextLagReading) {
          nextLagReading = System.nanoTime() + LAG_INTERVAL.toNanos();
          try {
            metrics.setConsumerLag(lag());
          } catch (TimeoutException e) {
            LOG.debug("{}: lag not read this time: {}", input.name(), e.getMessage());
          }
        }
      }
      settleFinished();
    } catch (WakeupException e) {
      settleFinished();
    } catch (Throwable e) {
      failure = e;
      LOG.error("{} consumer stopped: uncommitted records will be re-delivered", input.name(), e);
    } finally {
      joined = false;
      consumer.close();
      stopped.countDown();
    }
  }

  /** Advances the fetching clock by the time since the last tick, if the consumer was fetching then. */
  private void tick() {
    long now = System.nanoTime();
    if (fetching) {
      fetchingNanos += now - lastTickNanos;
    }
    lastTickNanos = now;
  }

  /**
   * Records on the assigned partitions not finished yet: not fetched (end offset minus position),
   * fetched and waiting, and in progress. Like the lag of committed offsets that autoscalers read,
   * and unlike the fetcher's own lag, it stays right while the consumer is paused.
   */
  private long lag() {
    Set<TopicPartition> assigned = consumer.assignment();
    long lag = waiting.size() + offsets.inProgress();
    for (Map.Entry<TopicPartition, Long> end : consumer.endOffsets(assigned, LAG_TIMEOUT).entrySet()) {
      lag += Math.max(0, end.getValue() - consumer.position(end.getKey(), LAG_TIMEOUT));
    }
    return lag;
  }

  /** Stops the loop after the current poll, commits what is finished, and waits for it to end. */
  public void stop() throws InterruptedException {
    if (!started) {
      consumer.close();
      return;
    }
    running = false;
    consumer.wakeup();
    stopped.await();
  }

  /** True once the consumer joined its group (with or without partitions) while the loop polls. */
  public boolean ready() {
    return joined && running && failure == null;
  }

  /** False when the loop died: the service should be restarted. */
  public boolean healthy() {
    return failure == null;
  }

  private void dispatchWaiting() {
    while (!waiting.isEmpty() && !handler.busy()) {
      ConsumerRecord<String, byte[]> record = waiting.poll();
      TopicPartition partition = new TopicPartition(record.topic(), record.partition());
      offsets.started(partition, record.offset());
      metrics.consumed();
      V value;
      try {
        value = input.valueSerde().deserializer().deserialize(record.topic(), record.value());
      } catch (SerializationException e) {
        LOG.warn("dead-lettering {}-{}@{}: {}", record.topic(), record.partition(), record.offset(), e.getMessage());
        metrics.deadLettered();
        deadLetters.send(record, e.getMessage())
            .whenComplete((ok, error) -> finished.add(new Finished(partition, record.offset(), error)));
        continue;
      }
      CompletionStage<?> outputs;
      try {
        outputs = handler.handle(record, value);
      } catch (RuntimeException e) {
        // A record the stage cannot even start on must not stop the partition behind it.
        LOG.warn("dead-lettering {}-{}@{}: {}", record.topic(), record.partition(), record.offset(), e.toString());
        metrics.deadLettered();
        outputs = deadLetters.send(record, "rejected by " + input.name() + " handler: " + e);
      }
      outputs.whenComplete((ok, error) -> finished.add(new Finished(partition, record.offset(), error)));
    }
  }

  private void settleFinished() {
    for (Finished done; (done = finished.poll()) != null; ) {
      if (done.error() != null) {
        // The outputs of this record could not be written: committing past it would lose it.
        throw new IllegalStateException("outputs of " + done.partition() + "@" + done.offset()
            + " could not be published", done.error());
      }
      offsets.finished(done.partition(), done.offset());
    }
    Map<TopicPartition, OffsetAndMetadata> commits = offsets.committable();
    if (!commits.isEmpty()) {
      try {
        consumer.commitSync(commits);
      } catch (CommitFailedException | RebalanceInProgressException e) {
        // The partitions moved on: their new owner re-processes from the last commit.
        LOG.warn("commit of {} failed during a rebalance: {}", commits.keySet(), e.getMessage());
      }
    }
  }

  private final class Rebalance implements ConsumerRebalanceListener {
    @Override
    public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
      settleFinished();
      offsets.forget(partitions);
      waiting.removeIf(r -> partitions.contains(new TopicPartition(r.topic(), r.partition())));
    }

    @Override
    public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
      // Joined, even with no partitions: a standby replica is ready to take over.
      joined = true;
    }

    @Override
    public void onPartitionsLost(Collection<TopicPartition> partitions) {
      joined = false;
      offsets.forget(partitions);
      waiting.removeIf(r -> partitions.contains(new TopicPartition(r.topic(), r.partition())));
    }
  }
}
