package dev.distillery.teacher;

import dev.distillery.schemas.SoftLabelBatch;
import dev.distillery.schemas.kafka.Topics;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;

/** Reads one job's soft labels from the topic and keeps, as the trainer does, the first vector per batch. */
final class SoftLabelCollector implements AutoCloseable {
  private final KafkaConsumer<String, byte[]> consumer;
  private final String jobId;
  final Map<Integer, SoftLabelBatch> firstByIndex = new HashMap<>();
  final List<SoftLabelBatch> all = new ArrayList<>();
  int batchCount = -1;

  SoftLabelCollector(String bootstrapServers, String jobId) {
    this.jobId = jobId;
    consumer = new KafkaConsumer<>(Map.of("bootstrap.servers", bootstrapServers),
        new StringDeserializer(), new ByteArrayDeserializer());
    List<TopicPartition> partitions = consumer.partitionsFor(Topics.SOFT_LABELS.name()).stream()
        .map(p -> new TopicPartition(p.topic(), p.partition())).toList();
    consumer.assign(partitions);
    consumer.seekToBeginning(partitions);
  }

  /** Polls once; returns how many batches of the job arrived. */
  int poll() {
    for (ConsumerRecord<String, byte[]> record : consumer.poll(Duration.ofMillis(100))) {
      if (jobId.equals(record.key())) {
        SoftLabelBatch batch = Topics.SOFT_LABELS.valueSerde().deserializer().deserialize(record.topic(), record.value());
        all.add(batch);
        firstByIndex.putIfAbsent(batch.getBatchIndex(), batch);
        batchCount = batch.getBatchCount();
      }
    }
    return all.size();
  }

  boolean complete() {
    return batchCount > 0 && firstByIndex.size() == batchCount;
  }

  /** Collects until every batch index arrived or {@code timeout} passed. */
  void awaitComplete(Duration timeout) {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (!complete()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("soft labels incomplete after " + timeout + ": " + firstByIndex.size()
            + " of " + batchCount + " batches");
      }
      poll();
    }
  }

  /** One vector per sample, from the first batch of each index, as [samples * classes]. */
  float[] vectors(int samples, int classes) {
    float[] values = new float[samples * classes];
    boolean[] seen = new boolean[samples];
    for (SoftLabelBatch batch : firstByIndex.values()) {
      float[] floats = floats(batch);
      for (int i = 0; i < batch.getSampleCount(); i++) {
        int sample = batch.getFirstSample() + i;
        if (seen[sample]) {
          throw new AssertionError("sample " + sample + " is in two batches");
        }
        seen[sample] = true;
      }
      System.arraycopy(floats, 0, values, batch.getFirstSample() * classes, floats.length);
    }
    for (int s = 0; s < samples; s++) {
      if (!seen[s]) {
        throw new AssertionError("sample " + s + " has no soft label");
      }
    }
    return values;
  }

  static float[] floats(SoftLabelBatch batch) {
    var buffer = batch.getScaledLogits().duplicate().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
    float[] values = new float[buffer.remaining()];
    buffer.get(values);
    return values;
  }

  @Override
  public void close() {
    consumer.close();
  }
}
