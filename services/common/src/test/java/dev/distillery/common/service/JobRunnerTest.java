package dev.distillery.common.service;

import static org.assertj.core.api.Assertions.assertThat;

import dev.distillery.common.JobControl;
import dev.distillery.common.JobFailedException;
import dev.distillery.common.artifacts.JobClaims;
import dev.distillery.common.artifacts.JobLeases;
import dev.distillery.common.config.ServiceConfig;
import dev.distillery.common.kafka.DeadLetters;
import dev.distillery.common.kafka.JobEvents;
import dev.distillery.common.kafka.JobSignals;
import dev.distillery.common.kafka.KafkaClients;
import dev.distillery.common.kafka.KafkaTopics;
import dev.distillery.kafka.embedded.EmbeddedKafkaBroker;
import dev.distillery.kafka.embedded.EmbeddedKafkaExtension;
import dev.distillery.schemas.JobCancellation;
import dev.distillery.schemas.JobFailure;
import dev.distillery.schemas.JobProgress;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.kafka.Topic;
import dev.distillery.schemas.kafka.Topics;
import io.vertx.core.Vertx;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Predicate;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * A job's life in a stage on a real broker: retryable errors retried with back-off, final ones
 * not, the last attempt's failure dead-lettered with its attempts, a cancellation that stops the
 * work between batches, and two processes' deliveries of one job run once.
 */
@ExtendWith(EmbeddedKafkaExtension.class)
class JobRunnerTest {
  private static final Duration WAIT = Duration.ofSeconds(30);

  private Vertx vertx;
  private ServiceConfig config;
  private final List<AutoCloseable> closing = new ArrayList<>();
  private KafkaProducer<String, byte[]> producer;
  private JobEvents events;
  private String bootstrap;

  @BeforeEach
  void start(EmbeddedKafkaBroker broker, @TempDir Path artifacts) throws Exception {
    bootstrap = broker.bootstrapServers();
    KafkaTopics.ensure(bootstrap, 2);
    vertx = Vertx.vertx();
    config = ServiceConfig.fromKeys("runner-test", Map.of("kafka.bootstrap.servers", bootstrap,
        "artifacts.dir", artifacts.toString(), "max.attempts", "3", "retry.backoff.ms", "50", "lease.ms", "2000"));
    producer = KafkaClients.producer(config);
    events = new JobEvents(producer);
  }

  @AfterEach
  void stop() throws Exception {
    for (AutoCloseable c : closing) {
      c.close();
    }
    producer.close();
    events.close();
    vertx.close().await(30, TimeUnit.SECONDS);
  }

  /** One process's runner of a fenced stage. */
  private JobRunner runner() {
    Workers workers = new Workers(vertx, "runner-test-" + UUID.randomUUID(), 1);
    JobSignals signals = new JobSignals(config).start();
    JobLeases leases = new JobLeases(config.artifactsDir(), config.reliability().lease());
    closing.addAll(List.of(workers, signals, leases));
    return new JobRunner(config.service(), Stage.PRUNING, true, config.reliability(), events, workers,
        new StageMetrics("runner-test"), signals, leases, new JobClaims(config.artifactsDir()),
        new DeadLetters(events, "runner-test"));
  }

  private static ConsumerRecord<String, byte[]> delivery(String jobId) {
    return new ConsumerRecord<>(Topics.CHECKPOINTS.name(), 0, 7L, jobId, "the checkpoint event".getBytes(StandardCharsets.UTF_8));
  }

  @Test
  void retryableErrorsAreRetriedWithBackOffUntilTheWorkSucceeds() throws Exception {
    String job = "retry-" + UUID.randomUUID();
    AtomicInteger calls = new AtomicInteger();
    List<String> stateRemoved = new java.util.concurrent.CopyOnWriteArrayList<>();
    runner().removingStateWith(stateRemoved::add).run(delivery(job), job, () -> {
      if (calls.incrementAndGet() < 3) {
        throw new IOException("disk hiccup " + calls.get());
      }
      return events.progress(job, Stage.PRUNING, 1, 1, "the output", Map.of());
    }).get(WAIT.toSeconds(), TimeUnit.SECONDS);

    assertThat(calls).hasValue(3);
    assertThat(records(Topics.PROGRESS, job, 3).stream().map(JobProgress::getMessage))
        .containsExactly("attempt 1 of 3 failed (disk hiccup 1); retrying in 0 s",
            "attempt 2 of 3 failed (disk hiccup 2); retrying in 0 s", "the output");
    assertThat(records(Topics.FAILURES, job, 0)).isEmpty();
    assertThat(stateRemoved).as("state kept for the retries").isEmpty();
  }

  @Test
  void aFinalErrorIsNotRetriedAndNamesTheField() throws Exception {
    String job = "final-" + UUID.randomUUID();
    AtomicInteger calls = new AtomicInteger();
    List<String> stateRemoved = new java.util.concurrent.CopyOnWriteArrayList<>();
    runner().removingStateWith(stateRemoved::add).run(delivery(job), job, () -> {
      calls.incrementAndGet();
      throw new JobFailedException("pruning.targetSparsity", "cannot prune that much");
    }).get(WAIT.toSeconds(), TimeUnit.SECONDS);

    assertThat(calls).hasValue(1);
    JobFailure failure = records(Topics.FAILURES, job, 1).get(0);
    assertThat(failure.getField()).isEqualTo("pruning.targetSparsity");
    assertThat(failure.getReason()).isEqualTo("cannot prune that much");
    assertThat(deadLetters(job, 0)).isEmpty();
    assertThat(stateRemoved).as("the job's state, freed").containsExactly(job);
  }

  @Test
  void theLastAttemptsFailureEndsTheJobAndDeadLettersTheRecordWithItsAttempts() throws Exception {
    String job = "exhausted-" + UUID.randomUUID();
    AtomicInteger calls = new AtomicInteger();
    JobRunner runner = runner();
    runner.run(delivery(job), job, () -> {
      calls.incrementAndGet();
      throw new IOException("the volume is gone");
    }).get(WAIT.toSeconds(), TimeUnit.SECONDS);

    assertThat(calls).hasValue(3);
    assertThat(records(Topics.FAILURES, job, 1).get(0).getReason()).isEqualTo("the volume is gone (attempt 3 of 3)");
    ConsumerRecord<String, byte[]> dead = deadLetters(job, 1).get(0);
    assertThat(header(dead, DeadLetters.ATTEMPTS)).isEqualTo("3");
    assertThat(new String(dead.value(), StandardCharsets.UTF_8)).isEqualTo("the checkpoint event");
    // A later delivery of the same job is a duplicate: the stage ended it.
    runner.run(delivery(job), job, () -> {
      calls.incrementAndGet();
      return CompletableFuture.completedFuture(null);
    }).get(WAIT.toSeconds(), TimeUnit.SECONDS);
    assertThat(calls).hasValue(3);
  }

  @Test
  void aCancellationStopsTheWorkBetweenBatchesAndNothingMoreIsPublished() throws Exception {
    String job = "cancel-" + UUID.randomUUID();
    AtomicInteger batches = new AtomicInteger();
    CountDownLatch working = new CountDownLatch(1);
    CompletableFuture<Void> outcome = runner().run(delivery(job), job, () -> {
      while (true) {
        JobControl.checkpoint();
        batches.incrementAndGet();
        working.countDown();
        TimeUnit.MILLISECONDS.sleep(20); // one "batch" of work
      }
    });
    assertThat(working.await(WAIT.toSeconds(), TimeUnit.SECONDS)).isTrue();
    long cancelledAt = System.nanoTime();
    events.send(Topics.CANCELLATIONS, job, new JobCancellation(job, "no longer needed", "test", System.currentTimeMillis()))
        .get(10, TimeUnit.SECONDS);
    outcome.get(WAIT.toSeconds(), TimeUnit.SECONDS);
    double seconds = (System.nanoTime() - cancelledAt) / 1e9;

    assertThat(seconds).as("seconds from the cancellation to the stop").isLessThan(5);
    assertThat(records(Topics.PROGRESS, job, 1).get(0).getMessage()).isEqualTo("stopped: cancelled: no longer needed");
    assertThat(records(Topics.FAILURES, job, 0)).isEmpty();
    int stoppedAt = batches.get();
    assertThat(batches.get()).isEqualTo(stoppedAt);
  }

  @Test
  void twoProcessesGivenOneJobRunItOnceOneAfterTheOther() throws Exception {
    String job = "fenced-" + UUID.randomUUID();
    JobRunner first = runner();
    JobRunner second = runner();
    AtomicInteger running = new AtomicInteger();
    AtomicInteger maxRunning = new AtomicInteger();
    AtomicInteger runs = new AtomicInteger();
    CountDownLatch firstStarted = new CountDownLatch(1);
    CountDownLatch letFirstFinish = new CountDownLatch(1);
    JobRunner.Work work = () -> {
      maxRunning.accumulateAndGet(running.incrementAndGet(), Math::max);
      runs.incrementAndGet();
      firstStarted.countDown();
      letFirstFinish.await();
      running.decrementAndGet();
      return events.progress(job, Stage.PRUNING, 1, 1, "the result", Map.of());
    };
    CompletableFuture<Void> a = first.run(delivery(job), job, work);
    assertThat(firstStarted.await(WAIT.toSeconds(), TimeUnit.SECONDS)).isTrue();
    CompletableFuture<Void> b = second.run(delivery(job), job, work);
    assertThat(b).as("the second waits for the lease").isNotDone();
    letFirstFinish.countDown();
    a.get(WAIT.toSeconds(), TimeUnit.SECONDS);
    b.get(WAIT.toSeconds(), TimeUnit.SECONDS);

    assertThat(runs).as("runs of the job").hasValue(1);
    assertThat(maxRunning).hasValue(1);
    assertThat(records(Topics.PROGRESS, job, 1)).extracting(JobProgress::getMessage).containsExactly("the result");
  }

  /** The records of {@code jobId} on {@code topic}: waits for {@code expected}, then a little for extras. */
  private <V> List<V> records(Topic<V> topic, String jobId, int expected) {
    List<V> values = new ArrayList<>();
    for (ConsumerRecord<String, byte[]> record : read(topic.name(), r -> jobId.equals(r.key()), expected)) {
      values.add(topic.valueSerde().deserializer().deserialize(topic.name(), record.value()));
    }
    return values;
  }

  private List<ConsumerRecord<String, byte[]>> deadLetters(String jobId, int expected) {
    return read(Topics.DEAD_LETTERS.name(), r -> jobId.equals(r.key()), expected);
  }

  /** Reads the whole topic until {@code expected} records match, then until it is at its end. */
  private List<ConsumerRecord<String, byte[]>> read(String topic, Predicate<ConsumerRecord<String, byte[]>> wanted,
      int expected) {
    try (KafkaConsumer<String, byte[]> consumer = new KafkaConsumer<>(Map.of("bootstrap.servers", bootstrap),
        new StringDeserializer(), new ByteArrayDeserializer())) {
      List<TopicPartition> partitions = consumer.partitionsFor(topic).stream()
          .map(p -> new TopicPartition(topic, p.partition())).toList();
      consumer.assign(partitions);
      consumer.seekToBeginning(partitions);
      List<ConsumerRecord<String, byte[]>> found = new ArrayList<>();
      long deadline = System.nanoTime() + WAIT.toNanos();
      while (System.nanoTime() < deadline) {
        for (ConsumerRecord<String, byte[]> record : consumer.poll(Duration.ofMillis(200))) {
          if (wanted.test(record)) {
            found.add(record);
          }
        }
        Map<TopicPartition, Long> ends = consumer.endOffsets(partitions);
        boolean atEnd = partitions.stream().allMatch(p -> consumer.position(p) >= ends.get(p));
        if (found.size() >= expected && atEnd) {
          return found;
        }
      }
      throw new AssertionError("expected " + expected + " records on " + topic + ", found " + found.size());
    }
  }

  private static String header(ConsumerRecord<String, byte[]> record, String name) {
    return new String(record.headers().lastHeader(name).value(), StandardCharsets.UTF_8);
  }
}
