package dev.distillery.schemas.kafka;

import org.apache.kafka.common.serialization.Serde;

/**
 * A topic name with the serde of its values. Keys are UTF-8 strings: the job id (teacher shards:
 * job id, a slash and the shard index, so one job's shards spread over partitions).
 *
 * @param name the topic's name
 * @param valueSerde how its values are encoded
 */
public record Topic<V>(String name, Serde<V> valueSerde) {}
