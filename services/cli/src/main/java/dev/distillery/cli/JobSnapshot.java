package dev.distillery.cli;

import dev.distillery.schemas.CheckpointReady;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.JobFailure;
import dev.distillery.schemas.JobProgress;
import dev.distillery.schemas.JobResult;
import dev.distillery.schemas.JobStatus;
import dev.distillery.schemas.kafka.Topics;
import dev.distillery.status.JobStatusFold;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Every job's status as the topics hold it now: the topics read from the beginning to their current
 * end, without a consumer group, and folded as the job-status service folds them. Needs only Kafka.
 */
final class JobSnapshot {
  private static final Logger LOG = LoggerFactory.getLogger(JobSnapshot.class);
  private static final List<String> TOPICS = List.of(Topics.REQUESTS.name(), Topics.PROGRESS.name(),
      Topics.CHECKPOINTS.name(), Topics.RESULTS.name(), Topics.FAILURES.name());

  private JobSnapshot() {}

  /** Statuses by job id, in the order the jobs were first seen; {@code kafka}: client properties. */
  static Map<String, JobStatus> read(Map<String, ?> kafka) {
    Map<String, JobStatus> jobs = new LinkedHashMap<>();
    try (KafkaConsumer<String, byte[]> consumer = TopicReader.fromBeginning(kafka, "distillery-cli-", TOPICS)) {
      List<TopicPartition> partitions = new ArrayList<>(consumer.assignment());
      Map<TopicPartition, Long> end = consumer.endOffsets(partitions);
      while (partitions.stream().anyMatch(p -> consumer.position(p) < end.get(p))) {
        for (ConsumerRecord<String, byte[]> record : consumer.poll(Duration.ofMillis(500))) {
          if (record.key() != null && record.value() != null) {
            fold(jobs, record);
          }
        }
      }
    }
    return jobs;
  }

  private static void fold(Map<String, JobStatus> jobs, ConsumerRecord<String, byte[]> record) {
    String jobId = record.key();
    JobStatus status = jobs.getOrDefault(jobId, JobStatusFold.empty(jobId));
    try {
      byte[] v = record.value();
      String t = record.topic();
      if (t.equals(Topics.REQUESTS.name())) {
        CompressionRequest request = Topics.REQUESTS.valueSerde().deserializer().deserialize(t, v);
        status = JobStatusFold.request(status, request, record.timestamp());
      } else if (t.equals(Topics.PROGRESS.name())) {
        JobProgress progress = Topics.PROGRESS.valueSerde().deserializer().deserialize(t, v);
        status = JobStatusFold.progress(status, progress);
      } else if (t.equals(Topics.CHECKPOINTS.name())) {
        CheckpointReady checkpoint = Topics.CHECKPOINTS.valueSerde().deserializer().deserialize(t, v);
        status = JobStatusFold.checkpoint(status, checkpoint, record.timestamp());
      } else if (t.equals(Topics.RESULTS.name())) {
        JobResult result = Topics.RESULTS.valueSerde().deserializer().deserialize(t, v);
        status = JobStatusFold.result(status, result);
      } else {
        JobFailure failure = Topics.FAILURES.valueSerde().deserializer().deserialize(t, v);
        status = JobStatusFold.failure(status, failure);
      }
      jobs.put(jobId, status);
    } catch (RuntimeException e) {
      LOG.debug("skipped an unreadable record at {}-{}@{}", record.topic(), record.partition(), record.offset(), e);
    }
  }
}
