package dev.distillery.common.kafka;

import static org.assertj.core.api.Assertions.assertThat;

import dev.distillery.common.config.ServiceConfig;
import dev.distillery.common.service.StageMetrics;
import dev.distillery.kafka.embedded.EmbeddedKafkaBroker;
import dev.distillery.kafka.embedded.EmbeddedKafkaExtension;
import dev.distillery.schemas.JobFailure;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.kafka.AvroSerde;
import dev.distillery.schemas.kafka.Topic;
import dev.distillery.schemas.kafka.Topics;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

/** The stage loop on a real broker: what gets committed when, and where bad records go. */
@ExtendWith(EmbeddedKafkaExtension.class)
class StageConsumerTest {
  private static final Duration WAIT = Duration.ofSeconds(30);

  /** Hands out records and lets the test decide when each one's outputs exist. */
  private static final class HeldHandler implements RecordHandler<JobFailure> {
    final List<CompletableFuture<Void>> outputs = new CopyOnWriteArrayList<>();
    final List<String> jobs = new CopyOnWriteArrayList<>();

    @Override
    public CompletionStage<?> handle(ConsumerRecord<String, byte[]> record, JobFailure value) {
      if (value.getJobId().equals("explodes")) {
        throw new IllegalStateException("handler bug");
      }
      CompletableFuture<Void> done = new CompletableFuture<>();
      jobs.add(value.getJobId());
      outputs.add(done);
      return done;
    }

    @Override
    public boolean busy() {
      return outputs.stream().filter(f -> !f.isDone()).count() >= 3;
    }
  }

  @Test
  void commitsOnlyPastRecordsWhoseOutputsExistAndDeadLettersTheRest(EmbeddedKafkaBroker broker) throws Exception {
    String name = "stage-consumer-" + UUID.randomUUID();
    Topic<JobFailure> topic = inputTopic(broker, name);
    ServiceConfig config = config(broker, name);
    HeldHandler handler = new HeldHandler();
    TopicPartition partition = new TopicPartition(name, 0);

    try (KafkaProducer<String, byte[]> producer = KafkaClients.producer(config);
        JobEvents events = new JobEvents(producer);
        Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, broker.bootstrapServers()))) {
      for (String job : List.of("a", "b", "c")) {
        events.send(topic, job, failure(job)).get(10, TimeUnit.SECONDS);            // offsets 0, 1, 2
      }
      producer.send(new ProducerRecord<>(name, "junk", "not avro".getBytes(StandardCharsets.UTF_8))).get(); // 3
      events.send(topic, "explodes", failure("explodes")).get(10, TimeUnit.SECONDS); // 4
      events.send(topic, "d", failure("d")).get(10, TimeUnit.SECONDS);               // 5

      StageConsumer<JobFailure> loop = new StageConsumer<>(() -> KafkaClients.consumer(config), topic, handler,
          new DeadLetters(events, name), new StageMetrics(name), JobGate.NONE);
      Thread thread = new Thread(loop, "stage-consumer-test");
      thread.start();
      try {
        await(() -> handler.jobs.size() == 3, "three records handed out");
        assertThat(handler.jobs).containsExactly("a", "b", "c");
        // Three outputs pending: the loop must hold the rest until one completes.
        handler.outputs.get(1).complete(null);
        await(() -> handler.jobs.size() == 4, "the fourth record after one finished");
        assertThat(handler.jobs).containsExactly("a", "b", "c", "d");
        // The junk and the handler failure were dead-lettered on the way, with reasons.
        assertThat(deadLetterReasons(broker, name)).hasSize(2)
            .anySatisfy(r -> assertThat(r).contains("JobFailure"))
            .anySatisfy(r -> assertThat(r).contains("handler bug"));

        handler.outputs.get(0).complete(null);
        await(() -> committed(admin, name, partition) == 2, "commit past a and b");
        handler.outputs.get(2).complete(null);
        // c done: the dead-lettered 3 and 4 are done too, d (5) is not.
        await(() -> committed(admin, name, partition) == 5, "commit past the dead letters");
        handler.outputs.get(3).complete(null);
        await(() -> committed(admin, name, partition) == 6, "commit past d");
        assertThat(loop.healthy()).isTrue();
      } finally {
        loop.stop();
        thread.join();
      }
    }
  }

  /**
   * The clock handlers expire work by stands still while the consumer is paused: a job waiting for
   * records behind another job's long work must not time out for records it could not read.
   */
  @Test
  void theExpiryClockStandsStillWhileTheConsumerIsPaused(EmbeddedKafkaBroker broker) throws Exception {
    String name = "stage-clock-" + UUID.randomUUID();
    Topic<JobFailure> topic = inputTopic(broker, name);
    ServiceConfig config = config(broker, name);
    CompletableFuture<Void> longWork = new CompletableFuture<>();
    java.util.concurrent.atomic.AtomicBoolean handled = new java.util.concurrent.atomic.AtomicBoolean();
    List<Long> whilePaused = new CopyOnWriteArrayList<>();
    List<Long> afterwards = new CopyOnWriteArrayList<>();
    RecordHandler<JobFailure> handler = new RecordHandler<>() {
      @Override
      public CompletionStage<?> handle(ConsumerRecord<String, byte[]> record, JobFailure value) {
        handled.set(true);
        return longWork;
      }

      @Override
      public boolean busy() {
        return handled.get() && !longWork.isDone();
      }

      @Override
      public void expire(long fetchingMillis) {
        if (handled.get()) {
          (longWork.isDone() ? afterwards : whilePaused).add(fetchingMillis);
        }
      }
    };
    try (KafkaProducer<String, byte[]> producer = KafkaClients.producer(config);
        JobEvents events = new JobEvents(producer)) {
      StageConsumer<JobFailure> loop = new StageConsumer<>(() -> KafkaClients.consumer(config), topic, handler,
          new DeadLetters(events, name), new StageMetrics(name), JobGate.NONE);
      Thread thread = new Thread(loop, "stage-clock-test");
      thread.start();
      try {
        await(loop::ready, "the consumer in its group");
        events.send(topic, "long", failure("long")).get(10, TimeUnit.SECONDS);
        await(handled::get, "the record handed out");
        long pausedSince = System.nanoTime();
        // Polls of 100 ms: a second of wall time paused behind the work.
        await(() -> whilePaused.size() > 12 && System.nanoTime() - pausedSince > 1_000_000_000L, "polls while paused");
        List<Long> paused = whilePaused.subList(whilePaused.size() - 10, whilePaused.size());
        assertThat(paused.get(paused.size() - 1) - paused.get(0)).as("fetching ms passed while paused").isZero();
        longWork.complete(null);
        await(() -> afterwards.size() > 20, "polls after the work");
        assertThat(afterwards.get(afterwards.size() - 1)).as("the clock runs again while fetching")
            .isGreaterThan(whilePaused.get(whilePaused.size() - 1) + 500);
      } finally {
        loop.stop();
        thread.join();
      }
    }
  }

  /** Gives up jobs as a stage would, and remembers what it gave up. */
  private static final class CountingGate implements JobGate {
    final Map<String, Integer> abandoned = new java.util.concurrent.ConcurrentHashMap<>();

    @Override
    public boolean ended(String jobId) {
      return abandoned.containsKey(jobId);
    }

    @Override
    public int maxAttempts() {
      return 3;
    }

    @Override
    public CompletionStage<?> abandon(ConsumerRecord<String, byte[]> record, String jobId, int attempts) {
      abandoned.put(jobId, attempts);
      return CompletableFuture.completedFuture(null);
    }
  }

  /**
   * A job whose work ends its consumer (as a process killed by it would end) is started again by
   * the next consumer, which counts the attempt from what the last one kept in Kafka; past the
   * stage's attempts it is given up, and the records behind it go on.
   */
  @Test
  void aJobThatKeepsEndingItsConsumerIsGivenUpAfterItsAttempts(EmbeddedKafkaBroker broker) throws Exception {
    String name = "stage-poison-" + UUID.randomUUID();
    Topic<JobFailure> topic = inputTopic(broker, name);
    ServiceConfig config = config(broker, name);
    List<Integer> attemptsSeen = new CopyOnWriteArrayList<>();
    List<String> finished = new CopyOnWriteArrayList<>();
    RecordHandler<JobFailure> handler = (record, value) -> {
      if (value.getJobId().equals("poison")) {
        attemptsSeen.add(Attempts.of(record));
        throw new OutOfMemoryError("the job's work takes the process down");
      }
      finished.add(value.getJobId());
      return CompletableFuture.completedFuture(null);
    };
    CountingGate gate = new CountingGate();
    try (KafkaProducer<String, byte[]> producer = KafkaClients.producer(config);
        JobEvents events = new JobEvents(producer)) {
      events.send(topic, "poison", failure("poison")).get(10, TimeUnit.SECONDS);
      events.send(topic, "after", failure("after")).get(10, TimeUnit.SECONDS);
      StageConsumer<JobFailure> loop = new StageConsumer<>(() -> KafkaClients.consumer(config), topic, handler,
          new DeadLetters(events, name), new StageMetrics(name), gate);
      Thread thread = new Thread(loop, "stage-poison-test");
      thread.start();
      try {
        await(() -> finished.contains("after"), "the record behind the poisonous job");
        assertThat(attemptsSeen).containsExactly(1, 2, 3);
        assertThat(gate.abandoned).containsExactly(Map.entry("poison", 3));
        assertThat(loop.restarts()).isEqualTo(3);
        assertThat(loop.healthy()).isTrue();
      } finally {
        loop.stop();
        thread.join();
      }
    }
  }

  /** A consumer stopped on purpose (a rolling update) hands its job over without counting an attempt. */
  @Test
  void aStopIsNotCountedAsAnAttempt(EmbeddedKafkaBroker broker) throws Exception {
    String name = "stage-handover-" + UUID.randomUUID();
    Topic<JobFailure> topic = inputTopic(broker, name);
    ServiceConfig config = config(broker, name);
    List<Integer> attemptsSeen = new CopyOnWriteArrayList<>();
    RecordHandler<JobFailure> handler = (record, value) -> {
      attemptsSeen.add(Attempts.of(record));
      return new CompletableFuture<>(); // still working when the consumer stops
    };
    try (KafkaProducer<String, byte[]> producer = KafkaClients.producer(config);
        JobEvents events = new JobEvents(producer)) {
      events.send(topic, "long", failure("long")).get(10, TimeUnit.SECONDS);
      for (int run = 1; run <= 2; run++) {
        StageConsumer<JobFailure> loop = new StageConsumer<>(() -> KafkaClients.consumer(config), topic, handler,
            new DeadLetters(events, name), new StageMetrics(name), new CountingGate());
        Thread thread = new Thread(loop, "stage-handover-test");
        thread.start();
        int seen = run;
        await(() -> attemptsSeen.size() == seen, "delivery " + run);
        loop.stop();
        thread.join();
      }
      assertThat(attemptsSeen).containsExactly(1, 1);
    }
  }

  /** A fresh input topic of one partition (and the dead-letter topic) for one test's stage. */
  private static Topic<JobFailure> inputTopic(EmbeddedKafkaBroker broker, String name) {
    broker.createTopics(Map.of(name, 1, Topics.DEAD_LETTERS.name(), 1));
    return new Topic<>(name, AvroSerde.of(JobFailure.class));
  }

  private static ServiceConfig config(EmbeddedKafkaBroker broker, String name) {
    return ServiceConfig.fromKeys(name, Map.of("kafka.bootstrap.servers", broker.bootstrapServers(),
        "artifacts.dir", "/tmp", "worker.threads", "1", "torch.threads", "1", "management.port", "0"));
  }

  private static JobFailure failure(String jobId) {
    return new JobFailure(jobId, Stage.PRUNING, null, "test", 0L, false);
  }

  private static long committed(Admin admin, String group, TopicPartition partition) {
    try {
      Map<TopicPartition, OffsetAndMetadata> offsets =
          admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(10, TimeUnit.SECONDS);
      OffsetAndMetadata offset = offsets.get(partition);
      return offset == null ? -1 : offset.offset();
    } catch (Exception e) {
      throw new AssertionError(e);
    }
  }

  private static List<String> deadLetterReasons(EmbeddedKafkaBroker broker, String service) throws Exception {
    try (var consumer = new org.apache.kafka.clients.consumer.KafkaConsumer<String, byte[]>(Map.of(
            "bootstrap.servers", broker.bootstrapServers()),
        new org.apache.kafka.common.serialization.StringDeserializer(),
        new org.apache.kafka.common.serialization.ByteArrayDeserializer())) {
      TopicPartition dlq = new TopicPartition(Topics.DEAD_LETTERS.name(), 0);
      consumer.assign(List.of(dlq));
      consumer.seekToBeginning(List.of(dlq));
      List<String> reasons = new CopyOnWriteArrayList<>();
      long deadline = System.nanoTime() + WAIT.toNanos();
      while (reasons.size() < 2 && System.nanoTime() < deadline) {
        for (ConsumerRecord<String, byte[]> record : consumer.poll(Duration.ofMillis(200))) {
          var from = record.headers().lastHeader(DeadLetters.SERVICE);
          if (from != null && new String(from.value(), StandardCharsets.UTF_8).equals(service)) {
            reasons.add(new String(record.headers().lastHeader(DeadLetters.REASON).value(), StandardCharsets.UTF_8));
          }
        }
      }
      return reasons;
    }
  }

  private static void await(Supplier<Boolean> condition, String what) throws InterruptedException {
    long deadline = System.nanoTime() + WAIT.toNanos();
    while (!condition.get()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("timed out waiting for: " + what);
      }
      Thread.onSpinWait();
      TimeUnit.MILLISECONDS.sleep(20); // polling a condition, not waiting for time to pass
    }
  }
}
