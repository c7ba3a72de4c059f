package dev.distillery.schemas.kafka;

import org.apache.kafka.common.serialization.Serde;

/**
 * A topic name with the serde of its values. Keys are always the job id as a UTF-8 string.
 *
 * @param name the topic's name
 * @param valueSerde how its values are encoded
 */
public record Topic<V>(String name, Serde<V> valueSerde) {}
