package dev.distillery.common.kafka;

import dev.distillery.common.config.ServiceConfig;
import java.util.HashMap;
import java.util.Map;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/** Kafka clients for a service: keys are job ids, values stay bytes until a topic's serde reads them. */
public final class KafkaClients {
  private KafkaClients() {}

  /** An idempotent producer that waits for all in-sync replicas. */
  public static KafkaProducer<String, byte[]> producer(ServiceConfig config) {
    Map<String, Object> props = new HashMap<>();
    props.put(ProducerConfig.ACKS_CONFIG, "all");
    props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
    props.put(ProducerConfig.LINGER_MS_CONFIG, 5);
    // A soft-label record is ~10.5 KB: the default 16 KB batch carries one record per request.
    // 256 KB batches measured 10x the publishing rate (bench/README.md, "publish").
    props.put(ProducerConfig.BATCH_SIZE_CONFIG, 262_144);
    props.put(ProducerConfig.CLIENT_ID_CONFIG, config.service() + "-producer");
    // A producer that lost its only broker forgets the topics' metadata, and send() then waits for
    // it this long (default 60 s) before failing: as long as a delivery may take, so an outage of
    // two minutes costs a job no attempt (JobRunner retries after that).
    props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 120_000);
    props.putAll(config.kafka());
    return new KafkaProducer<>(props, new StringSerializer(), new ByteArraySerializer());
  }

  /**
   * A consumer in the service's own group. Offsets are committed by hand, only after a record's
   * outputs exist, so a crash re-delivers unfinished work instead of losing it.
   */
  public static KafkaConsumer<String, byte[]> consumer(ServiceConfig config) {
    Map<String, Object> props = new HashMap<>();
    props.put(ConsumerConfig.GROUP_ID_CONFIG, config.service());
    props.put(ConsumerConfig.CLIENT_ID_CONFIG, config.service() + "-consumer");
    props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    // Incremental rebalances: a replica joining or leaving does not revoke every partition.
    props.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, CooperativeStickyAssignor.class.getName());
    props.putAll(config.kafka());
    props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    return new KafkaConsumer<>(props, new StringDeserializer(), new ByteArrayDeserializer());
  }
}
