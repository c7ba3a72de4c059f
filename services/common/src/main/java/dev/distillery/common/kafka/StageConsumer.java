package dev.distillery.common.kafka;

import dev.distillery.common.service.StageMetrics;
import dev.distillery.schemas.kafka.Topic;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Queue;
import java.util.Set;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.function.Supplier;
import org.apache.avro.generic.GenericRecord;
import org.apache.kafka.clients.consumer.CommitFailedException;
import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.RebalanceInProgressException;
import org.apache.kafka.common.errors.RetriableException;
import org.apache.kafka.common.errors.SerializationException;
import org.apache.kafka.common.errors.WakeupException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The consumer loop of a stage, on its own thread: decodes each record of the input topic, hands
 * it to the {@link RecordHandler}, pauses while the handler is busy, and commits an offset only
 * once the record and all before it on its partition have their outputs. Undecodable records go
 * to the dead-letter topic and the loop goes on.
 *
 * <p>Faults: records of a job that ended (cancelled, failed elsewhere) are skipped; each job's
 * attempts are kept with the committed offsets ({@link Attempts}), and a job started more than
 * {@link JobGate#maxAttempts()} times by processes that died on it is given up ({@link
 * JobGate#abandon}); a commit the broker could not take is retried at the next poll; and whatever
 * ends the loop (a broker away, outputs that could not be published) closes the consumer and
 * starts a new one after a back-off, which re-delivers what was not committed. Only {@link #stop}
 * ends the thread.
 */
public final class StageConsumer<V> implements Runnable {
  private static final Logger LOG = LoggerFactory.getLogger(StageConsumer.class);
  private static final Duration POLL = Duration.ofMillis(100);
  /** How often the lag is read: it takes a broker round trip, and tells whether the broker answers. */
  private static final Duration LAG_INTERVAL = Duration.ofSeconds(5);
  private static final Duration LAG_TIMEOUT = Duration.ofSeconds(5);
  private static final Duration COMMITTED_TIMEOUT = Duration.ofSeconds(15);
  private static final Duration FIRST_RESTART = Duration.ofSeconds(1);
  private static final Duration LAST_RESTART = Duration.ofSeconds(30);

  /** One record's end: {@code error} when even its failure event could not be published. */
  private record Finished(int generation, TopicPartition partition, long offset, String jobId, Throwable error) {}

  /** The jobs started on one partition and not finished, with their attempts. */
  private static final class PartitionJobs {
    /** Attempts as read from the committed offset's metadata when the partition was assigned. */
    Map<String, Integer> before = Map.of();
    final Map<String, Integer> attempts = new LinkedHashMap<>();
    final Map<String, Integer> unfinishedRecords = new HashMap<>();
    boolean changed;
  }

  private final Supplier<Consumer<String, byte[]>> consumers;
  private final Topic<V> input;
  private final RecordHandler<V> handler;
  private final DeadLetters deadLetters;
  private final StageMetrics metrics;
  private final JobGate gate;
  private final Queue<ConsumerRecord<String, byte[]>> waiting = new ArrayDeque<>();
  private final Map<TopicPartition, PartitionJobs> jobs = new HashMap<>();
  /** Commits the broker did not take yet (it was away): retried at the next poll. */
  private final Map<TopicPartition, OffsetAndMetadata> unsentCommits = new HashMap<>();
  private long nextLagReading;
  /** Time spent fetching (not paused), for {@link RecordHandler#expire}. */
  private long fetchingNanos;
  private long lastTickNanos = System.nanoTime();
  private boolean fetching;
  private final Queue<Finished> finished = new ConcurrentLinkedQueue<>();
  private final OffsetTracker offsets = new OffsetTracker();
  private final CountDownLatch stopped = new CountDownLatch(1);
  private Consumer<String, byte[]> consumer;
  /** Counts consumers: a record finished for an older one is not this one's to commit. */
  private volatile int generation;
  private volatile boolean started;
  private volatile boolean running = true;
  private volatile boolean joined;
  private volatile boolean brokerAnswers = true;
  private volatile int restarts;
  /** Set while a failed consumer closes: closing revokes its partitions, but that is no hand-over. */
  private boolean failing;

  public StageConsumer(Supplier<Consumer<String, byte[]>> consumers, Topic<V> input, RecordHandler<V> handler,
      DeadLetters deadLetters, StageMetrics metrics, JobGate gate) {
    this.consumers = consumers;
    this.input = input;
    this.handler = handler;
    this.deadLetters = deadLetters;
    this.metrics = metrics;
    this.gate = gate;
  }

  @Override
  public void run() {
    started = true;
    Duration backOff = FIRST_RESTART;
    try {
      while (running) {
        long began = System.nanoTime();
        try {
          consume();
        } catch (WakeupException e) {
          // stop() woke the consumer
        } catch (Throwable e) {
          LOG.error("{} consumer failed; a new one starts in {} and uncommitted records are re-delivered",
              input.name(), backOff, e);
          restarts++;
          failing = true;
        } finally {
          joined = false;
          closeConsumer();
          failing = false;
        }
        if (!running) {
          break;
        }
        // A loop that ran a while before it failed starts again soon; one that keeps failing, less often.
        backOff = System.nanoTime() - began > LAST_RESTART.toNanos() ? FIRST_RESTART
            : Duration.ofMillis(Math.min(LAST_RESTART.toMillis(), backOff.toMillis() * 2));
        synchronized (this) {
          if (running) {
            wait(backOff.toMillis());
          }
        }
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } finally {
      stopped.countDown();
    }
  }

  /** One consumer's life: subscribe, loop until stopped or failed, then commit what finished. */
  private void consume() {
    generation++;
    offsets.clear();
    waiting.clear();
    jobs.clear();
    unsentCommits.clear();
    finished.clear();
    consumer = consumers.get();
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
        readLag();
      }
    }
    settleFinished();
    handOver(consumer.assignment());
  }

  private void closeConsumer() {
    if (consumer != null) {
      try {
        consumer.close(Duration.ofSeconds(10));
      } catch (RuntimeException e) {
        LOG.warn("{}: closing the consumer: {}", input.name(), e.toString());
      }
      consumer = null;
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
   * and unlike the fetcher's own lag, it stays right while the consumer is paused. Whether the
   * broker answered says whether the stage is ready.
   */
  private void readLag() {
    try {
      Set<TopicPartition> assigned = consumer.assignment();
      long lag = waiting.size() + offsets.inProgress();
      for (Map.Entry<TopicPartition, Long> end : consumer.endOffsets(assigned, LAG_TIMEOUT).entrySet()) {
        lag += Math.max(0, end.getValue() - consumer.position(end.getKey(), LAG_TIMEOUT));
      }
      metrics.setConsumerLag(lag);
      brokerAnswers = true;
    } catch (org.apache.kafka.common.errors.TimeoutException e) {
      brokerAnswers = false;
      LOG.debug("{}: lag not read this time: {}", input.name(), e.getMessage());
    }
  }

  /** Stops the loop after the current poll, commits what is finished, and waits for it to end. */
  public void stop() throws InterruptedException {
    running = false;
    if (!started) {
      return;
    }
    synchronized (this) {
      notifyAll();
    }
    Consumer<String, byte[]> current = consumer;
    if (current != null) {
      current.wakeup();
    }
    stopped.await();
  }

  /** True once the consumer joined its group (with or without partitions), polls, and the broker answers. */
  public boolean ready() {
    return joined && running && brokerAnswers;
  }

  /** The loop runs (a failed consumer is replaced, so this stays true until {@link #stop}). */
  public boolean healthy() {
    return !running || stopped.getCount() > 0;
  }

  /** How many times a failed consumer was replaced. */
  public int restarts() {
    return restarts;
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
        whenDone(partition, record, null, deadLetters.send(record, e.getMessage()));
        continue;
      }
      String jobId = jobIdOf(value);
      if (jobId != null && gate.ended(jobId)) {
        finished.add(new Finished(generation, partition, record.offset(), null, null)); // nothing more to do for it
        continue;
      }
      int attempt = jobId == null ? 1 : attempt(partition, jobId);
      if (attempt > gate.maxAttempts()) {
        LOG.warn("job {}: given up after {} attempts that ended with their process", jobId, attempt - 1);
        whenDone(partition, record, null, gate.abandon(record, jobId, attempt - 1));
        continue;
      }
      CompletionStage<?> outputs;
      try {
        outputs = handler.handle(jobId == null ? record : Attempts.withAttempt(record, attempt), value);
      } catch (RuntimeException e) {
        // A record the stage cannot even start on must not stop the partition behind it.
        LOG.warn("dead-lettering {}-{}@{}: {}", record.topic(), record.partition(), record.offset(), e.toString());
        metrics.deadLettered();
        outputs = deadLetters.send(record, "rejected by " + input.name() + " handler: " + e);
      }
      whenDone(partition, record, jobId, outputs);
    }
  }

  private void whenDone(TopicPartition partition, ConsumerRecord<String, byte[]> record, String jobId,
      CompletionStage<?> outputs) {
    int current = generation;
    outputs.whenComplete((ok, error) -> finished.add(new Finished(current, partition, record.offset(), jobId, error)));
  }

  /**
   * The attempt a record of {@code jobId} starts: the job's current one when it is already in
   * progress on the partition, else one more than the attempts the last process kept in Kafka.
   */
  private int attempt(TopicPartition partition, String jobId) {
    PartitionJobs partitionJobs = jobs.computeIfAbsent(partition, p -> new PartitionJobs());
    partitionJobs.unfinishedRecords.merge(jobId, 1, Integer::sum);
    Integer current = partitionJobs.attempts.get(jobId);
    if (current != null) {
      return current;
    }
    int attempt = partitionJobs.before.getOrDefault(jobId, 0) + 1;
    if (attempt > 1) {
      LOG.info("job {}: attempt {} on {} (a consumer ended while working on it)", jobId, attempt, partition);
    }
    if (attempt <= gate.maxAttempts()) {
      partitionJobs.attempts.put(jobId, attempt);
      partitionJobs.changed = true;
      // Kept before the work starts: if it kills the process, the next one counts it.
      commit(Map.of(partition, new OffsetAndMetadata(offsets.head(partition), Attempts.format(partitionJobs.attempts))));
    } else {
      partitionJobs.unfinishedRecords.merge(jobId, -1, Integer::sum);
    }
    return attempt;
  }

  private static String jobIdOf(Object value) {
    if (value instanceof GenericRecord record && record.getSchema().getField("jobId") != null) {
      Object id = record.get("jobId");
      return id == null ? null : id.toString();
    }
    return null;
  }

  private void settleFinished() {
    for (Finished done; (done = finished.poll()) != null; ) {
      if (done.generation() != generation) {
        continue; // finished for a consumer that is gone: its records come again
      }
      if (done.error() != null) {
        // The outputs of this record could not be written: committing past it would lose it.
        throw new KafkaException("outputs of " + done.partition() + "@" + done.offset()
            + " could not be published", done.error());
      }
      offsets.finished(done.partition(), done.offset());
      PartitionJobs partitionJobs = jobs.get(done.partition());
      if (done.jobId() != null && partitionJobs != null
          && partitionJobs.unfinishedRecords.merge(done.jobId(), -1, Integer::sum) <= 0) {
        partitionJobs.unfinishedRecords.remove(done.jobId());
        partitionJobs.attempts.remove(done.jobId());
        partitionJobs.changed = true;
      }
    }
    Map<TopicPartition, OffsetAndMetadata> commits = new HashMap<>(unsentCommits);
    offsets.committable().forEach((partition, offset) -> commits.put(partition, withAttempts(partition, offset.offset())));
    jobs.forEach((partition, partitionJobs) -> {
      if (partitionJobs.changed && !commits.containsKey(partition)) {
        commits.put(partition, withAttempts(partition, offsets.head(partition)));
      }
      partitionJobs.changed = false;
    });
    commit(commits);
  }

  private OffsetAndMetadata withAttempts(TopicPartition partition, long offset) {
    PartitionJobs partitionJobs = jobs.get(partition);
    return new OffsetAndMetadata(offset, partitionJobs == null ? "" : Attempts.format(partitionJobs.attempts));
  }

  private void commit(Map<TopicPartition, OffsetAndMetadata> commits) {
    commits.values().removeIf(offset -> offset.offset() < 0);
    if (commits.isEmpty()) {
      return;
    }
    try {
      consumer.commitSync(commits);
      unsentCommits.keySet().removeAll(commits.keySet());
    } catch (CommitFailedException | RebalanceInProgressException e) {
      // The partitions moved on: their new owner re-processes from the last commit.
      LOG.warn("commit of {} failed during a rebalance: {}", commits.keySet(), e.getMessage());
      unsentCommits.keySet().removeAll(commits.keySet());
    } catch (RetriableException e) {
      // The broker is away: nothing is lost by committing later.
      LOG.warn("commit of {} not taken yet ({}); retried at the next poll", commits.keySet(), e.toString());
      unsentCommits.putAll(commits);
    }
  }

  /**
   * Partitions leave this consumer on purpose (a rebalance, a stop): the attempts of their jobs in
   * progress are kept one lower, since leaving is not the job's doing.
   */
  private void handOver(Collection<TopicPartition> partitions) {
    Map<TopicPartition, OffsetAndMetadata> commits = new HashMap<>();
    for (TopicPartition partition : partitions) {
      PartitionJobs partitionJobs = jobs.remove(partition);
      if (partitionJobs == null || partitionJobs.attempts.isEmpty()) {
        continue;
      }
      Map<String, Integer> counted = new LinkedHashMap<>();
      partitionJobs.attempts.forEach((jobId, attempt) -> counted.put(jobId, attempt - 1));
      commits.put(partition, new OffsetAndMetadata(offsets.head(partition), Attempts.format(counted)));
    }
    try {
      commit(commits);
    } catch (KafkaException e) {
      LOG.warn("{}: attempts of jobs handed over not kept: {}", input.name(), e.toString());
    }
  }

  private final class Rebalance implements ConsumerRebalanceListener {
    @Override
    public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
      if (failing) {
        return; // as if the process had died: the attempts in progress stay counted
      }
      settleFinished();
      handOver(partitions);
      offsets.forget(partitions);
      waiting.removeIf(r -> partitions.contains(new TopicPartition(r.topic(), r.partition())));
    }

    @Override
    public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
      if (!partitions.isEmpty()) {
        Map<TopicPartition, OffsetAndMetadata> committed = consumer.committed(Set.copyOf(partitions), COMMITTED_TIMEOUT);
        for (TopicPartition partition : partitions) {
          OffsetAndMetadata offset = committed.get(partition);
          PartitionJobs partitionJobs = new PartitionJobs();
          partitionJobs.before = Attempts.parse(offset == null ? null : offset.metadata());
          jobs.put(partition, partitionJobs);
        }
      }
      // Joined, even with no partitions: a standby replica is ready to take over.
      joined = true;
    }

    @Override
    public void onPartitionsLost(Collection<TopicPartition> partitions) {
      joined = false;
      partitions.forEach(jobs::remove);
      offsets.forget(partitions);
      waiting.removeIf(r -> partitions.contains(new TopicPartition(r.topic(), r.partition())));
    }
  }
}
