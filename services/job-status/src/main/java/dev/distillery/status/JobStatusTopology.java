package dev.distillery.status;

import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.JobStatus;
import dev.distillery.schemas.kafka.AvroSerde;
import dev.distillery.schemas.kafka.Topic;
import dev.distillery.schemas.kafka.Topics;
import java.util.function.Consumer;
import java.util.function.UnaryOperator;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Repartitioned;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;
import org.apache.kafka.streams.state.Stores;

/**
 * The Kafka Streams topology of job status: every record of the requests, progress, checkpoints,
 * results and failures topics becomes an update of its job's {@link JobStatus} (by {@link
 * JobStatusFold}), kept in the queryable store {@link #STORE}. All five topics are keyed by job id
 * and have the same partition count. The services write four of them with Kafka's Java
 * partitioner; requests come from any client (librdkafka's default partitioner puts a key
 * elsewhere), so they are re-partitioned by job id first: one task then sees all of a job's events,
 * whoever produced them.
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

  /** The topology; {@code onChange} hears every new status, on a stream thread. */
  public static Topology build(Consumer<JobStatus> onChange) {
    StreamsBuilder builder = new StreamsBuilder();
    requests(builder)
        .merge(updates(builder, Topics.PROGRESS, (status, progress, ts) -> JobStatusFold.progress(status, progress)))
        .merge(updates(builder, Topics.CHECKPOINTS, JobStatusFold::checkpoint))
        .merge(updates(builder, Topics.RESULTS, (status, result, ts) -> JobStatusFold.result(status, result)))
        .merge(updates(builder, Topics.FAILURES, (status, failure, ts) -> JobStatusFold.failure(status, failure)))
        .groupByKey()
        .aggregate(() -> null,
            (jobId, update, status) -> update.apply(status != null ? status : JobStatusFold.empty(jobId)),
            Materialized.<String, JobStatus>as(Stores.inMemoryKeyValueStore(STORE))
                .withKeySerde(Serdes.String()).withValueSerde(SERDE))
        .toStream()
        .foreach((jobId, status) -> onChange.accept(status));
    return builder.build();
  }

  /**
   * The requests as status updates. A request keyed by another id than its own is skipped (the
   * planner refuses it): it would show one job's request under another's id. The rest go through
   * an internal topic partitioned as the services partition (the key's murmur2 hash), since any
   * client may have produced them.
   */
  private static KStream<String, UnaryOperator<JobStatus>> requests(StreamsBuilder builder) {
    Topic<CompressionRequest> topic = Topics.REQUESTS;
    KStream<String, CompressionRequest> requests = builder.stream(topic.name(),
            Consumed.with(Serdes.String(), topic.valueSerde()))
        .filter((jobId, request) -> jobId != null && request != null && request.getJobId().equals(jobId))
        .repartition(Repartitioned.with(Serdes.String(), topic.valueSerde())
            .withName(topic.name().replace('.', '-') + "-by-job"));
    return folded(requests, JobStatusFold::request);
  }

  /** The records of a topic the services write (keyed by job id) as status updates; those without a key or value are skipped. */
  private static <V> KStream<String, UnaryOperator<JobStatus>> updates(StreamsBuilder builder, Topic<V> topic,
      Fold<V> fold) {
    return folded(builder.stream(topic.name(), Consumed.with(Serdes.String(), topic.valueSerde()))
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
}
