package dev.distillery.cli;

import dev.distillery.schemas.CheckpointReady;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.JobCancellation;
import dev.distillery.schemas.JobFailure;
import dev.distillery.schemas.JobProgress;
import dev.distillery.schemas.JobResult;
import dev.distillery.schemas.JobStatus;
import dev.distillery.schemas.kafka.Topics;
import dev.distillery.schemas.kafka.WireFormat;
import dev.distillery.status.JobStatusFold;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Predicate;
import java.util.function.UnaryOperator;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Jobs' statuses as the topics hold them now: the topics read from the beginning to their current
 * end, without a consumer group, and folded as the job-status service folds them. Needs only Kafka.
 */
final class JobSnapshot {
  private static final Logger LOG = LoggerFactory.getLogger(JobSnapshot.class);
  private static final List<String> TOPICS = List.of(Topics.REQUESTS.name(), Topics.PROGRESS.name(),
      Topics.CHECKPOINTS.name(), Topics.RESULTS.name(), Topics.FAILURES.name(), Topics.CANCELLATIONS.name());

  private JobSnapshot() {}

  /**
   * Every job's summary by job id, in the order the jobs were first seen: its state, times, stages,
   * failure and cancellation, without its history, request and result, so that what is held per
   * job stays small however many jobs the topics hold.
   */
  static Map<String, JobStatus> summaries(Map<String, ?> kafka, WireFormat wire) {
    return read(kafka, wire, jobId -> true, status -> JobStatus.newBuilder(status).setHistory(List.of()).setRequest(null)
        .setResult(null).build());
  }

  /** One job's whole status, or empty when no record of it is on the topics. */
  static Optional<JobStatus> of(Map<String, ?> kafka, WireFormat wire, String jobId) {
    return Optional.ofNullable(read(kafka, wire, jobId::equals, UnaryOperator.identity()).get(jobId));
  }

  /** The statuses of the jobs {@code wanted} picks, each passed through {@code kept} after every fold. */
  private static Map<String, JobStatus> read(Map<String, ?> kafka, WireFormat wire, Predicate<String> wanted,
      UnaryOperator<JobStatus> kept) {
    Map<String, JobStatus> jobs = new LinkedHashMap<>();
    try (KafkaConsumer<String, byte[]> consumer = TopicReader.fromBeginning(kafka, "distillery-cli-", TOPICS)) {
      List<TopicPartition> partitions = new ArrayList<>(consumer.assignment());
      Map<TopicPartition, Long> end = consumer.endOffsets(partitions);
      while (partitions.stream().anyMatch(p -> consumer.position(p) < end.get(p))) {
        for (ConsumerRecord<String, byte[]> record : consumer.poll(Duration.ofMillis(500))) {
          if (record.key() != null && record.value() != null && wanted.test(record.key())) {
            fold(jobs, wire, record, kept);
          }
        }
      }
    }
    return jobs;
  }

  private static void fold(Map<String, JobStatus> jobs, WireFormat wire, ConsumerRecord<String, byte[]> record,
      UnaryOperator<JobStatus> kept) {
    String jobId = record.key();
    JobStatus status = jobs.getOrDefault(jobId, JobStatusFold.empty(jobId));
    try {
      byte[] v = record.value();
      String t = record.topic();
      if (t.equals(Topics.REQUESTS.name())) {
        CompressionRequest request = wire.of(Topics.REQUESTS).valueSerde().deserializer().deserialize(t, v);
        if (!request.getJobId().equals(jobId)) {
          return; // keyed by another job's id: job-status skips it too
        }
        status = JobStatusFold.request(status, request, record.timestamp());
      } else if (t.equals(Topics.PROGRESS.name())) {
        JobProgress progress = wire.of(Topics.PROGRESS).valueSerde().deserializer().deserialize(t, v);
        status = JobStatusFold.progress(status, progress);
      } else if (t.equals(Topics.CHECKPOINTS.name())) {
        CheckpointReady checkpoint = wire.of(Topics.CHECKPOINTS).valueSerde().deserializer().deserialize(t, v);
        status = JobStatusFold.checkpoint(status, checkpoint, record.timestamp());
      } else if (t.equals(Topics.RESULTS.name())) {
        JobResult result = wire.of(Topics.RESULTS).valueSerde().deserializer().deserialize(t, v);
        status = JobStatusFold.result(status, result);
      } else if (t.equals(Topics.FAILURES.name())) {
        JobFailure failure = wire.of(Topics.FAILURES).valueSerde().deserializer().deserialize(t, v);
        status = JobStatusFold.failure(status, failure);
      } else {
        JobCancellation cancellation = wire.of(Topics.CANCELLATIONS).valueSerde().deserializer().deserialize(t, v);
        if (!cancellation.getJobId().equals(jobId)) {
          return;
        }
        status = JobStatusFold.cancellation(status, cancellation);
      }
      jobs.put(jobId, kept.apply(status));
    } catch (RuntimeException e) {
      LOG.debug("skipped an unreadable record at {}-{}@{}", record.topic(), record.partition(), record.offset(), e);
    }
  }
}
