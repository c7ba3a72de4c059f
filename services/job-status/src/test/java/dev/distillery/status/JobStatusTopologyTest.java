package dev.distillery.status;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.distillery.schemas.ArtifactRef;
import dev.distillery.schemas.CheckpointReady;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.JobCancellation;
import dev.distillery.schemas.JobContext;
import dev.distillery.schemas.JobFailure;
import dev.distillery.schemas.JobProgress;
import dev.distillery.schemas.JobResult;
import dev.distillery.schemas.JobState;
import dev.distillery.schemas.JobStatus;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.StudentSpec;
import dev.distillery.schemas.StageStatus;
import dev.distillery.schemas.json.PlainJson;
import dev.distillery.schemas.kafka.Topic;
import dev.distillery.schemas.kafka.Topics;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.TestInputTopic;
import org.apache.kafka.streams.TopologyTestDriver;
import org.apache.kafka.streams.errors.LogAndContinueExceptionHandler;
import org.apache.kafka.streams.state.KeyValueStore;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The job-status fold through the real topology: order, duplicates, failures, cancellations, bad
 * records, the retention of ended jobs and the size of the history.
 */
class JobStatusTopologyTest {
  private static final String APPLICATION = "job-status-test";
  private static final Duration RETENTION = Duration.ofHours(1);
  private final List<JobStatus> changes = new ArrayList<>();
  private final List<String> removed = new ArrayList<>();
  private TopologyTestDriver driver;

  /** One event on its topic at its time. */
  record Event(Topic<Object> topic, Object value, long timestampMs) {}

  @BeforeEach
  void start() {
    Properties props = new Properties();
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, APPLICATION);
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, "unused:9092");
    props.put(StreamsConfig.DESERIALIZATION_EXCEPTION_HANDLER_CLASS_CONFIG, LogAndContinueExceptionHandler.class);
    // The wall clock starts with the events' times (a few seconds after the epoch) and moves only when told.
    driver = new TopologyTestDriver(JobStatusTopology.build(RETENTION, changes::add, removed::add), props,
        Instant.ofEpochMilli(0));
  }

  @AfterEach
  void stop() {
    driver.close();
  }

  @Test
  void foldsAJobFromRequestToResult() throws Exception {
    for (Event event : finishedJob("job-1", 1_000)) {
      pipe(event);
    }
    JobStatus status = store().get("job-1");
    assertThat(status.getState()).isEqualTo(JobState.DONE);
    assertThat(status.getRequest().getStudent().getArchitecture()).isEqualTo("lenet5");
    assertThat(status.getSubmittedAtMs()).isEqualTo(1_000);
    assertThat(status.getStages()).extracting(StageStatus::getStage)
        .containsExactly(Stage.TEACHER_INFERENCE, Stage.DISTILLATION, Stage.PRUNING);
    assertThat(status.getStages()).allMatch(StageStatus::getDone);
    assertThat(status.getStages().get(1).getLatest().getStep()).isEqualTo(3);
    // Epoch figures for the charts: three distillation epochs and one pruning step.
    assertThat(status.getHistory()).extracting(JobProgress::getStage)
        .containsExactly(Stage.DISTILLATION, Stage.DISTILLATION, Stage.DISTILLATION, Stage.PRUNING);
    assertThat(status.getResult().getSparsity()).isEqualTo(0.5);
    assertThat(changes).hasSize(finishedJob("job-1", 1_000).size());
    assertThat(changes.get(0).getState()).isEqualTo(JobState.ACCEPTED);
    assertThat(changes.get(1).getState()).isEqualTo(JobState.RUNNING);
  }

  @Test
  void anyOrderAndRepeatedEventsGiveTheSameStatus() throws Exception {
    for (boolean withResult : new boolean[] {true, false}) {
      String prefix = withResult ? "done-" : "failed-";
      troubledJob(prefix + "ordered", withResult).forEach(this::pipe);
      String expected = renamed(store().get(prefix + "ordered"));
      assertThat(store().get(prefix + "ordered").getState()).isEqualTo(withResult ? JobState.DONE : JobState.FAILED);
      for (long seed = 1; seed <= 20; seed++) {
        String jobId = prefix + "shuffled-" + seed;
        List<Event> shuffled = new ArrayList<>(troubledJob(jobId, withResult));
        shuffled.addAll(troubledJob(jobId, withResult).subList(0, (int) seed % 7 + 1)); // at-least-once: repeats
        Collections.shuffle(shuffled, new Random(seed));
        shuffled.forEach(this::pipe);
        assertThat(renamed(store().get(jobId))).as("%s, seed %d", prefix, seed).isEqualTo(expected);
      }
    }
  }

  /** A second request under a used id, even one claiming an earlier time, and its refusal change nothing. */
  @Test
  void aLaterRequestUnderAUsedIdAndItsRefusalLeaveTheJobAsItWas() throws Exception {
    finishedJob("taken", 1_000).forEach(this::pipe);
    JobStatus before = store().get("taken");
    CompressionRequest other = CompressionRequest.newBuilder(request("taken")).setSubmittedAtMs(10L)
        .setStudent(StudentSpec.newBuilder().setArchitecture("mlp").setWidth(1.0).build()).build();
    pipe(new Event(topic(Topics.REQUESTS), other, 20_000));
    pipe(new Event(topic(Topics.FAILURES), new JobFailure("taken", Stage.TEACHER_INFERENCE, "jobId",
        "already used by another request", 20_001L, true), 20_001));
    assertThat(store().get("taken")).isEqualTo(before);
    assertThat(before.getState()).isEqualTo(JobState.DONE);
  }

  /** A request keyed by another job's id would show as that job's request: it is skipped. */
  @Test
  void aRequestKeyedByAnotherIdIsSkipped() throws Exception {
    driver.createInputTopic(Topics.REQUESTS.name(), new StringSerializer(), Topics.REQUESTS.valueSerde().serializer())
        .pipeInput("victim", request("attacker"), 1_000);
    assertThat(store().get("victim")).isNull();
    finishedJob("victim", 2_000).forEach(this::pipe);
    assertThat(store().get("victim").getRequest().getJobId()).isEqualTo("victim");
  }

  @Test
  void aCancelledJobStaysCancelledWhateverArrivesAfter() throws Exception {
    List<Event> job = finishedJob("cancelled", 1_000);
    job.subList(0, 4).forEach(this::pipe); // requested, labelled, one epoch of distillation
    assertThat(store().get("cancelled").getState()).isEqualTo(JobState.RUNNING);

    pipe(cancellation("cancelled", "wrong dataset", 4_500));
    JobStatus cancelled = store().get("cancelled");
    assertThat(cancelled.getState()).isEqualTo(JobState.CANCELLED);
    assertThat(cancelled.getCancellation().getReason()).isEqualTo("wrong dataset");
    assertThat(cancelled.getCancellation().getRequestedBy()).isEqualTo("cli");

    // The stages had work in flight: its progress, result and failure come after the cancellation.
    job.subList(4, job.size()).forEach(this::pipe);
    pipe(new Event(topic(Topics.FAILURES), new JobFailure("cancelled", Stage.PRUNING, null, "late", 9_500L, false), 9_500));
    JobStatus after = store().get("cancelled");
    assertThat(after.getState()).isEqualTo(JobState.CANCELLED);
    assertThat(after.getResult()).isNull();
    assertThat(after.getFailure()).isNull();
    assertThat(after.getCancellation().getReason()).isEqualTo("wrong dataset");
    assertThat(after.getUpdatedAtMs()).isEqualTo(9_500);
    // A second cancellation, earlier by its clock: the earlier one is shown.
    pipe(cancellation("cancelled", "sooner", 4_400));
    assertThat(store().get("cancelled").getCancellation().getReason()).isEqualTo("sooner");
    assertThat(store().get("cancelled").getState()).isEqualTo(JobState.CANCELLED);
  }

  @Test
  void aCancellationOfAnEndedJobChangesOnlyItsTimes() throws Exception {
    finishedJob("done", 1_000).forEach(this::pipe);
    JobStatus done = store().get("done");
    pipe(cancellation("done", "too late", 20_000));
    assertThat(store().get("done")).isEqualTo(JobStatus.newBuilder(done).setUpdatedAtMs(20_000).build());

    List<Event> failing = finishedJob("failed", 1_000);
    failing.subList(0, 3).forEach(this::pipe);
    pipe(new Event(topic(Topics.FAILURES), new JobFailure("failed", Stage.DISTILLATION, null, "out of memory",
        3_500L, false), 3_500));
    pipe(cancellation("failed", "too late", 4_000));
    assertThat(store().get("failed").getState()).isEqualTo(JobState.FAILED);
    assertThat(store().get("failed").getCancellation()).isNull();
  }

  /** A cancellation before anything else of its job (another client, another partition): the request fills in later. */
  @Test
  void aCancellationFirstThenTheRequestIsOneCancelledJob() throws Exception {
    pipe(cancellation("early", "never mind", 500));
    List<Event> job = finishedJob("early", 1_000);
    pipe(job.get(0));
    pipe(job.get(1));
    JobStatus early = store().get("early");
    assertThat(early.getState()).isEqualTo(JobState.CANCELLED);
    assertThat(early.getRequest().getJobId()).isEqualTo("early");
    assertThat(early.getSubmittedAtMs()).isEqualTo(500);
  }

  /** A cancellation keyed by another job's id would cancel that job: it is skipped. */
  @Test
  void aCancellationKeyedByAnotherIdIsSkipped() throws Exception {
    List<Event> job = finishedJob("victim", 1_000);
    job.subList(0, 3).forEach(this::pipe);
    driver.createInputTopic(Topics.CANCELLATIONS.name(), new StringSerializer(),
            Topics.CANCELLATIONS.valueSerde().serializer())
        .pipeInput("victim", new JobCancellation("attacker", "", "cli", 3_500L), 3_500);
    assertThat(store().get("victim").getState()).isEqualTo(JobState.RUNNING);
    assertThat(store().get("attacker")).isNull();
  }

  /**
   * Once the retention has passed since an ended job's last event (by the wall clock), the job is
   * deleted from the store and its changelog gets a tombstone; a running job and a job that ended
   * later stay.
   */
  @Test
  void anEndedJobIsRemovedAfterItsRetentionWithATombstoneAndARunningJobIsNot() throws Exception {
    finishedJob("old-done", 1_000).forEach(this::pipe);
    List<Event> running = finishedJob("old-running", 1_000);
    running.subList(0, 4).forEach(this::pipe);
    pipe(cancellation("old-cancelled", "", 2_000));
    List<Event> recent = finishedJob("recent-failed", 1_000);
    recent.subList(0, 2).forEach(this::pipe);
    long recentEnd = RETENTION.toMillis() / 2;
    pipe(new Event(topic(Topics.FAILURES), new JobFailure("recent-failed", Stage.TEACHER_INFERENCE, null, "disk full",
        recentEnd, false), recentEnd));

    driver.advanceWallClockTime(RETENTION.minusMinutes(10)); // not yet for anyone
    assertThat(store().get("old-done")).isNotNull();
    assertThat(removed).isEmpty();

    driver.advanceWallClockTime(Duration.ofMinutes(11));
    assertThat(store().get("old-done")).isNull();
    assertThat(store().get("old-cancelled")).isNull();
    assertThat(removed).containsExactlyInAnyOrder("old-done", "old-cancelled");
    assertThat(store().get("old-running").getState()).isEqualTo(JobState.RUNNING);
    assertThat(store().get("recent-failed").getState()).isEqualTo(JobState.FAILED);
    List<KeyValue<String, byte[]>> changelog = driver.createOutputTopic(APPLICATION + "-" + JobStatusTopology.STORE
        + "-changelog", new StringDeserializer(), new ByteArrayDeserializer()).readKeyValuesToList();
    assertThat(changelog).filteredOn(record -> record.value == null).extracting(record -> record.key)
        .containsExactlyInAnyOrder("old-done", "old-cancelled");
    assertThat(changelog).filteredOn(record -> record.key.equals("old-done")).last()
        .extracting(record -> record.value).isNull();

    driver.advanceWallClockTime(RETENTION.dividedBy(2));
    assertThat(store().get("recent-failed")).isNull();
    assertThat(store().get("old-running")).isNotNull();
  }

  /**
   * A long run's history is summarised: at most {@link JobStatusFold#HISTORY_PER_STAGE} entries per
   * stage, each stage's first and latest step among them, the others evenly spread; the status
   * stays small.
   */
  @Test
  void theHistoryStaysSmallAndKeepsEachStagesFirstAndLatestStep() throws Exception {
    List<Event> job = finishedJob("long", 1_000);
    pipe(job.get(0));
    int epochs = 1_000;
    for (int epoch = 1; epoch <= epochs; epoch++) {
      pipe(progress("long", Stage.DISTILLATION, epoch, epochs, Map.of("loss", 1.0 / epoch, "learningRate", 0.001),
          2_000 + epoch));
    }
    for (int step = 1; step <= 10; step++) {
      pipe(progress("long", Stage.PRUNING, step, 10, Map.of("accuracyPruned", 0.7), 10_000 + step));
    }
    JobStatus status = store().get("long");
    List<Long> distillation = status.getHistory().stream().filter(p -> p.getStage() == Stage.DISTILLATION)
        .map(JobProgress::getStep).toList();
    assertThat(distillation).hasSize(JobStatusFold.HISTORY_PER_STAGE).startsWith(1L).endsWith((long) epochs)
        .isSorted();
    List<Long> gaps = new ArrayList<>();
    for (int i = 1; i < distillation.size(); i++) {
      gaps.add(distillation.get(i) - distillation.get(i - 1));
    }
    double even = (double) (epochs - 1) / (distillation.size() - 1);
    assertThat(gaps).allMatch(gap -> gap >= even / 2 && gap <= even * 2, "within half and twice of " + even);
    assertThat(status.getHistory()).filteredOn(p -> p.getStage() == Stage.PRUNING).hasSize(10);
    assertThat(JobStatusTopology.SERDE.serializer().serialize("t", status).length).isLessThan(16_000);
    assertThat(status.getStages().get(0).getLatest().getStep()).isEqualTo(epochs);
  }

  @Test
  void theStoreIsSweptEveryTenthOfTheRetentionBetween100MillisecondsAndAMinute() {
    assertThat(JobStatusTopology.sweepInterval(Duration.ofDays(7))).isEqualTo(Duration.ofMinutes(1));
    assertThat(JobStatusTopology.sweepInterval(Duration.ofSeconds(5))).isEqualTo(Duration.ofMillis(500));
    assertThat(JobStatusTopology.sweepInterval(Duration.ofMillis(200))).isEqualTo(Duration.ofMillis(100));
  }

  private static Event cancellation(String jobId, String reason, long timestampMs) {
    return new Event(topic(Topics.CANCELLATIONS), new JobCancellation(jobId, reason, "cli", timestampMs), timestampMs);
  }

  /**
   * A job with everything that can conflict: two failures, a progress step sent twice with other
   * figures (a restarted stage), and, if {@code withResult}, a result after all (a retry).
   */
  private static List<Event> troubledJob(String jobId, boolean withResult) throws Exception {
    List<Event> events = new ArrayList<>(finishedJob(jobId, 1_000));
    Event result = events.remove(events.size() - 1);
    events.add(new Event(topic(Topics.FAILURES),
        new JobFailure(jobId, Stage.PRUNING, null, "out of memory", 8_500L, false), 8_500));
    events.add(new Event(topic(Topics.FAILURES),
        new JobFailure(jobId, Stage.DISTILLATION, "distillation.learningRate", "diverged", 8_400L, false), 8_400));
    events.add(progress(jobId, Stage.DISTILLATION, 2, 3, Map.of("loss", 0.4), 9_000));
    if (withResult) {
      events.add(result);
    }
    return events;
  }

  @Test
  void failureIsFinalButAResultOverridesIt() throws Exception {
    List<Event> job = finishedJob("failing", 1_000);
    pipe(job.get(0));
    pipe(job.get(1));
    JobFailure failure = new JobFailure("failing", Stage.DISTILLATION, "distillation.learningRate",
        "training diverged at epoch 1, step 7", 1_500L, false);
    pipe(new Event(topic(Topics.FAILURES), failure, 1_500));
    pipe(job.get(2)); // late progress
    JobStatus failed = store().get("failing");
    assertThat(failed.getState()).isEqualTo(JobState.FAILED);
    assertThat(failed.getFailure().getField()).isEqualTo("distillation.learningRate");
    assertThat(failed.getFailure().getReason()).contains("diverged");

    pipe(job.get(job.size() - 1)); // a retry that succeeded
    assertThat(store().get("failing").getState()).isEqualTo(JobState.DONE);
    assertThat(store().get("failing").getFailure()).isNull();
    pipe(new Event(topic(Topics.FAILURES), failure, 9_000)); // and a stale failure after it
    assertThat(store().get("failing").getState()).isEqualTo(JobState.DONE);
  }

  @Test
  void skipsRecordsItCannotReadAndGoesOn() throws Exception {
    driver.createInputTopic(Topics.PROGRESS.name(), new StringSerializer(), new ByteArraySerializer())
        .pipeInput("garbage", "not avro".getBytes());
    driver.createInputTopic(Topics.RESULTS.name(), new StringSerializer(), new ByteArraySerializer())
        .pipeInput(null, new byte[] {1, 2, 3});
    finishedJob("after-garbage", 1_000).forEach(this::pipe);
    assertThat(store().get("garbage")).isNull();
    assertThat(store().get("after-garbage").getState()).isEqualTo(JobState.DONE);
  }

  @Test
  void statusesAreWrittenAsPlainJson() throws Exception {
    finishedJob("json", 1_000).forEach(this::pipe);
    JsonNode json = PlainJson.write(store().get("json"));
    assertThat(json.get("state").asText()).isEqualTo("DONE");
    assertThat(json.get("request").get("student").get("architecture").asText()).isEqualTo("lenet5");
    assertThat(json.get("result").get("pruned").get("hiddenUnits").isArray()).isTrue();
    // NaN, which JSON cannot hold, is written as null.
    assertThat(json.get("history").get(0).get("metrics").get("validationAccuracy").isNull()).isTrue();
  }

  /** A whole job's events in the order the pipeline sends them, a second apart from {@code start}. */
  static List<Event> finishedJob(String jobId, long start) throws Exception {
    CompressionRequest request = request(jobId);
    List<Event> events = new ArrayList<>();
    long[] t = {start};
    events.add(new Event(topic(Topics.REQUESTS), request, t[0]));
    events.add(progress(jobId, Stage.TEACHER_INFERENCE, 1, 2, Map.of(), t[0] += 1000));
    events.add(progress(jobId, Stage.TEACHER_INFERENCE, 2, 2, Map.of(), t[0] += 1000));
    for (int epoch = 1; epoch <= 3; epoch++) {
      events.add(progress(jobId, Stage.DISTILLATION, epoch, 3,
          Map.of("loss", 1.0 / epoch, "validationAccuracy", epoch == 1 ? Double.NaN : 0.8), t[0] += 1000));
    }
    ArtifactRef checkpoint = new ArtifactRef("file:///tmp/" + jobId + ".params", "ab", 100L);
    JobContext context = JobContext.newBuilder().setRequest(request).build();
    events.add(new Event(topic(Topics.CHECKPOINTS), CheckpointReady.newBuilder().setJobId(jobId)
        .setProducedBy(Stage.DISTILLATION).setContext(context).setArchitecture("lenet5").setWidth(1.0)
        .setCheckpoint(checkpoint).build(), t[0] += 1000));
    events.add(progress(jobId, Stage.PRUNING, 1, 2, Map.of("accuracyPruned", 0.7), t[0] += 1000));
    t[0] += 1000;
    events.add(new Event(topic(Topics.RESULTS), JobResult.newBuilder().setJobId(jobId)
        .setPruned(dev.distillery.schemas.ModelMetrics.newBuilder().setArchitecture("lenet5").setWidth(1.0)
            .setTestAccuracy(0.85).setParameters(100).setNonZeroParameters(50).setCheckpointBytes(400).build())
        .setSparsity(0.5).setFinalCheckpoint(checkpoint).setCompletedAtMs(t[0]).build(), t[0]));
    return events;
  }

  static CompressionRequest request(String jobId) throws Exception {
    return PlainJson.read(PlainJson.MAPPER.readTree("""
        {"jobId": "%s",
         "teacher": {"architecture": "convnet", "checkpointUri": "file:///tmp/teacher.params"},
         "dataset": {"format": "IDX", "location": "/tmp/data"},
         "student": {"architecture": "lenet5"},
         "distillation": {}, "pruning": {}}""".formatted(jobId)), CompressionRequest.class);
  }

  private static Event progress(String jobId, Stage stage, long step, long total, Map<String, Double> metrics,
      long timestampMs) {
    return new Event(topic(Topics.PROGRESS), new JobProgress(jobId, stage, step, total, "step " + step, metrics,
        total == 0 ? 0 : (double) step / total, null, timestampMs), timestampMs);
  }

  @SuppressWarnings("unchecked")
  private static Topic<Object> topic(Topic<?> topic) {
    return (Topic<Object>) topic;
  }

  private void pipe(Event event) {
    TestInputTopic<String, Object> input = driver.createInputTopic(event.topic().name(), new StringSerializer(),
        event.topic().valueSerde().serializer());
    input.pipeInput(jobIdOf(event.value()), event.value(), event.timestampMs());
  }

  private static String jobIdOf(Object value) {
    return ((org.apache.avro.generic.GenericRecord) value).get("jobId").toString();
  }

  private KeyValueStore<String, JobStatus> store() {
    return driver.getKeyValueStore(JobStatusTopology.STORE);
  }

  /** The status as JSON with its job id replaced, to compare two jobs' statuses. */
  private static String renamed(JobStatus status) {
    return PlainJson.write(status).toString().replace(status.getJobId(), "JOB");
  }
}
