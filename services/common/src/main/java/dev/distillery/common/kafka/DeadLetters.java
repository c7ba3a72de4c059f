package dev.distillery.common.kafka;

import dev.distillery.schemas.kafka.Topics;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;

/**
 * Moves records no service can read to {@code distillery.dlq}: key and value exactly as they
 * arrived, plus headers saying where they came from and why they were rejected.
 */
public final class DeadLetters {
  public static final String REASON = "distillery.dlq.reason";
  public static final String SERVICE = "distillery.dlq.service";
  public static final String SOURCE_TOPIC = "distillery.dlq.topic";
  public static final String SOURCE_PARTITION = "distillery.dlq.partition";
  public static final String SOURCE_OFFSET = "distillery.dlq.offset";
  /** How many times the record's job was attempted before it was given up, when it was. */
  public static final String ATTEMPTS = "distillery.dlq.attempts";

  private final JobEvents events;
  private final String service;

  public DeadLetters(JobEvents events, String service) {
    this.events = events;
    this.service = service;
  }

  public CompletableFuture<RecordMetadata> send(ConsumerRecord<String, byte[]> record, String reason) {
    return send(record, reason, 0);
  }

  /** The record given up after {@code attempts} attempts of its job (0: not counted). */
  public CompletableFuture<RecordMetadata> send(ConsumerRecord<String, byte[]> record, String reason, int attempts) {
    List<Header> headers = new ArrayList<>(List.of(
        header(REASON, reason),
        header(SERVICE, service),
        header(SOURCE_TOPIC, record.topic()),
        header(SOURCE_PARTITION, String.valueOf(record.partition())),
        header(SOURCE_OFFSET, String.valueOf(record.offset()))));
    if (attempts > 0) {
      headers.add(header(ATTEMPTS, String.valueOf(attempts)));
    }
    return events.sendRaw(new ProducerRecord<>(Topics.DEAD_LETTERS.name(), null, record.key(), record.value(), headers));
  }

  private static Header header(String key, String value) {
    return new RecordHeader(key, value.getBytes(StandardCharsets.UTF_8));
  }
}
