package dev.distillery.schemas.kafka;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * How a process writes its topics' values: Avro single-object encoding with the schemas in its jar
 * (the default), or, with a schema registry, Confluent's wire format with each record's schema
 * registered under the subject {@code <topic>-value}. A process with a registry reads values of
 * both formats, so that services and clients can move from one to the other a few at a time.
 */
public final class WireFormat {
  public static final WireFormat SINGLE_OBJECT = new WireFormat(null);

  private final SchemaRegistry registry;
  private final Map<String, Topic<?>> topics = new ConcurrentHashMap<>();

  private WireFormat(SchemaRegistry registry) {
    this.registry = registry;
  }

  public static WireFormat registry(SchemaRegistry registry) {
    return new WireFormat(registry);
  }

  /** The registry, or null in single-object mode. */
  public SchemaRegistry schemaRegistry() {
    return registry;
  }

  /** {@code topic} with its values written in this format; raw topics (the dead letters) stay as they are. */
  @SuppressWarnings("unchecked")
  public <V> Topic<V> of(Topic<V> topic) {
    if (registry == null || !(topic.valueSerde() instanceof AvroSerde<?> avro)) {
      return topic;
    }
    return (Topic<V>) topics.computeIfAbsent(topic.name(),
        name -> new Topic<>(name, avro.withRegistry(registry, name + "-value")));
  }

  @Override
  public String toString() {
    return registry == null ? "Avro single-object encoding" : "Confluent wire format, registry " + registry.url();
  }
}
