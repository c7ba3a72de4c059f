package dev.distillery.cli;

import dev.distillery.schemas.JobCancellation;
import dev.distillery.schemas.JobFailure;
import dev.distillery.schemas.JobProgress;
import dev.distillery.schemas.JobResult;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.kafka.Topic;
import dev.distillery.schemas.kafka.Topics;
import dev.distillery.schemas.kafka.WireFormat;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Follows jobs on the progress, results, failures and cancellations topics, as any pipeline or
 * dashboard can: it reads the topics from the beginning without joining a consumer group.
 *
 * <p>What it holds is bounded. Records of the job being awaited are handed on as they are read. A
 * watcher made {@link #forJob for one job} keeps nothing of other jobs; one made for any job keeps,
 * of each job nobody awaits yet, what a later {@link #await} needs: at most {@link #KEPT_PER_JOB}
 * events, the oldest progress going first, and once the job has ended only its ending and the latest
 * progress of each stage.
 */
public final class JobWatcher implements AutoCloseable {
  /** Events kept of a job nobody awaits yet. */
  static final int KEPT_PER_JOB = 256;
  /** How long a watcher reads on after a job's end for the progress published before it. */
  private static final Duration CATCH_UP = Duration.ofSeconds(5);
  private static final Logger LOG = LoggerFactory.getLogger(JobWatcher.class);

  /** How a job ended: exactly one of {@code result}, {@code failure} and {@code cancellation} is set. */
  public record Outcome(JobResult result, JobFailure failure, JobCancellation cancellation) {}

  private final KafkaConsumer<String, byte[]> consumer;
  /** The one job this watcher follows, or null for any. */
  private final String only;
  private final WireFormat wire;
  /** Events of jobs nobody is waiting for yet, so a later {@link #await} still sees them. */
  private final Map<String, Backlog> backlog = new HashMap<>();

  public JobWatcher(String bootstrapServers) {
    this(Map.of(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers));
  }

  /** A watcher of any job, with these Kafka client properties (bootstrap servers, security, ...). */
  public JobWatcher(Map<String, ?> kafka) {
    this(kafka, WireFormat.SINGLE_OBJECT, null);
  }

  /** A watcher of any job reading the topics as {@code wire} says (with a registry: either format). */
  public JobWatcher(Map<String, ?> kafka, WireFormat wire) {
    this(kafka, wire, null);
  }

  private JobWatcher(Map<String, ?> kafka, WireFormat wire, String only) {
    this.wire = wire;
    this.only = only;
    consumer = TopicReader.fromBeginning(kafka, "distillery-watcher-", List.of(Topics.PROGRESS.name(),
        Topics.RESULTS.name(), Topics.FAILURES.name(), Topics.CANCELLATIONS.name()));
  }

  /** A watcher of {@code jobId} alone: it keeps nothing of other jobs. */
  public static JobWatcher forJob(Map<String, ?> kafka, WireFormat wire, String jobId) {
    return new JobWatcher(kafka, wire, jobId);
  }

  /**
   * Waits for the job's result, failure or cancellation, passing each progress event of the job to
   * {@code onProgress}. The refusal of another request under the job's id ({@code refusedRequest})
   * is not the job's end: it is skipped.
   */
  public Outcome await(String jobId, Duration timeout, Consumer<JobProgress> onProgress) throws TimeoutException {
    return awaitSubmitted(jobId, Long.MAX_VALUE, timeout, onProgress);
  }

  /**
   * As {@link #await}, for a request sent at {@code sentAtMs}: a refusal from then on (its id was
   * used already) is its answer.
   */
  public Outcome awaitSubmitted(String jobId, long sentAtMs, Duration timeout, Consumer<JobProgress> onProgress)
      throws TimeoutException {
    if (only != null && !only.equals(jobId)) {
      throw new IllegalArgumentException("this watcher follows job " + only + ", not " + jobId);
    }
    Backlog kept = backlog.remove(jobId);
    Deque<Object> mine = kept == null ? new ArrayDeque<>() : kept.events;
    long deadline = System.nanoTime() + timeout.toNanos();
    while (true) {
      for (Object event; (event = mine.poll()) != null; ) {
        Outcome outcome = event instanceof JobResult result ? new Outcome(result, null, null)
            : event instanceof JobCancellation cancellation ? new Outcome(null, null, cancellation)
            : event instanceof JobFailure failure && (!failure.getRefusedRequest() || failure.getTimestampMs() >= sentAtMs)
                ? new Outcome(null, failure, null) : null;
        if (event instanceof JobProgress progress) {
          onProgress.accept(progress);
        } else if (outcome != null) {
          // The topics are read side by side: progress published before the ending may not be read yet.
          readToTheEnd(jobId, mine);
          mine.stream().filter(JobProgress.class::isInstance).map(JobProgress.class::cast).forEach(onProgress);
          return outcome;
        }
      }
      if (System.nanoTime() > deadline) {
        throw new TimeoutException("job " + jobId + " did not finish within " + timeout);
      }
      route(consumer.poll(Duration.ofMillis(200)), jobId, mine);
    }
  }

  /** Reads on until every topic is read to where it ended now (a few seconds at most). */
  private void readToTheEnd(String jobId, Deque<Object> mine) {
    long deadline = System.nanoTime() + CATCH_UP.toNanos();
    try {
      Map<TopicPartition, Long> ends = consumer.endOffsets(consumer.assignment(), CATCH_UP);
      while (System.nanoTime() < deadline
          && !ends.entrySet().stream().allMatch(e -> consumer.position(e.getKey(), CATCH_UP) >= e.getValue())) {
        route(consumer.poll(Duration.ofMillis(100)), jobId, mine);
      }
    } catch (org.apache.kafka.common.errors.TimeoutException e) {
      LOG.debug("stopped reading on after the job's end: {}", e.getMessage());
    }
  }

  /** The job's events to {@code mine}, others' to their backlog (when this watcher follows any job). */
  private void route(Iterable<ConsumerRecord<String, byte[]>> records, String jobId, Deque<Object> mine) {
    for (ConsumerRecord<String, byte[]> record : records) {
      Object event = decode(record);
      if (event == null) {
        continue;
      }
      if (record.key().equals(jobId)) {
        mine.add(event);
      } else if (only == null) {
        backlog.computeIfAbsent(record.key(), id -> new Backlog()).add(event);
      }
    }
  }

  /** The record's event, or null for one without a key or that cannot be decoded (skipped, as job-status skips it). */
  private Object decode(ConsumerRecord<String, byte[]> record) {
    if (record.key() == null || record.value() == null) {
      return null;
    }
    Topic<?> topic = record.topic().equals(Topics.PROGRESS.name()) ? Topics.PROGRESS
        : record.topic().equals(Topics.RESULTS.name()) ? Topics.RESULTS
        : record.topic().equals(Topics.FAILURES.name()) ? Topics.FAILURES : Topics.CANCELLATIONS;
    try {
      return wire.of(topic).valueSerde().deserializer().deserialize(record.topic(), record.value());
    } catch (RuntimeException e) {
      LOG.debug("skipped an unreadable record at {}-{}@{}", record.topic(), record.partition(), record.offset(), e);
      return null;
    }
  }

  /** The events of one job kept for a later {@link #await}: bounded, and summarised once the job ended. */
  private static final class Backlog {
    final Deque<Object> events = new ArrayDeque<>();
    boolean ended;

    void add(Object event) {
      events.add(event);
      ended |= event instanceof JobResult || event instanceof JobCancellation
          || event instanceof JobFailure failure && !failure.getRefusedRequest();
      if (ended) {
        latestProgressOnly();
      }
      if (events.size() > KEPT_PER_JOB) {
        Iterator<Object> oldest = events.iterator();
        while (oldest.hasNext()) {
          if (oldest.next() instanceof JobProgress) {
            oldest.remove();
            return;
          }
        }
        events.removeFirst();
      }
    }

    /** Of the progress events, only the latest of each stage stays. */
    private void latestProgressOnly() {
      Map<Stage, JobProgress> latest = new EnumMap<>(Stage.class);
      events.forEach(e -> {
        if (e instanceof JobProgress p) {
          latest.put(p.getStage(), p);
        }
      });
      events.removeIf(e -> e instanceof JobProgress p && latest.get(p.getStage()) != p);
    }
  }

  @Override
  public void close() {
    consumer.close();
  }
}
