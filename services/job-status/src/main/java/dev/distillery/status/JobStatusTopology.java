package dev.distillery.status;

import dev.distillery.schemas.JobStatus;
import dev.distillery.schemas.kafka.AvroSerde;
import dev.distillery.schemas.kafka.Topic;
import dev.distillery.schemas.kafka.Topics;
import dev.distillery.schemas.kafka.WireFormat;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.BiPredicate;
import java.util.function.Consumer;
import java.util.function.UnaryOperator;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Repartitioned;
import org.apache.kafka.streams.processor.PunctuationType;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.Stores;

/**
 * The Kafka Streams topology of job status: every record of the requests, cancellations, progress,
 * checkpoints, results and failures topics becomes an update of its job's {@link JobStatus} (by
 * {@link JobStatusFold}), kept in the queryable in-memory store {@link #STORE}, changelogged by
 * Kafka. All six topics are keyed by job id and have the same partition count. The services write
 * four of them with Kafka's Java partitioner; requests and cancellations come from any client
 * (librdkafka's default partitioner puts a key elsewhere), so they are re-partitioned by job id
 * first: one task then sees all of a job's events, whoever produced them.
 *
 * <p>A job that ended (DONE, FAILED, CANCELLED) is deleted from the store once its last event is
 * older, by the wall clock, than the retention: its changelog gets a tombstone, so neither the
 * store nor the changelog keep every job forever.
 */
public final class JobStatusTopology {
  public static final String STORE = "job-status";
  public static final AvroSerde<JobStatus> SERDE = AvroSerde.of(JobStatus.class);

  private JobStatusTopology() {}

  /** How a record of one topic changes a status; {@code timestampMs} is the record's. */
  @FunctionalInterface
  private interface Fold<V> {
    JobStatus apply(JobStatus status, V value, long timestampMs);
  }

  /**
   * The topology. A job that ended is deleted {@code retention} after its last event ({@code
   * status.retention.ms}). {@code onChange} hears every new status and {@code onRemoved} the id of
   * every job deleted for its age, both on a stream thread, after the store changed.
   */
  /** The topology reading Avro single-object encoding only. */
  public static Topology build(Duration retention, Consumer<JobStatus> onChange, Consumer<String> onRemoved) {
    return build(retention, WireFormat.SINGLE_OBJECT, onChange, onRemoved);
  }

  /** The topology reading the topics as {@code wire} says (with a registry: either format). */
  public static Topology build(Duration retention, WireFormat wire, Consumer<JobStatus> onChange,
      Consumer<String> onRemoved) {
    StreamsBuilder builder = new StreamsBuilder();
    builder.addStateStore(Stores.keyValueStoreBuilder(Stores.inMemoryKeyValueStore(STORE), Serdes.String(), SERDE)
        .withCachingDisabled());
    // A request or cancellation keyed by another id than its own is skipped (the planner refuses
    // such a request): it would show under another job's id.
    byJob(builder, wire, Topics.REQUESTS, (jobId, request) -> request.getJobId().equals(jobId), JobStatusFold::request)
        .merge(byJob(builder, wire, Topics.CANCELLATIONS, (jobId, cancellation) -> cancellation.getJobId().equals(jobId),
            (status, cancellation, ts) -> JobStatusFold.cancellation(status, cancellation)))
        .merge(updates(builder, wire, Topics.PROGRESS, (status, progress, ts) -> JobStatusFold.progress(status, progress)))
        .merge(updates(builder, wire, Topics.CHECKPOINTS, JobStatusFold::checkpoint))
        .merge(updates(builder, wire, Topics.RESULTS, (status, result, ts) -> JobStatusFold.result(status, result)))
        .merge(updates(builder, wire, Topics.FAILURES, (status, failure, ts) -> JobStatusFold.failure(status, failure)))
        .process(() -> new Statuses(retention, onChange, onRemoved), STORE);
    return builder.build();
  }

  /**
   * The records of a topic any client may write, as status updates: those whose key is their own
   * job id ({@code ownKey}) go through an internal topic partitioned as the services partition
   * (the key's murmur2 hash), in single-object encoding: it is this application's own.
   */
  private static <V> KStream<String, UnaryOperator<JobStatus>> byJob(StreamsBuilder builder, WireFormat wire,
      Topic<V> topic, BiPredicate<String, V> ownKey, Fold<V> fold) {
    KStream<String, V> records = builder.stream(topic.name(),
            Consumed.with(Serdes.String(), wire.of(topic).valueSerde()))
        .filter((jobId, value) -> jobId != null && value != null && ownKey.test(jobId, value))
        .repartition(Repartitioned.with(Serdes.String(), topic.valueSerde())
            .withName(topic.name().replace('.', '-') + "-by-job"));
    return folded(records, fold);
  }

  /** The records of a topic the services write (keyed by job id) as status updates; those without a key or value are skipped. */
  private static <V> KStream<String, UnaryOperator<JobStatus>> updates(StreamsBuilder builder, WireFormat wire,
      Topic<V> topic, Fold<V> fold) {
    return folded(builder.stream(topic.name(), Consumed.with(Serdes.String(), wire.of(topic).valueSerde()))
        .filter((jobId, value) -> jobId != null && value != null), fold);
  }

  private static <V> KStream<String, UnaryOperator<JobStatus>> folded(KStream<String, V> records, Fold<V> fold) {
    return records
        .processValues(() -> new FixedKeyProcessor<String, V, UnaryOperator<JobStatus>>() {
          private FixedKeyProcessorContext<String, UnaryOperator<JobStatus>> context;

          @Override
          public void init(FixedKeyProcessorContext<String, UnaryOperator<JobStatus>> context) {
            this.context = context;
          }

          @Override
          public void process(FixedKeyRecord<String, V> record) {
            V value = record.value();
            long timestampMs = record.timestamp();
            context.forward(record.withValue(status -> fold.apply(status, value, timestampMs)));
          }
        });
  }

  /**
   * How often the store is searched for jobs past their {@code retention}: a tenth of it, between
   * 100 ms and a minute, so a job goes at most that much later than its retention says.
   */
  static Duration sweepInterval(Duration retention) {
    Duration tenth = retention.dividedBy(10);
    return tenth.compareTo(Duration.ofMillis(100)) < 0 ? Duration.ofMillis(100)
        : tenth.compareTo(Duration.ofMinutes(1)) > 0 ? Duration.ofMinutes(1) : tenth;
  }

  /** Applies each update to its job's status in the store, and deletes ended jobs past their retention. */
  private static final class Statuses implements Processor<String, UnaryOperator<JobStatus>, Void, Void> {
    private final Duration retention;
    private final Consumer<JobStatus> onChange;
    private final Consumer<String> onRemoved;
    private KeyValueStore<String, JobStatus> store;

    Statuses(Duration retention, Consumer<JobStatus> onChange, Consumer<String> onRemoved) {
      this.retention = retention;
      this.onChange = onChange;
      this.onRemoved = onRemoved;
    }

    @Override
    public void init(ProcessorContext<Void, Void> context) {
      store = context.getStateStore(STORE);
      context.schedule(sweepInterval(retention), PunctuationType.WALL_CLOCK_TIME, this::expire);
    }

    @Override
    public void process(Record<String, UnaryOperator<JobStatus>> record) {
      JobStatus known = store.get(record.key());
      JobStatus status = record.value().apply(known != null ? known : JobStatusFold.empty(record.key()));
      store.put(record.key(), status);
      onChange.accept(status);
    }

    /** Deletes every ended job whose last event is at least the retention older than {@code nowMs}. */
    private void expire(long nowMs) {
      long retentionMs = retention.toMillis();
      List<String> expired = new ArrayList<>();
      try (KeyValueIterator<String, JobStatus> all = store.all()) {
        all.forEachRemaining(entry -> {
          if (JobStatusFold.ended(entry.value.getState()) && nowMs - entry.value.getUpdatedAtMs() >= retentionMs) {
            expired.add(entry.key);
          }
        });
      }
      for (String jobId : expired) {
        store.delete(jobId);
        onRemoved.accept(jobId);
      }
    }
  }
}
