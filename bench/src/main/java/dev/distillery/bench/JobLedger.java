package dev.distillery.bench;

import dev.distillery.common.kafka.DeadLetters;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.JobCancellation;
import dev.distillery.schemas.JobFailure;
import dev.distillery.schemas.JobProgress;
import dev.distillery.schemas.JobResult;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.kafka.Topic;
import dev.distillery.schemas.kafka.Topics;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * What the topics say about every job, read from their first record on by a consumer in no group:
 * its requests, progress, results, failures and cancellations, with their record timestamps (every
 * producer runs on this machine, so one clock), and what was dead-lettered. The outcomes a user
 * sees are the records on results, failures and cancellations; job-status is checked against them.
 */
final class JobLedger implements AutoCloseable {
  private static final Set<String> TOPICS = Set.of(Topics.REQUESTS.name(), Topics.PROGRESS.name(),
      Topics.RESULTS.name(), Topics.FAILURES.name(), Topics.CANCELLATIONS.name(), Topics.DEAD_LETTERS.name());

  /** One job as its records tell it. Timestamps are the records' (CreateTime), in ms. */
  static final class Job {
    final String id;
    final List<Long> requestsMs = new ArrayList<>();
    final Map<Stage, Long> firstProgressMs = new EnumMap<>(Stage.class);
    long firstProgressAnyMs;
    /** Progress messages a stage sends when an attempt of the job failed and will be retried. */
    final List<String> retries = new ArrayList<>();
    /** Progress messages a stage sends when it stopped the job's work (a cancellation or failure elsewhere). */
    final List<String> stops = new ArrayList<>();
    final List<Long> resultsMs = new ArrayList<>();
    JobResult result;
    final List<Long> failuresMs = new ArrayList<>();
    final List<JobFailure> failures = new ArrayList<>();
    /** Failures that refuse a request (its id was used already) and say nothing of the job. */
    final List<JobFailure> refusals = new ArrayList<>();
    final List<Long> cancellationsMs = new ArrayList<>();
    final List<JobCancellation> cancellations = new ArrayList<>();

    Job(String id) {
      this.id = id;
    }

    int outcomes() {
      return resultsMs.size() + failuresMs.size() + cancellationsMs.size();
    }

    /** The first outcome's timestamp, or 0. */
    long firstOutcomeMs() {
      long first = Long.MAX_VALUE;
      for (List<Long> times : List.of(resultsMs, failuresMs, cancellationsMs)) {
        for (long t : times) {
          first = Math.min(first, t);
        }
      }
      return first == Long.MAX_VALUE ? 0 : first;
    }

    /**
     * The state job-status should show by its rules (JobStatus.avsc): the first of DONE, FAILED and
     * CANCELLED stands, except that a result overrides an earlier failure; null without an outcome.
     */
    String expectedState() {
      long cancelled = cancellationsMs.stream().mapToLong(Long::longValue).min().orElse(Long.MAX_VALUE);
      long done = resultsMs.stream().mapToLong(Long::longValue).min().orElse(Long.MAX_VALUE);
      long failed = failuresMs.stream().mapToLong(Long::longValue).min().orElse(Long.MAX_VALUE);
      if (cancelled < Math.min(done, failed)) {
        return "CANCELLED";
      }
      if (done != Long.MAX_VALUE) {
        return "DONE";
      }
      return failed != Long.MAX_VALUE ? "FAILED" : null;
    }

    /** Results, failures and cancellations on the topics, e.g. "1 result" or "1 failure + 1 result". */
    String outcomeRecords() {
      List<String> parts = new ArrayList<>();
      count(parts, resultsMs.size(), "result");
      count(parts, failuresMs.size(), "failure");
      count(parts, cancellationsMs.size(), "cancellation");
      return parts.isEmpty() ? "none" : String.join(" + ", parts);
    }

    private static void count(List<String> parts, int n, String what) {
      if (n > 0) {
        parts.add(n + " " + what + (n > 1 ? "s" : ""));
      }
    }
  }

  /** A record dead-lettered by a stage, with its reason. */
  record DeadLetter(String key, String sourceTopic, String service, String reason) {}

  private final KafkaConsumer<String, byte[]> consumer;
  private final Thread thread;
  private final Map<String, Job> jobs = new LinkedHashMap<>();
  private final List<DeadLetter> deadLetters = new ArrayList<>();
  private final List<String> undecodable = new ArrayList<>();
  private volatile boolean running = true;

  JobLedger(String bootstrapServers) {
    consumer = new KafkaConsumer<>(Map.of(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers),
        new StringDeserializer(), new ByteArrayDeserializer());
    List<TopicPartition> partitions = new ArrayList<>();
    for (String topic : TOPICS) {
      consumer.partitionsFor(topic).forEach(p -> partitions.add(new TopicPartition(p.topic(), p.partition())));
    }
    consumer.assign(partitions);
    consumer.seekToBeginning(partitions);
    thread = new Thread(this::read, "job-ledger");
    thread.setDaemon(true);
    thread.start();
  }

  private void read() {
    while (running) {
      for (ConsumerRecord<String, byte[]> record : consumer.poll(Duration.ofMillis(200))) {
        try {
          fold(record);
        } catch (RuntimeException e) {
          synchronized (this) {
            undecodable.add(record.topic() + " key " + record.key() + ": " + e);
          }
        }
      }
    }
    consumer.close(Duration.ofSeconds(5));
  }

  private synchronized void fold(ConsumerRecord<String, byte[]> record) {
    String topic = record.topic();
    long ts = record.timestamp();
    if (topic.equals(Topics.DEAD_LETTERS.name())) {
      deadLetters.add(new DeadLetter(record.key(), header(record, DeadLetters.SOURCE_TOPIC),
          header(record, DeadLetters.SERVICE), header(record, DeadLetters.REASON)));
      return;
    }
    if (topic.equals(Topics.REQUESTS.name())) {
      CompressionRequest request = decode(Topics.REQUESTS, record);
      job(request.getJobId()).requestsMs.add(ts);
    } else if (topic.equals(Topics.PROGRESS.name())) {
      JobProgress progress = decode(Topics.PROGRESS, record);
      Job job = job(progress.getJobId());
      job.firstProgressMs.putIfAbsent(progress.getStage(), ts);
      if (job.firstProgressAnyMs == 0) {
        job.firstProgressAnyMs = ts;
      }
      String message = progress.getMessage();
      if (message.startsWith("attempt ")) {
        job.retries.add(progress.getStage() + ": " + message);
      } else if (message.startsWith("stopped")) {
        job.stops.add(progress.getStage() + ": " + message);
      }
    } else if (topic.equals(Topics.RESULTS.name())) {
      JobResult result = decode(Topics.RESULTS, record);
      Job job = job(result.getJobId());
      job.resultsMs.add(ts);
      if (job.result == null) {
        job.result = result;
      }
    } else if (topic.equals(Topics.FAILURES.name())) {
      JobFailure failure = decode(Topics.FAILURES, record);
      Job job = job(failure.getJobId());
      if (failure.getRefusedRequest()) {
        job.refusals.add(failure);
      } else {
        job.failuresMs.add(ts);
        job.failures.add(failure);
      }
    } else if (topic.equals(Topics.CANCELLATIONS.name())) {
      JobCancellation cancellation = decode(Topics.CANCELLATIONS, record);
      Job job = job(cancellation.getJobId());
      job.cancellationsMs.add(ts);
      job.cancellations.add(cancellation);
    }
  }

  private Job job(String id) {
    return jobs.computeIfAbsent(id, Job::new);
  }

  private static <V> V decode(Topic<V> topic, ConsumerRecord<String, byte[]> record) {
    return topic.valueSerde().deserializer().deserialize(record.topic(), record.value());
  }

  private static String header(ConsumerRecord<String, byte[]> record, String name) {
    Header header = record.headers().lastHeader(name);
    return header == null ? null : new String(header.value(), StandardCharsets.UTF_8);
  }

  /** Whether the topics hold an outcome (result, failure or cancellation) of {@code jobId}. */
  synchronized boolean ended(String jobId) {
    Job job = jobs.get(jobId);
    return job != null && job.outcomes() > 0;
  }

  /** Whether {@code jobId} has reported progress in {@code stage}. */
  synchronized boolean started(String jobId, Stage stage) {
    Job job = jobs.get(jobId);
    return job != null && job.firstProgressMs.containsKey(stage);
  }

  /** How many of {@code jobIds} have an outcome on the topics. */
  synchronized long endedCount(List<String> jobIds) {
    return jobIds.stream().filter(this::ended).count();
  }

  /** Every job seen, by id, in the order first seen. Call after {@link #close()}. */
  synchronized Map<String, Job> jobs() {
    return new LinkedHashMap<>(jobs);
  }

  synchronized List<DeadLetter> deadLetters() {
    return List.copyOf(deadLetters);
  }

  synchronized List<String> undecodable() {
    return List.copyOf(undecodable);
  }

  @Override
  public void close() throws InterruptedException {
    running = false;
    thread.join(TimeUnit.SECONDS.toMillis(30));
  }
}
