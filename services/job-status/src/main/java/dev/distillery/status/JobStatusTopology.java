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
    updates(builder, Topics.REQUESTS, JobStatusFold::request, true)
        .merge(updates(builder, Topics.PROGRESS, (status, progress, ts) -> JobStatusFold.progress(status, progress), false))
        .merge(updates(builder, Topics.CHECKPOINTS, JobStatusFold::checkpoint, false))
        .merge(updates(builder, Topics.RESULTS, (status, result, ts) -> JobStatusFold.result(status, result), false))
        .merge(updates(builder, Topics.FAILURES, (status, failure, ts) -> JobStatusFold.failure(status, failure), false))
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
   * The topic's records as status updates; records without a key or value are skipped, and so is
   * a request keyed by another id than its own (the planner refuses it), which would show one
   * job's request under another's id.
   */
  private static <V> KStream<String, UnaryOperator<JobStatus>> updates(StreamsBuilder builder, Topic<V> topic,
      Fold<V> fold, boolean repartition) {
    KStream<String, V> records = builder.stream(topic.name(), Consumed.with(Serdes.String(), topic.valueSerde()));
    if (repartition) {
      // Through an internal topic, partitioned as the services partition: by the key's murmur2 hash.
      records = records.filter((jobId, value) -> jobId != null)
          .repartition(Repartitioned.<String, V>with(Serdes.String(), topic.valueSerde())
              .withName(topic.name().replace('.', '-') + "-by-job"));
    }
    return records
        .filter((jobId, value) -> jobId != null && value != null
            && !(value instanceof CompressionRequest request && !request.getJobId().equals(jobId)))
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
