package dev.distillery.common.kafka;

import dev.distillery.common.config.ServiceConfig;
import dev.distillery.schemas.JobCancellation;
import dev.distillery.schemas.JobFailure;
import dev.distillery.schemas.kafka.SchemaRegistry;
import dev.distillery.schemas.kafka.Topics;
import dev.distillery.schemas.kafka.WireFormat;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.SerializationException;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Which jobs have ended, as every process must know to stop their work wherever it runs: reads
 * {@code distillery.cancellations} and {@code distillery.failures} from their beginning, on all
 * partitions and without a consumer group (every replica needs every record), on its own thread.
 * Refusals of a request ({@code refusedRequest}) say nothing about the job and are skipped.
 */
public final class JobSignals implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(JobSignals.class);
  /** Job ids remembered; the oldest are forgotten past this (their records are long finished). */
  private static final int REMEMBERED = 200_000;
  private static final Duration POLL = Duration.ofMillis(200);

  /** How a job ended: cancelled, or failed in some stage; {@code reason} says it for a person. */
  public record Ending(boolean cancelled, String reason) {}

  private final Map<String, Ending> ended = new LinkedHashMap<>(1024, 0.75f, false) {
    @Override
    protected boolean removeEldestEntry(Map.Entry<String, Ending> eldest) {
      return size() > REMEMBERED;
    }
  };
  private final KafkaConsumer<String, byte[]> consumer;
  private final WireFormat wire;
  private final Thread thread;
  private volatile boolean running = true;
  private volatile boolean caughtUp;

  public JobSignals(ServiceConfig config) {
    Map<String, Object> props = new HashMap<>(config.kafka());
    props.remove(ConsumerConfig.GROUP_ID_CONFIG);
    props.put(ConsumerConfig.CLIENT_ID_CONFIG, config.service() + "-signals");
    props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    this.consumer = new KafkaConsumer<>(props, new StringDeserializer(), new ByteArrayDeserializer());
    this.wire = config.wire();
    this.thread = new Thread(this::run, config.service() + "-signals");
    thread.setDaemon(true);
  }

  public JobSignals start() {
    thread.start();
    return this;
  }

  /** How {@code jobId} ended, if it did (as far as read so far). */
  public Optional<Ending> ended(String jobId) {
    if (jobId == null) {
      return Optional.empty();
    }
    synchronized (ended) {
      return Optional.ofNullable(ended.get(jobId));
    }
  }

  /** Records an ending this process decided itself, before its event comes back from the topic. */
  public void markEnded(String jobId, Ending ending) {
    synchronized (ended) {
      ended.putIfAbsent(jobId, ending);
    }
  }

  /** True once every record that was on the topics when reading began has been read. */
  public boolean caughtUp() {
    return caughtUp;
  }

  private void run() {
    try {
      List<TopicPartition> partitions = partitions();
      if (partitions == null) {
        return;
      }
      consumer.assign(partitions);
      consumer.seekToBeginning(partitions);
      Map<TopicPartition, Long> ends = endOffsets(partitions);
      while (running) {
        try {
          for (ConsumerRecord<String, byte[]> record : consumer.poll(POLL)) {
            read(record);
          }
          if (!caughtUp && ends != null && ends.entrySet().stream()
              .allMatch(e -> consumer.position(e.getKey(), POLL) >= e.getValue())) {
            caughtUp = true;
          }
        } catch (org.apache.kafka.common.errors.RetriableException e) {
          // The broker is away: read on when it is back.
          LOG.debug("job signals: {}", e.toString());
        }
      }
    } catch (WakeupException e) {
      // closing
    } catch (RuntimeException e) {
      LOG.error("job signals stopped: cancellations are no longer seen by this process", e);
    } finally {
      consumer.close();
    }
  }

  /** The partitions of both topics, waiting while the broker is away or the topics do not exist yet. */
  private List<TopicPartition> partitions() {
    while (running) {
      try {
        List<TopicPartition> all = new ArrayList<>();
        for (String topic : List.of(Topics.CANCELLATIONS.name(), Topics.FAILURES.name())) {
          for (PartitionInfo info : consumer.partitionsFor(topic, Duration.ofSeconds(10))) {
            all.add(new TopicPartition(info.topic(), info.partition()));
          }
        }
        if (all.stream().map(TopicPartition::topic).distinct().count() == 2) {
          return all;
        }
      } catch (org.apache.kafka.common.errors.TimeoutException e) {
        LOG.debug("job signals: topics not readable yet: {}", e.getMessage());
      }
      if (!pause()) {
        return null;
      }
    }
    return null;
  }

  /** Waits a second, or less when closed; false if interrupted. */
  private synchronized boolean pause() {
    try {
      wait(1_000);
      return true;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return false;
    }
  }

  private Map<TopicPartition, Long> endOffsets(List<TopicPartition> partitions) {
    try {
      return consumer.endOffsets(partitions, Duration.ofSeconds(30));
    } catch (org.apache.kafka.common.errors.TimeoutException e) {
      return null; // never "caught up": readiness does not depend on it
    }
  }

  /** Reads one signal; while the schema registry is away, waits for it rather than miss a cancellation. */
  private void read(ConsumerRecord<String, byte[]> record) {
    while (running) {
      try {
        signal(record);
        return;
      } catch (SerializationException e) {
        LOG.debug("job signals: skipping {}-{}@{}: {}", record.topic(), record.partition(), record.offset(),
            e.getMessage());
        return;
      } catch (SchemaRegistry.Unavailable e) {
        LOG.warn("job signals: {}; retrying in a second", e.getMessage());
        if (!pause()) {
          return;
        }
      }
    }
  }

  private void signal(ConsumerRecord<String, byte[]> record) {
    if (record.topic().equals(Topics.CANCELLATIONS.name())) {
      JobCancellation cancel = wire.of(Topics.CANCELLATIONS).valueSerde().deserializer()
          .deserialize(record.topic(), record.value());
      if (cancel != null) {
        markEnded(cancel.getJobId(), new Ending(true, "cancelled" + (cancel.getReason().isBlank() ? "" : ": " + cancel.getReason())));
      }
    } else {
      JobFailure failure = wire.of(Topics.FAILURES).valueSerde().deserializer()
          .deserialize(record.topic(), record.value());
      if (failure != null && !failure.getRefusedRequest()) {
        markEnded(failure.getJobId(), new Ending(false, "failed in " + failure.getStage() + ": " + failure.getReason()));
      }
    }
  }

  @Override
  public void close() {
    running = false;
    synchronized (this) {
      notifyAll();
    }
    if (thread.isAlive()) {
      consumer.wakeup();
      try {
        thread.join(10_000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    } else {
      consumer.close();
    }
  }
}
