package dev.distillery.common.kafka;

import dev.distillery.common.JobControl;
import dev.distillery.schemas.JobFailure;
import dev.distillery.schemas.JobProgress;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.kafka.Topic;
import dev.distillery.schemas.kafka.WireFormat;
import dev.distillery.schemas.kafka.Topics;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.function.Consumer;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.header.Header;

/**
 * Publishes a service's records, keyed by job id, through one shared producer. Acknowledgements
 * complete their futures on a thread of this class, not on the producer's I/O thread: what
 * follows an acknowledgement may send again, and a send from the I/O thread can block it.
 */
public final class JobEvents implements AutoCloseable {
  private static final int MAX_REASON = 4_000;
  private final Producer<String, byte[]> producer;
  private final WireFormat wire;
  private final ExecutorService acknowledgements = Executors.newSingleThreadExecutor(runnable -> {
    Thread thread = new Thread(runnable, "distillery-acks");
    thread.setDaemon(true);
    return thread;
  });

  private final Consumer<JobProgress> progressObserver;

  /** Each job's stages in progress here, by "jobId stage"; the oldest are forgotten past 10,000 (jobs that never finished). */
  private final Map<String, Pace> paces = new LinkedHashMap<>(16, 0.75f, true) {
    @Override
    protected boolean removeEldestEntry(Map.Entry<String, Pace> eldest) {
      return size() > 10_000;
    }
  };

  /** Publishes in Avro single-object encoding. */
  public JobEvents(Producer<String, byte[]> producer) {
    this(producer, WireFormat.SINGLE_OBJECT, progress -> {});
  }

  /**
   * Publishes in {@code wire}'s format; {@code progressObserver} sees every progress event this
   * publishes (a stage's metrics do).
   */
  public JobEvents(Producer<String, byte[]> producer, WireFormat wire, Consumer<JobProgress> progressObserver) {
    this.producer = producer;
    this.wire = wire;
    this.progressObserver = progressObserver;
  }

  /**
   * Sends {@code value} to {@code topic}; the future completes when the broker acknowledged it. On
   * a thread working on a job that must stop (cancelled, ended, taken over) it throws {@code
   * JobStoppedException} instead: such a job publishes nothing more.
   */
  public <V> CompletableFuture<RecordMetadata> send(Topic<V> topic, String jobId, V value, Header... headers) {
    JobControl.checkpoint();
    byte[] bytes = wire.of(topic).valueSerde().serializer().serialize(topic.name(), value);
    return sendRaw(new ProducerRecord<>(topic.name(), null, jobId, bytes, List.of(headers)));
  }

  /**
   * Progress of {@code stage}: {@code step} of {@code totalSteps}, with the latest figures, the
   * fraction done and an estimate of the time left ({@link Pace}).
   */
  public CompletableFuture<RecordMetadata> progress(String jobId, Stage stage, long step, long totalSteps,
      String message, Map<String, Double> metrics) {
    long now = System.currentTimeMillis();
    double fraction = totalSteps <= 0 ? 0 : Math.max(0, Math.min(1, (double) step / totalSteps));
    Pace pace;
    synchronized (paces) {
      pace = fraction >= 1 ? paces.remove(jobId + " " + stage) : paces.computeIfAbsent(jobId + " " + stage,
          key -> new Pace(now, fraction));
    }
    JobProgress progress = JobProgress.newBuilder()
        .setJobId(jobId).setStage(stage).setStep(step).setTotalSteps(totalSteps)
        .setMessage(message).setMetrics(Map.copyOf(metrics))
        .setFraction(fraction).setSecondsLeft(fraction >= 1 ? Double.valueOf(0) : pace.secondsLeft(fraction, now))
        .setTimestampMs(now).build();
    progressObserver.accept(progress);
    return send(Topics.PROGRESS, jobId, progress);
  }

  /**
   * The job failed in {@code stage}; {@code field} names the request field at fault, or is null.
   * The reason is cut at 4,000 characters: an event that cannot be published would stop the stage.
   */
  public CompletableFuture<RecordMetadata> failure(String jobId, Stage stage, String field, String reason) {
    return send(Topics.FAILURES, jobId, JobFailure.newBuilder()
        .setJobId(jobId).setStage(stage).setField(field)
        .setReason(reason.length() <= MAX_REASON ? reason : reason.substring(0, MAX_REASON) + "...")
        .setTimestampMs(System.currentTimeMillis()).build());
  }

  /**
   * Refuses one request whose job id another request already owns: a failure event that names
   * {@code jobId} and leaves the job of that id as it was ({@code refusedRequest}).
   */
  public CompletableFuture<RecordMetadata> refusal(String jobId, Stage stage, String reason) {
    return send(Topics.FAILURES, jobId, JobFailure.newBuilder()
        .setJobId(jobId).setStage(stage).setField("jobId").setReason(reason).setRefusedRequest(true)
        .setTimestampMs(System.currentTimeMillis()).build());
  }

  /**
   * Where a stage of a job was when this service first reported it: the time left is the time the
   * fraction since then took, scaled to the fraction still to do. Stages whose steps take unequal
   * time (a first epoch with warm-up, fine-tuning after pruning) make it an estimate.
   */
  record Pace(long startMs, double startFraction) {
    Double secondsLeft(double fraction, long nowMs) {
      if (!(fraction > startFraction) || nowMs <= startMs) {
        return null;
      }
      return (nowMs - startMs) / 1000.0 * (1 - fraction) / (fraction - startFraction);
    }
  }

  /** Sends a record as it is, for dead letters. */
  CompletableFuture<RecordMetadata> sendRaw(ProducerRecord<String, byte[]> record) {
    CompletableFuture<RecordMetadata> acked = new CompletableFuture<>();
    producer.send(record, (metadata, error) -> acknowledgements.execute(() -> {
      if (error != null) {
        acked.completeExceptionally(error);
      } else {
        acked.complete(metadata);
      }
    }));
    return acked;
  }

  /** Stops the acknowledgement thread; close the producer first so every callback has run. */
  @Override
  public void close() {
    acknowledgements.shutdown();
  }
}
