package dev.distillery.cli;

import dev.distillery.schemas.JobFailure;
import dev.distillery.schemas.JobProgress;
import dev.distillery.schemas.JobResult;
import dev.distillery.schemas.kafka.Topics;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;

/**
 * Follows one job on the progress, results and failures topics, as any pipeline or dashboard
 * can: it reads the topics from the beginning without joining a consumer group.
 */
public final class JobWatcher implements AutoCloseable {
  /** How a job ended: exactly one of {@code result} and {@code failure} is set. */
  public record Outcome(JobResult result, JobFailure failure) {}

  private final KafkaConsumer<String, byte[]> consumer;
  /** Records of jobs nobody is waiting for yet, so a later {@link #await} still sees them. */
  private final Map<String, Deque<ConsumerRecord<String, byte[]>>> backlog = new HashMap<>();

  public JobWatcher(String bootstrapServers) {
    this(Map.of(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers));
  }

  /** A watcher with these Kafka client properties (bootstrap servers, security, ...). */
  public JobWatcher(Map<String, ?> kafka) {
    consumer = TopicReader.fromBeginning(kafka, "distillery-watcher-",
        List.of(Topics.PROGRESS.name(), Topics.RESULTS.name(), Topics.FAILURES.name()));
  }

  /**
   * Waits for the job's result or failure, passing each progress event of the job to {@code
   * onProgress}. The refusal of another request under the job's id ({@code refusedRequest}) is not
   * the job's end: it is skipped.
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
    Deque<ConsumerRecord<String, byte[]>> mine = backlog.computeIfAbsent(jobId, id -> new ArrayDeque<>());
    long deadline = System.nanoTime() + timeout.toNanos();
    while (true) {
      for (ConsumerRecord<String, byte[]> record; (record = mine.poll()) != null; ) {
        if (record.topic().equals(Topics.PROGRESS.name())) {
          onProgress.accept(Topics.PROGRESS.valueSerde().deserializer().deserialize(record.topic(), record.value()));
        } else if (record.topic().equals(Topics.RESULTS.name())) {
          return new Outcome(Topics.RESULTS.valueSerde().deserializer().deserialize(record.topic(), record.value()), null);
        } else {
          JobFailure failure = Topics.FAILURES.valueSerde().deserializer().deserialize(record.topic(), record.value());
          if (!failure.getRefusedRequest() || failure.getTimestampMs() >= sentAtMs) {
            return new Outcome(null, failure);
          }
        }
      }
      if (System.nanoTime() > deadline) {
        throw new TimeoutException("job " + jobId + " did not finish within " + timeout);
      }
      pollIntoBacklog();
    }
  }

  /**
   * Whether any event of {@code jobId} is on the topics now: reads them to their current end. A
   * request under a used id would be refused, and the job's earlier outcome is not its answer.
   */
  public boolean seen(String jobId, Duration timeout) throws TimeoutException {
    Map<TopicPartition, Long> end = consumer.endOffsets(consumer.assignment());
    long deadline = System.nanoTime() + timeout.toNanos();
    while (end.entrySet().stream().anyMatch(e -> consumer.position(e.getKey()) < e.getValue())) {
      if (System.nanoTime() > deadline) {
        throw new TimeoutException("the job topics could not be read to their end within " + timeout);
      }
      pollIntoBacklog();
    }
    return backlog.containsKey(jobId) && !backlog.get(jobId).isEmpty();
  }

  private void pollIntoBacklog() {
    for (ConsumerRecord<String, byte[]> record : consumer.poll(Duration.ofMillis(200))) {
      if (record.key() != null) {
        backlog.computeIfAbsent(record.key(), id -> new ArrayDeque<>()).add(record);
      }
    }
  }

  @Override
  public void close() {
    consumer.close();
  }
}
