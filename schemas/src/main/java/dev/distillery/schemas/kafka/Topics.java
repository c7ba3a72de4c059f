package dev.distillery.schemas.kafka;

import dev.distillery.schemas.CheckpointReady;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.JobCancellation;
import dev.distillery.schemas.JobFailure;
import dev.distillery.schemas.JobProgress;
import dev.distillery.schemas.JobResult;
import dev.distillery.schemas.SoftLabelBatch;
import dev.distillery.schemas.TeacherShard;
import java.util.List;
import org.apache.kafka.common.serialization.Serdes;

/**
 * The one registry of Distillery's topics. Every record is keyed by its job id.
 *
 * <pre>
 * requests ─▶ teacher planner ─▶ teacher-shards ─▶ teacher-inference replicas ─▶ soft-labels
 *          ─▶ student-trainer ─▶ checkpoints ─▶ pruner ─▶ results
 *                        (every stage) ─▶ progress, failures; undecodable input ─▶ dlq
 * users ─▶ cancellations ─▶ every stage, job-status
 * </pre>
 */
public final class Topics {
  public static final Topic<CompressionRequest> REQUESTS =
      new Topic<>("distillery.requests", AvroSerde.of(CompressionRequest.class));
  /** Work for teacher-inference replicas: ranges of a job's samples. Partitioned for scale-out. */
  public static final Topic<TeacherShard> TEACHER_SHARDS =
      new Topic<>("distillery.teacher-shards", AvroSerde.of(TeacherShard.class));
  public static final Topic<SoftLabelBatch> SOFT_LABELS =
      new Topic<>("distillery.soft-labels", AvroSerde.of(SoftLabelBatch.class));
  public static final Topic<CheckpointReady> CHECKPOINTS =
      new Topic<>("distillery.checkpoints", AvroSerde.of(CheckpointReady.class));
  public static final Topic<JobProgress> PROGRESS =
      new Topic<>("distillery.progress", AvroSerde.of(JobProgress.class));
  public static final Topic<JobResult> RESULTS =
      new Topic<>("distillery.results", AvroSerde.of(JobResult.class));
  public static final Topic<JobFailure> FAILURES =
      new Topic<>("distillery.failures", AvroSerde.of(JobFailure.class));
  /**
   * Requests to stop a job, from the job API, the CLI or a pipeline. Every service reads all of it
   * (no consumer group) to stop the job's work wherever it runs; job-status folds it into the status.
   */
  public static final Topic<JobCancellation> CANCELLATIONS =
      new Topic<>("distillery.cancellations", AvroSerde.of(JobCancellation.class));
  /** Records no service could decode, as they arrived, with headers saying why (see DeadLetters). */
  public static final Topic<byte[]> DEAD_LETTERS =
      new Topic<>("distillery.dlq", Serdes.ByteArray());

  /** Every topic, for creating them. */
  public static final List<Topic<?>> ALL =
      List.of(REQUESTS, TEACHER_SHARDS, SOFT_LABELS, CHECKPOINTS, PROGRESS, RESULTS, FAILURES, CANCELLATIONS,
          DEAD_LETTERS);

  private Topics() {}
}
