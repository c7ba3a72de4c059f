package dev.distillery.common.kafka;

import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.header.internals.RecordHeaders;

/**
 * How many times each job was started on a partition, kept in Kafka with the consumer group's
 * committed offset (its metadata), so a job whose records keep killing the process is recognised
 * by the next process and failed instead of replayed forever. A delivered record carries its job's
 * attempt in the header {@value #HEADER}.
 */
public final class Attempts {
  public static final String HEADER = "distillery.attempt";
  private static final String PREFIX = "attempts:";
  /** Kafka's default offset.metadata.max.bytes is 4,096. */
  private static final int MAX_METADATA = 4_000;

  private Attempts() {}

  /** {@code jobId:attempt,...}; jobs past the size limit are left out (counted from 0 again). */
  static String format(Map<String, Integer> attempts) {
    StringBuilder text = new StringBuilder(PREFIX);
    for (Map.Entry<String, Integer> entry : attempts.entrySet()) {
      String item = entry.getKey().replace(",", "").replace(":", "") + ":" + entry.getValue();
      if (text.length() + item.length() + 1 > MAX_METADATA) {
        break;
      }
      text.append(text.length() > PREFIX.length() ? "," : "").append(item);
    }
    return text.toString();
  }

  static Map<String, Integer> parse(String metadata) {
    Map<String, Integer> attempts = new LinkedHashMap<>();
    if (metadata == null || !metadata.startsWith(PREFIX)) {
      return attempts;
    }
    for (String item : metadata.substring(PREFIX.length()).split(",")) {
      int colon = item.lastIndexOf(':');
      if (colon > 0) {
        try {
          attempts.put(item.substring(0, colon), Integer.parseInt(item.substring(colon + 1)));
        } catch (NumberFormatException e) {
          // someone else's metadata: ignore the item
        }
      }
    }
    return attempts;
  }

  /** The record with its job's attempt as a header. */
  static <K, V> ConsumerRecord<K, V> withAttempt(ConsumerRecord<K, V> record, int attempt) {
    RecordHeaders headers = new RecordHeaders(record.headers().toArray());
    headers.remove(HEADER);
    headers.add(new RecordHeader(HEADER, String.valueOf(attempt).getBytes(StandardCharsets.UTF_8)));
    return new ConsumerRecord<>(record.topic(), record.partition(), record.offset(), record.timestamp(),
        record.timestampType(), record.serializedKeySize(), record.serializedValueSize(), record.key(), record.value(),
        headers, record.leaderEpoch(), record.deliveryCount());
  }

  /** The attempt a delivered record belongs to, 1 when it carries none. */
  public static int of(ConsumerRecord<?, ?> record) {
    Header header = record.headers().lastHeader(HEADER);
    if (header == null) {
      return 1;
    }
    try {
      return Math.max(1, Integer.parseInt(new String(header.value(), StandardCharsets.UTF_8)));
    } catch (NumberFormatException e) {
      return 1;
    }
  }
}
