package dev.distillery.launcher;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.distillery.cli.JobWatcher;
import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.kafka.DeadLetters;
import dev.distillery.common.kafka.KafkaTopics;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.testing.ServiceProcess;
import dev.distillery.kafka.embedded.EmbeddedKafkaBroker;
import dev.distillery.pruner.PrunerService;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.DatasetSpec;
import dev.distillery.schemas.DistillationSettings;
import dev.distillery.schemas.JobFailure;
import dev.distillery.schemas.JobProgress;
import dev.distillery.schemas.JobResult;
import dev.distillery.schemas.ModelFormat;
import dev.distillery.schemas.OptimizerKind;
import dev.distillery.schemas.PruningMethod;
import dev.distillery.schemas.PruningSettings;
import dev.distillery.schemas.SoftLabelBatch;
import dev.distillery.schemas.TeacherSpec;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.kafka.Topic;
import dev.distillery.schemas.kafka.Topics;
import dev.distillery.status.JobStatusService;
import dev.distillery.student.StudentTrainerService;
import dev.distillery.teacher.TeacherInferenceService;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.LongStream;
import java.util.stream.Stream;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

/**
 * Fault injection with real processes: every service in a JVM of its own (two teacher-inference
 * replicas, the student trainer, the pruner, job-status) on the test's own broker, and a small
 * real job per scenario (the shipped subset and TorchScript teacher). In order: the planner killed
 * (SIGKILL) once it took the request and before any shard exists; a labeler killed mid-shard; the
 * trainer killed mid-training; the pruner killed mid-fine-tuning; job-status killed mid-job; the
 * broker restarted mid-training; the broker away for 60 s mid-labelling (the stages' /ready must
 * answer 503 meanwhile). Each must end with its job DONE, exactly one result and no failure or
 * dead letter on the topics, every soft-label batch on the topic and equal to the first job's
 * (repeats too), the trainer's count of soft labels the training set's size, the student and the
 * pruned model bit for bit the first job's (the jobs are seeded and trained on one thread, with
 * plain SGD, which a resumed run continues exactly), the training state gone, and job-status
 * listing the job once, DONE. The last scenario kills the trainer on each of a job's attempts: the
 * job must fail after {@code max.attempts}, its record in the dead-letter topic with its attempts,
 * and not be replayed.
 *
 * <p>The scenarios share the broker and the processes and run in order; each restarts only what
 * it killed. Service logs are kept in {@code target/fault-injection}.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class FaultInjectionTest {
  private static final Duration START = Duration.ofMinutes(3);
  private static final Duration JOB = Duration.ofMinutes(4);
  private static final Duration OUTAGE = Duration.ofSeconds(60);
  private static final int EPOCHS = 3;
  /** Samples per soft-label record: the services' label.batch.size (default). */
  private static final int LABEL_BATCH = 256;
  /** The trainer dies this many times on one job in the last scenario: the services' max.attempts (default 3). */
  private static final int MAX_ATTEMPTS = 3;
  private static final String TOKEN = "fault-injection-" + UUID.randomUUID();
  private static final Path LOGS = Path.of("target", "fault-injection");
  private static final Path TEACHER = UserModelPipelineTest.MODELS.resolve("resnet18_w8.pt");
  private static final Pattern LABELLING =
      Pattern.compile("distillery_records_in_progress\\{stage=\"teacher-inference\"} (\\d+)(\\.0)?\n");
  private static final ObjectMapper JSON = new ObjectMapper();
  /**
   * About fifteen JVMs start here on two cores: the client compiler alone and one GC thread take
   * 40% less CPU to start a service (3.6-4.4 s against 6.3-6.9 s measured), and the heavy work is
   * libtorch's, which they do not touch.
   */
  private static final List<String> JVM_OPTIONS = List.of("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC");

  private static final String TEACHER_A = "teacher-inference-a";
  private static final String TEACHER_B = "teacher-inference-b";
  private static final String TRAINER = "student-trainer";
  private static final String PRUNER = "pruner";
  private static final String STATUS = "job-status";
  private static final List<String> STAGE_PROCESSES = List.of(TEACHER_A, TEACHER_B, TRAINER, PRUNER);

  private final String suffix = UUID.randomUUID().toString().substring(0, 6);
  private final Map<String, ServiceProcess> services = new LinkedHashMap<>();
  /** Every job a scenario finished, with the state job-status must show for it at the end. */
  private final Map<String, String> ended = new LinkedHashMap<>();
  private final Map<String, String> timings = new LinkedHashMap<>();
  private EmbeddedKafkaBroker broker;
  private Path artifacts;
  private DatasetSpec data;
  private int trainingSamples;
  private JobWatcher watcher;
  private KafkaProducer<String, byte[]> producer;
  /** The first finished job's models: every later job is the same seeded job and must give the same. */
  private Fingerprint reference;
  /** The first finished job's soft labels by batch index: every job's must be the same. */
  private Map<Integer, ByteBuffer> referenceLabels;
  private long scenarioStart;

  /** What a finished job produced; equal for equal seeded jobs, whatever failed while they ran. */
  private record Fingerprint(double studentAccuracy, int bestEpoch, String studentSha256, double prunedAccuracy,
      String prunedSha256) {}

  @BeforeAll
  void startBrokerAndServices(@TempDir Path work) throws Exception {
    long began = System.nanoTime();
    // The broker is this class's own: it is stopped and restarted, which the shared one must never be.
    broker = EmbeddedKafkaBroker.start();
    KafkaTopics.ensure(broker.bootstrapServers(), 2);
    artifacts = work.resolve("artifacts");
    // 2,000 training and 500 test images: each job a few seconds of each stage's work on one thread.
    data = DatasetSpec.newBuilder().setLocation(PipelineScenario.SUBSET.toString()).setTrainLimit(2000)
        .setTestLimit(500).build();
    trainingSamples = Datasets.load(data).train().size();
    deleteRecursively(LOGS);
    Files.createDirectories(LOGS);
    for (String name : List.of(TEACHER_A, TEACHER_B, TRAINER, PRUNER, STATUS)) {
      services.put(name, ServiceProcess.start(mainClass(name), environment(name), LOGS.resolve(name + ".log"),
          JVM_OPTIONS));
    }
    for (ServiceProcess service : services.values()) {
      service.awaitReady(START);
    }
    watcher = new JobWatcher(broker.bootstrapServers());
    producer = PipelineScenario.producer(broker.bootstrapServers(), new ArtifactStore(artifacts));
    timings.put("start: broker and 5 service processes", seconds(began));
  }

  @AfterAll
  void stopEverything() throws Exception {
    System.out.println("fault injection, seconds per scenario:");
    timings.forEach((scenario, seconds) -> System.out.printf("  %-60s %s%n", scenario, seconds));
    for (ServiceProcess service : services.values()) {
      service.close();
    }
    if (watcher != null) {
      watcher.close();
    }
    if (producer != null) {
      producer.close();
    }
    if (broker != null) {
      broker.close();
    }
  }

  /** A scenario begins with the broker up and every service running and ready, whatever an earlier one left. */
  @BeforeEach
  void everythingRunning() throws Exception {
    if (!broker.running()) {
      broker.restart();
    }
    for (String name : services.keySet()) {
      if (!services.get(name).alive()) {
        services.put(name, services.get(name).startAnother());
      }
    }
    for (ServiceProcess service : services.values()) {
      service.awaitReady(START);
    }
    scenarioStart = System.nanoTime();
  }

  @org.junit.jupiter.api.AfterEach
  void time(TestInfo test) {
    timings.put(test.getDisplayName(), seconds(scenarioStart));
  }

  @Test
  @Order(1)
  void plannerKilledWhilePlanning() throws Exception {
    Job job = new Job(request("planner", EPOCHS));
    job.submit();
    // The planner takes the job's lease before it loads anything: the earliest sign it started.
    Path lease = leaseFile(job.id, TeacherInferenceService.PLANNER, 1);
    ServiceProcess.await(() -> Files.exists(lease), "the planner's lease on " + job.id, JOB);
    String planner = processOf(lease);
    kill(planner);
    List<ConsumerRecord<String, byte[]>> shardsAtKill = records(Topics.TEACHER_SHARDS, key -> key.startsWith(job.id + "/"));
    restart(planner);
    assertThat(shardsAtKill).as("shards published before the planner was killed").isEmpty();

    job.await(progress -> {});
    assertDoneOnce(job);
    assertThat(leaseFile(job.id, TeacherInferenceService.PLANNER, 2)).as("a new planner took the job over").exists();
  }

  @Test
  @Order(2)
  void labelerKilledMidLabelling() throws Exception {
    Job job = new Job(request("labeler", EPOCHS));
    String killed;
    try (TopicTail softLabels = new TopicTail(Topics.SOFT_LABELS, job.id)) {
      job.submit();
      // Killed while it labels a shard, once soft labels of the job are on the topic (two, so
      // that the one killed has likely published part of its shard, which is then labelled again).
      String[] labelling = new String[1];
      int batches = (trainingSamples + LABEL_BATCH - 1) / LABEL_BATCH;
      ServiceProcess.await(() -> {
        int published = softLabels.count();
        if (published < 2) {
          return false;
        }
        labelling[0] = Stream.of(TEACHER_A, TEACHER_B).filter(this::labelling).findFirst().orElse(null);
        if (labelling[0] == null && published >= batches) {
          throw new AssertionError("every soft label of " + job.id + " was published before a replica could be killed"
              + " mid-shard");
        }
        return labelling[0] != null;
      }, "a replica labelling a shard of " + job.id + " after its first soft labels", JOB);
      killed = labelling[0];
      kill(killed);
      System.out.printf("killed %s mid-labelling, %d soft-label records of %s on the topic%n", killed,
          softLabels.count(), job.id);
    }
    restart(killed);
    job.await(progress -> {});
    assertDoneOnce(job);
  }

  @Test
  @Order(3)
  void trainerKilledMidTraining() throws Exception {
    Job job = new Job(request("trainer", EPOCHS));
    job.submit();
    boolean[] killed = {false};
    job.await(progress -> {
      if (epochDone(progress) && !killed[0]) {
        killed[0] = true;
        kill(TRAINER);
        restart(TRAINER);
      }
    });
    assertThat(killed[0]).isTrue();
    assertDoneOnce(job);
    List<Long> firstRun = job.epochs(false);
    List<Long> resumed = job.epochs(true);
    System.out.printf("trainer killed after epochs %s; its replacement ran epochs %s%n", firstRun, resumed);
    long lastFinished = firstRun.get(firstRun.size() - 1);
    assertThat(lastFinished).isLessThan(EPOCHS);
    assertThat(resumed).as("epochs after the restart")
        .containsExactlyElementsOf(LongStream.rangeClosed(lastFinished + 1, EPOCHS).boxed().toList());
  }

  @Test
  @Order(4)
  void prunerKilledMidFineTuning() throws Exception {
    Job job = new Job(request("pruner", EPOCHS));
    job.submit();
    boolean[] killed = {false};
    job.await(progress -> {
      // Progress 1 is "step 1/1: pruned to ...": fine-tuning starts right after it.
      if (progress.getStage() == Stage.PRUNING && progress.getStep() == 1 && !killed[0]) {
        killed[0] = true;
        kill(PRUNER);
        restart(PRUNER);
      }
    });
    assertThat(killed[0]).isTrue();
    assertDoneOnce(job);
    assertThat(job.of(Stage.PRUNING).stream().filter(p -> p.getStep() == 1).count())
        .as("pruning started over by the new pruner").isGreaterThanOrEqualTo(2);
    assertThat(leaseFile(job.id, PrunerService.NAME, 2)).as("a new pruner took the job over").exists();
  }

  @Test
  @Order(5)
  void jobStatusKilledMidJob() throws Exception {
    Job job = new Job(request("status", EPOCHS));
    job.submit();
    boolean[] killed = {false};
    job.await(progress -> {
      if (!killed[0]) {
        killed[0] = true;
        kill(STATUS);
        restart(STATUS);
      }
    });
    assertThat(killed[0]).isTrue();
    services.get(STATUS).awaitReady(START);
    assertDoneOnce(job);
    // The new job-status rebuilt every earlier job too, each once, as it ended.
    for (Map.Entry<String, String> earlier : ended.entrySet()) {
      awaitStatus(earlier.getKey(), earlier.getValue());
    }
  }

  @Test
  @Order(6)
  void brokerRestartedMidJob() throws Exception {
    Job job = new Job(request("broker-restart", EPOCHS));
    job.submit();
    boolean[] restarted = {false};
    job.await(progress -> {
      // Mid-training: the trainer publishes its epochs' progress and then its checkpoint around the restart.
      if (epochDone(progress) && !restarted[0]) {
        restarted[0] = true;
        long began = System.nanoTime();
        broker.restart();
        System.out.printf("broker restarted in %s s after epoch %d of %d%n", seconds(began), progress.getStep(),
            progress.getTotalSteps());
      }
    });
    assertThat(restarted[0]).isTrue();
    assertDoneOnce(job);
  }

  @Test
  @Order(7)
  void brokerAwayForAMinuteMidJob() throws Exception {
    Job job = new Job(request("broker-away", EPOCHS));
    job.submit();
    Map<String, Double> notReadyAfter = new TreeMap<>();
    boolean[] away = {false};
    job.await(progress -> {
      // Mid-labelling: shards in progress, soft labels being published and assembled. A labeler's
      // send waits for the broker up to the producer's max.block.ms (60 s), then its shard is retried.
      if (softLabelsReceived(progress) && progress.getStep() < progress.getTotalSteps() && !away[0]) {
        away[0] = true;
        long stopped = System.nanoTime();
        broker.stop();
        for (String name : STAGE_PROCESSES) {
          ServiceProcess.await(() -> services.get(name).status("/ready") == 503, name + " not ready without the broker",
              OUTAGE.minusSeconds(15));
          notReadyAfter.put(name, (System.nanoTime() - stopped) / 1e9);
        }
        System.out.printf("broker away: /ready answered 503 after %s s; job-status /ready %d%n", notReadyAfter,
            services.get(STATUS).status("/ready"));
        long left = OUTAGE.toNanos() - (System.nanoTime() - stopped);
        if (left > 0) {
          TimeUnit.NANOSECONDS.sleep(left); // the outage itself: time must pass
        }
        broker.restart();
        long back = System.nanoTime();
        for (ServiceProcess service : services.values()) {
          service.awaitReady(START);
        }
        System.out.printf("broker back after %s s; every service ready again %s s later%n", seconds(stopped),
            seconds(back));
      }
    });
    assertThat(away[0]).isTrue();
    assertThat(notReadyAfter).containsOnlyKeys(STAGE_PROCESSES);
    assertDoneOnce(job);
  }

  @Test
  @Order(8)
  void aJobThatKeepsKillingTheTrainerIsFailedAfterItsAttempts() throws Exception {
    // More epochs than kills, so the last attempt is still training when it dies.
    Job job = new Job(request("poison", MAX_ATTEMPTS + 2));
    job.submit();
    List<Long> killedAfterEpochs = new ArrayList<>();
    job.await(progress -> {
      if (!epochDone(progress) || killedAfterEpochs.size() == MAX_ATTEMPTS) {
        return;
      }
      // An attempt after a kill resumes after the epoch it was killed in (or later): events the
      // killed process sent before it died resume after an earlier one, or not at all.
      double resumedAfter = progress.getMetrics().getOrDefault("resumedAfterEpoch", 0.0);
      long lastKill = killedAfterEpochs.isEmpty() ? 0 : killedAfterEpochs.get(killedAfterEpochs.size() - 1);
      if (killedAfterEpochs.isEmpty() ? resumedAfter == 0 : resumedAfter >= lastKill) {
        killedAfterEpochs.add(progress.getStep());
        kill(TRAINER);
        restart(TRAINER);
      }
    });
    System.out.printf("trainer killed after epochs %s; outcome: %s%n", killedAfterEpochs,
        job.outcome.failure() == null ? "a result" : job.outcome.failure().getReason());
    assertThat(killedAfterEpochs).hasSize(MAX_ATTEMPTS);
    JobFailure failure = job.outcome.failure();
    assertThat(failure).as("the job's failure").isNotNull();
    assertThat(failure.getStage()).isEqualTo(Stage.DISTILLATION);
    assertThat(failure.getReason()).contains("given up after " + MAX_ATTEMPTS + " attempts");
    assertThat(records(Topics.RESULTS, job.id::equals)).as("results").isEmpty();
    assertThat(records(Topics.FAILURES, job.id::equals)).as("failures").hasSize(1);
    List<ConsumerRecord<String, byte[]>> deadLetters = records(Topics.DEAD_LETTERS, job.id::equals);
    assertThat(deadLetters).as("dead letters of " + job.id).hasSize(1);
    assertThat(PipelineScenario.header(deadLetters.get(0), DeadLetters.ATTEMPTS)).isEqualTo(String.valueOf(MAX_ATTEMPTS));
    assertThat(PipelineScenario.header(deadLetters.get(0), DeadLetters.SOURCE_TOPIC)).isEqualTo(Topics.SOFT_LABELS.name());
    awaitStatus(job.id, "FAILED");
    ended.put(job.id, "FAILED");
    // Not replayed: the trainer's group moves past the job's records and its process stays up.
    awaitCommittedToEnd(StudentTrainerService.NAME, Topics.SOFT_LABELS.name());
    assertThat(services.get(TRAINER).awaitReady(START).alive()).isTrue();
    // Failed for good, so nothing will resume it: its training state must not stay behind.
    assertThat(artifacts.resolve("training").resolve(job.id)).as("training state of the given-up " + job.id)
        .doesNotExist();
  }

  /** Late duplicates show only later: at the end, each job still has its one outcome and one status. */
  @Test
  @Order(100)
  void everyJobEndedOnce() throws Exception {
    assertThat(ended).isNotEmpty();
    Map<String, Long> results = records(Topics.RESULTS, ended::containsKey).stream()
        .collect(java.util.stream.Collectors.groupingBy(ConsumerRecord::key, java.util.stream.Collectors.counting()));
    Map<String, Long> failures = records(Topics.FAILURES, ended::containsKey).stream()
        .collect(java.util.stream.Collectors.groupingBy(ConsumerRecord::key, java.util.stream.Collectors.counting()));
    for (Map.Entry<String, String> job : ended.entrySet()) {
      boolean done = job.getValue().equals("DONE");
      assertThat(results.getOrDefault(job.getKey(), 0L)).as("results of " + job.getKey()).isEqualTo(done ? 1 : 0);
      assertThat(failures.getOrDefault(job.getKey(), 0L)).as("failures of " + job.getKey()).isEqualTo(done ? 0 : 1);
      awaitStatus(job.getKey(), job.getValue());
    }
  }

  // ---------------------------------------------------------------------------------------------
  // The job and what must hold once it ended

  /** A scenario's job: its request, every progress event seen, and how it ended. */
  private final class Job {
    final CompressionRequest request;
    final String id;
    final List<JobProgress> progress = new ArrayList<>();
    long submittedAtMs;
    JobWatcher.Outcome outcome;

    Job(CompressionRequest request) {
      this.request = request;
      this.id = request.getJobId();
    }

    void submit() throws Exception {
      submittedAtMs = System.currentTimeMillis();
      PipelineScenario.send(producer, request);
    }

    /** Seconds from the submission to the first progress event that matches, as "-" if none did. */
    String secondsTo(Predicate<JobProgress> event) {
      return progress.stream().filter(event).findFirst()
          .map(p -> String.format("%.1f", (p.getTimestampMs() - submittedAtMs) / 1e3)).orElse("-");
    }

    /** When the job was planned, labelled, trained and pruned, in seconds after its submission. */
    String timeline() {
      return "planned " + secondsTo(p -> p.getMessage().contains(" shards of "))
          + " s, labelled " + secondsTo(p -> softLabelsReceived(p) && p.getStep() == p.getTotalSteps())
          + " s, trained " + secondsTo(p -> epochDone(p) && p.getStep() == p.getTotalSteps())
          + " s, result " + (outcome == null || outcome.result() == null ? "-"
              : String.format("%.1f", (outcome.result().getCompletedAtMs() - submittedAtMs) / 1e3)) + " s";
    }

    /** Follows the job to its end, passing each progress event to {@code fault} (which may inject one). */
    void await(Fault fault) throws Exception {
      outcome = watcher.await(id, JOB, event -> {
        progress.add(event);
        try {
          fault.on(event);
        } catch (Exception e) {
          throw new AssertionError("injecting the fault failed", e);
        }
      });
    }

    List<JobProgress> of(Stage stage) {
      return progress.stream().filter(p -> p.getStage() == stage).toList();
    }

    /** The distillation epochs reported, by the first run ({@code resumed} false) or a resumed one. */
    List<Long> epochs(boolean resumed) {
      return of(Stage.DISTILLATION).stream().filter(FaultInjectionTest::epochDone)
          .filter(p -> p.getMetrics().containsKey("resumedAfterEpoch") == resumed)
          .map(JobProgress::getStep).toList();
    }
  }

  @FunctionalInterface
  private interface Fault {
    void on(JobProgress progress) throws Exception;
  }

  /**
   * The job is DONE with exactly one result and no failure or dead letter; every soft label is on
   * the topic (repeats carry the same values) and the trainer received each once; the result's
   * files are there as it says; the models equal the first job's; the training state is gone; and
   * job-status shows the job once, DONE.
   */
  private void assertDoneOnce(Job job) throws Exception {
    // Every batch of soft labels is on the topic, each as the first job's (one teacher, one data set);
    // a shard labelled again repeats batches with equal values. Checked first: it explains a failure.
    Map<Integer, ByteBuffer> batches = new TreeMap<>();
    int repeated = 0;
    int batchCount = 0;
    for (ConsumerRecord<String, byte[]> record : records(Topics.SOFT_LABELS, job.id::equals)) {
      SoftLabelBatch batch = Topics.SOFT_LABELS.valueSerde().deserializer().deserialize(record.topic(), record.value());
      batchCount = batch.getBatchCount();
      ByteBuffer first = batches.putIfAbsent(batch.getBatchIndex(), batch.getScaledLogits());
      if (first != null) {
        repeated++;
        assertThat(batch.getScaledLogits()).as("batch " + batch.getBatchIndex() + " labelled again").isEqualTo(first);
      }
    }
    assertThat(batches.keySet()).as("soft-label batches of " + job.id)
        .containsExactlyElementsOf(java.util.stream.IntStream.range(0, batchCount).boxed().toList());
    if (referenceLabels == null) {
      referenceLabels = batches;
      assertThat(batches.values()).as("soft labels of " + job.id).allSatisfy(values -> {
        java.nio.FloatBuffer floats = values.duplicate().order(java.nio.ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
        while (floats.hasRemaining()) {
          assertThat(floats.get()).isFinite();
        }
      });
    }
    assertThat(batches).as("soft labels of " + job.id + " against the first job's").isEqualTo(referenceLabels);

    assertThat(job.outcome.failure()).as("failure of " + job.id).isNull();
    JobResult result = job.outcome.result();
    assertThat(records(Topics.RESULTS, job.id::equals)).as("results of " + job.id).hasSize(1);
    assertThat(records(Topics.FAILURES, job.id::equals)).as("failures of " + job.id).isEmpty();
    assertThat(records(Topics.DEAD_LETTERS, key -> key != null && (key.equals(job.id) || key.startsWith(job.id + "/"))))
        .as("dead letters of " + job.id).isEmpty();

    // The trainer counts each sample once, repeats or not, and reported the whole set.
    List<JobProgress> received = job.of(Stage.TEACHER_INFERENCE).stream().filter(FaultInjectionTest::softLabelsReceived)
        .toList();
    assertThat(received).as("soft labels received").isNotEmpty()
        .allSatisfy(p -> assertThat(p.getStep()).isLessThanOrEqualTo(p.getTotalSteps()).isPositive())
        .allSatisfy(p -> assertThat(p.getTotalSteps()).isEqualTo(trainingSamples));
    assertThat(received.stream().mapToLong(JobProgress::getStep).max().orElseThrow()).isEqualTo(trainingSamples);

    // The result's checkpoint is where it says, with the bytes it says.
    Path checkpoint = ArtifactStore.open(result.getFinalCheckpoint());
    assertThat(ArtifactStore.sha256Of(checkpoint)).isEqualTo(result.getFinalCheckpoint().getSha256());
    assertThat(result.getStudent().getBestEpoch()).isBetween(1, job.request.getDistillation().getEpochs());
    // Chance is 0.1 (3 epochs of plain SGD on 1,800 images: a sanity bound, not a benchmark).
    assertThat(result.getStudent().getTestAccuracy()).isGreaterThan(0.3);
    assertThat(result.getPruned().getTestAccuracy()).isGreaterThan(0.3);
    List<String> students = records(Topics.CHECKPOINTS, job.id::equals).stream()
        .map(r -> Topics.CHECKPOINTS.valueSerde().deserializer().deserialize(r.topic(), r.value()))
        .filter(c -> c.getProducedBy() == Stage.DISTILLATION)
        .map(c -> c.getCheckpoint().getSha256()).distinct().toList();
    assertThat(students).as("distilled students of " + job.id).hasSize(1);
    Fingerprint fingerprint = new Fingerprint(result.getStudent().getTestAccuracy(), result.getStudent().getBestEpoch(),
        students.get(0), result.getPruned().getTestAccuracy(), result.getFinalCheckpoint().getSha256());
    System.out.printf("%s: %s; %d soft-label batches (%d repeated); %s%n", job.id, job.timeline(), batches.size(),
        repeated, fingerprint);
    if (reference == null) {
      reference = fingerprint;
    }
    assertThat(fingerprint).as("the models of " + job.id + " against the first job's").isEqualTo(reference);
    assertThat(artifacts.resolve("training").resolve(job.id)).as("training state of " + job.id).doesNotExist();

    awaitStatus(job.id, "DONE");
    ended.put(job.id, "DONE");
  }

  /** job-status lists the job exactly once, in {@code state}, and answers the same for the job alone. */
  private void awaitStatus(String jobId, String state) throws InterruptedException {
    String[] seen = {null};
    ServiceProcess.await(() -> {
      Optional<JsonNode> all = api("/api/jobs");
      Optional<JsonNode> one = api("/api/jobs/" + jobId);
      if (all.isEmpty() || one.isEmpty()) {
        return false;
      }
      List<String> listed = new ArrayList<>();
      all.get().forEach(status -> {
        if (jobId.equals(status.path("jobId").asText())) {
          listed.add(status.path("state").asText());
        }
      });
      seen[0] = "listed " + listed + ", alone " + one.get().path("state").asText();
      return listed.equals(List.of(state)) && state.equals(one.get().path("state").asText());
    }, "job-status showing " + jobId + " once, " + state + " (last seen: " + seen[0] + ")", Duration.ofSeconds(60));
  }

  private Optional<JsonNode> api(String path) {
    try {
      HttpResponse<String> response = services.get(STATUS).get(path, Map.of("Authorization", "Bearer " + TOKEN));
      return response.statusCode() == 200 ? Optional.of(JSON.readTree(response.body())) : Optional.empty();
    } catch (Exception e) {
      return Optional.empty();
    }
  }

  /** A distillation epoch's progress (not a retry's note, which is step 0). */
  private static boolean epochDone(JobProgress progress) {
    return progress.getStage() == Stage.DISTILLATION && progress.getStep() > 0;
  }

  private static boolean softLabelsReceived(JobProgress progress) {
    return progress.getStage() == Stage.TEACHER_INFERENCE && progress.getMessage().equals("soft labels received");
  }

  // ---------------------------------------------------------------------------------------------
  // Processes

  private static Class<?> mainClass(String name) {
    return switch (name) {
      case TEACHER_A, TEACHER_B -> TeacherInferenceService.class;
      case TRAINER -> StudentTrainerService.class;
      case PRUNER -> PrunerService.class;
      case STATUS -> JobStatusService.class;
      default -> throw new IllegalArgumentException(name);
    };
  }

  /** Each service as a deployment would configure it, with the short timeouts a test can afford. */
  private Map<String, String> environment(String name) {
    Map<String, String> env = new TreeMap<>(Map.of(
        "KAFKA_BOOTSTRAP_SERVERS", broker.bootstrapServers(),
        // A killed process leaves its group after this, and its lease expires after DISTILLERY_LEASE_MS.
        "KAFKA_SESSION_TIMEOUT_MS", "6000",
        "KAFKA_HEARTBEAT_INTERVAL_MS", "500",
        "DISTILLERY_ARTIFACTS_DIR", artifacts.toString(),
        "DISTILLERY_MODEL_ROOTS", UserModelPipelineTest.MODELS.toString(),
        "DISTILLERY_DATASET_ROOTS", PipelineScenario.SUBSET.getParent().toString(),
        "DISTILLERY_TORCH_THREADS", "1",
        "DISTILLERY_LEASE_MS", "6000",
        // Which kernels pass the start-up probe is not this test's business, and about fifteen
        // processes start here: libtorch's own kernels need no probe (a failing oneDNN probe costs
        // each start seconds of diagnosis in child JVMs) and are right on every CPU.
        "DISTILLERY_KERNELS", "native"));
    if (name.equals(TEACHER_A) || name.equals(TEACHER_B)) {
      // Two shards of four soft-label batches: a replica killed mid-shard leaves part of it published.
      env.put("DISTILLERY_SHARD_SIZE", "1024");
    }
    if (name.equals(STATUS)) {
      env.put("DISTILLERY_API_TOKENS", TOKEN);
    }
    return env;
  }

  private void kill(String name) throws InterruptedException {
    services.get(name).kill();
  }

  /** A replacement for a killed process, as its deployment would start (not waited for). */
  private void restart(String name) throws Exception {
    services.put(name, services.get(name).startAnother());
  }

  /** Whether the teacher-inference process {@code name} is labelling a shard right now. */
  private boolean labelling(String name) {
    try {
      HttpResponse<String> metrics = services.get(name).get("/metrics", Map.of());
      Matcher matcher = LABELLING.matcher(metrics.body());
      return matcher.find() && Long.parseLong(matcher.group(1)) > 0;
    } catch (Exception e) {
      return false;
    }
  }

  /** The name of the process holding {@code lease}: its owner is "pid@host/...". */
  private String processOf(Path lease) throws Exception {
    String owner = Files.readString(lease);
    long pid = Long.parseLong(owner.substring(0, owner.indexOf('@')));
    return services.entrySet().stream().filter(e -> e.getValue().pid() == pid).map(Map.Entry::getKey).findFirst()
        .orElseThrow(() -> new AssertionError("no service process " + pid + " holds " + lease));
  }

  private Path leaseFile(String jobId, String stage, int epoch) {
    return artifacts.resolve(".jobs").resolve(jobId + "." + stage + ".lease." + epoch);
  }

  // ---------------------------------------------------------------------------------------------
  // Topics

  private CompressionRequest request(String name, int epochs) {
    CompressionRequest demo = DemoMain.request("fault-" + name + "-" + suffix, TEACHER, data);
    return CompressionRequest.newBuilder(demo)
        // The shipped ResNet-18 at 1/8 width, trained on Fashion-MNIST: no model to train first.
        .setTeacher(TeacherSpec.newBuilder().setFormat(ModelFormat.TORCHSCRIPT).setArchitecture(null)
            .setCheckpointUri(TEACHER.toUri().toString()).setInput(UserModelPipelineTest.INPUT).build())
        // SGD without momentum keeps no optimizer state: a resumed run equals one never interrupted.
        .setDistillation(DistillationSettings.newBuilder(demo.getDistillation()).setEpochs(epochs)
            .setOptimizer(OptimizerKind.SGD).setMomentum(0.0).setLearningRate(0.1).setHardLabelBaseline(false).build())
        .setPruning(PruningSettings.newBuilder().setMethod(PruningMethod.L1_UNSTRUCTURED).setTargetSparsity(0.5)
            .setSteps(1).setFineTuneEpochs(1).setLearningRate(0.0005).build())
        .build();
  }

  /** The records of {@code topic} whose key matches, from the first to the current end. */
  private List<ConsumerRecord<String, byte[]>> records(Topic<?> topic, Predicate<String> key) {
    List<ConsumerRecord<String, byte[]>> found = new ArrayList<>();
    try (KafkaConsumer<String, byte[]> consumer = PipelineScenario.fromBeginning(broker.bootstrapServers(), topic.name())) {
      Map<TopicPartition, Long> end = consumer.endOffsets(consumer.assignment());
      long deadline = System.nanoTime() + Duration.ofMinutes(1).toNanos();
      while (end.entrySet().stream().anyMatch(e -> consumer.position(e.getKey()) < e.getValue())) {
        if (System.nanoTime() > deadline) {
          throw new AssertionError("could not read " + topic.name() + " to its end");
        }
        for (ConsumerRecord<String, byte[]> record : consumer.poll(Duration.ofMillis(200))) {
          if (record.key() != null && key.test(record.key())) {
            found.add(record);
          }
        }
      }
    }
    return found;
  }

  /** Waits until {@code group} committed every partition of {@code topic} up to its end. */
  private void awaitCommittedToEnd(String group, String topic) throws Exception {
    try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, broker.bootstrapServers()));
        KafkaConsumer<String, byte[]> reader = PipelineScenario.fromBeginning(broker.bootstrapServers(), topic)) {
      Map<TopicPartition, Long> end = reader.endOffsets(reader.assignment());
      String[] seen = {""};
      ServiceProcess.await(() -> {
        try {
          Map<TopicPartition, OffsetAndMetadata> committed =
              admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
          seen[0] = committed.toString();
          return end.entrySet().stream().allMatch(e -> committed.containsKey(e.getKey())
              && committed.get(e.getKey()).offset() >= e.getValue());
        } catch (Exception e) {
          return false;
        }
      }, group + " committed " + topic + " to its end " + end + " (committed: " + seen[0] + ")", Duration.ofMinutes(1));
    }
  }

  /** Records of one key on a topic from the moment it is made, read on a thread of its own. */
  private final class TopicTail implements AutoCloseable {
    private final KafkaConsumer<String, byte[]> consumer;
    private final Thread thread;
    private final String key;
    private volatile int count;
    private volatile boolean running = true;

    TopicTail(Topic<?> topic, String key) {
      this.key = key;
      this.consumer = PipelineScenario.fromBeginning(broker.bootstrapServers(), topic.name());
      consumer.seekToEnd(consumer.assignment());
      consumer.assignment().forEach(consumer::position); // fixes "the end" now, before the job starts
      this.thread = new Thread(this::read, "tail-" + topic.name());
      thread.setDaemon(true);
      thread.start();
    }

    private void read() {
      while (running) {
        for (ConsumerRecord<String, byte[]> record : consumer.poll(Duration.ofMillis(50))) {
          if (key.equals(record.key())) {
            count++;
          }
        }
      }
    }

    int count() {
      return count;
    }

    @Override
    public void close() throws InterruptedException {
      running = false;
      thread.join(10_000);
      consumer.close();
    }
  }

  // ---------------------------------------------------------------------------------------------

  private static String seconds(long sinceNanos) {
    return String.format("%.1f", (System.nanoTime() - sinceNanos) / 1e9);
  }

  private static void deleteRecursively(Path dir) throws Exception {
    if (Files.exists(dir)) {
      try (Stream<Path> paths = Files.walk(dir)) {
        for (Path path : paths.sorted(java.util.Comparator.reverseOrder()).toList()) {
          Files.delete(path);
        }
      }
    }
  }
}
