package dev.distillery.status;

import dev.distillery.schemas.CheckpointReady;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.JobCancellation;
import dev.distillery.schemas.JobFailure;
import dev.distillery.schemas.JobProgress;
import dev.distillery.schemas.JobResult;
import dev.distillery.schemas.JobState;
import dev.distillery.schemas.JobStatus;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.StageStatus;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.TreeMap;

/**
 * How one event changes a job's {@link JobStatus}. Events of one job arrive on several topics, so
 * in no fixed order, and at least once, so possibly twice: every rule here gives the same status
 * whatever the order and however often an event comes.
 *
 * <ul>
 *   <li>A stage's latest progress is the one of the highest step (ties: the later, then by text);
 *       the history keeps one event per stage and step, chosen the same way, and at most {@link
 *       #HISTORY_PER_STAGE} per stage (see {@link #progress}).
 *   <li>DONE, FAILED and CANCELLED are final: later progress does not make a job RUNNING again. A
 *       result replaces a failure (a retry that succeeded), a failure after a result changes only
 *       the times; of two failures the earlier is the reason, of two results the later stands.
 *   <li>A cancellation ends a job that has not ended; a cancellation of an ended job, and a result
 *       or failure after the cancellation, change only the times. Here the order does count: the
 *       first outcome folded in stands (in the service, the order in which Kafka Streams processes
 *       the job's records, mostly that of their timestamps). Of two cancellations the earlier is
 *       the one shown.
 *   <li>The request fills in what it says whenever it arrives (of two, the earlier submitted).
 *   <li>Every event moves the first ({@code submittedAtMs}) and last ({@code updatedAtMs}) times.
 * </ul>
 *
 * <p>The job-status service's topology and the CLI both fold with it.
 */
public final class JobStatusFold {
  /**
   * History entries kept per stage. A job's status is rewritten to the store's changelog at every
   * event, so its size is what each event costs: three stages of 64 entries are about 20 KB.
   */
  public static final int HISTORY_PER_STAGE = 64;

  /** Which of two progress events of one stage is the later: higher step, then later time, then text. */
  private static final Comparator<JobProgress> LATER = Comparator.comparingLong(JobProgress::getStep)
      .thenComparingLong(JobProgress::getTimestampMs).thenComparing(JobProgress::getMessage)
      .thenComparing(p -> new TreeMap<>(p.getMetrics()).toString());
  /** Which of two failures came first: time, then stage, then reason. */
  private static final Comparator<JobFailure> FIRST_FAILURE = Comparator.comparingLong(JobFailure::getTimestampMs)
      .thenComparing(JobFailure::getStage).thenComparing(JobFailure::getReason);
  /** Which of two cancellations came first: time, then who, then why. */
  private static final Comparator<JobCancellation> FIRST_CANCELLATION =
      Comparator.comparingLong(JobCancellation::getTimestampMs).thenComparing(JobCancellation::getRequestedBy)
          .thenComparing(JobCancellation::getReason);
  private static final List<Stage> PIPELINE_ORDER =
      List.of(Stage.TEACHER_INFERENCE, Stage.DISTILLATION, Stage.TRANSFER, Stage.PRUNING, Stage.QUANTIZATION,
          Stage.UNSUPPORTED);

  private JobStatusFold() {}

  /** Whether a job in {@code state} has ended: DONE, FAILED or CANCELLED. */
  public static boolean ended(JobState state) {
    return state == JobState.DONE || state == JobState.FAILED || state == JobState.CANCELLED;
  }

  public static JobStatus empty(String jobId) {
    return JobStatus.newBuilder().setJobId(jobId).setState(JobState.UNKNOWN).build();
  }

  /**
   * {@code timestampMs} is the request record's, used when the request does not say when it was
   * submitted. A job id belongs to the first request that used it (the stages refuse later ones
   * and ignore re-deliveries), so another request under the id of a job leaves it as it is.
   */
  public static JobStatus request(JobStatus status, CompressionRequest request, long timestampMs) {
    if (status.getRequest() != null && !status.getRequest().equals(request)) {
      return status;
    }
    long submitted = request.getSubmittedAtMs() > 0 ? request.getSubmittedAtMs() : timestampMs;
    JobStatus.Builder next = JobStatus.newBuilder(status).setRequest(request);
    if (status.getState() == JobState.UNKNOWN) {
      next.setState(JobState.ACCEPTED);
    }
    return touched(next, submitted);
  }

  /**
   * A stage's progress. Events with figures go to the history, one per stage and step. A stage
   * with more than {@link #HISTORY_PER_STAGE} such steps is summarised: its first and latest step
   * stay, and of the others the one whose neighbours are closest goes, so those kept stay evenly
   * spread over the run (a run of 1,000 epochs keeps every 11th to 22nd). Which steps a summary
   * keeps can depend on the order the events came in; with up to {@link #HISTORY_PER_STAGE} steps
   * a stage keeps them all, whatever the order.
   */
  public static JobStatus progress(JobStatus status, JobProgress progress) {
    JobStatus.Builder next = JobStatus.newBuilder(status).setState(running(status.getState()));
    List<StageStatus> stages = new ArrayList<>(status.getStages());
    int index = indexOf(stages, progress.getStage());
    StageStatus stage = index < 0 ? new StageStatus(progress.getStage(), null, false) : stages.get(index);
    if (stage.getLatest() == null || LATER.compare(progress, stage.getLatest()) > 0) {
      boolean done = stage.getDone() || status.getState() == JobState.DONE
          || progress.getStep() >= progress.getTotalSteps();
      next.setStages(put(stages, new StageStatus(stage.getStage(), progress, done)));
    }
    if (!progress.getMetrics().isEmpty()) {
      List<JobProgress> history = new ArrayList<>(status.getHistory());
      JobProgress same = history.stream().filter(h -> sameStep(h, progress)).findFirst().orElse(null);
      if (same == null || LATER.compare(progress, same) > 0) {
        history.remove(same);
        history.add(progress);
        summarise(history, progress.getStage());
        history.sort(Comparator.comparingLong(JobProgress::getTimestampMs)
            .thenComparing(JobProgress::getStage).thenComparingLong(JobProgress::getStep));
        next.setHistory(history);
      }
    }
    return touched(next, progress.getTimestampMs());
  }

  /** A stage handed its checkpoint on: that stage is done. */
  public static JobStatus checkpoint(JobStatus status, CheckpointReady checkpoint, long timestampMs) {
    JobStatus.Builder next = JobStatus.newBuilder(status).setState(running(status.getState()));
    if (status.getRequest() == null) {
      next.setRequest(checkpoint.getContext().getRequest());
    }
    next.setStages(markDone(status.getStages(), checkpoint.getProducedBy()));
    return touched(next, timestampMs);
  }

  /**
   * Of two results (a job run twice), the later completed one stands; after a cancellation a result
   * changes only the times.
   */
  public static JobStatus result(JobStatus status, JobResult result) {
    JobStatus.Builder next = JobStatus.newBuilder(status);
    if (status.getState() != JobState.CANCELLED
        && (status.getResult() == null || result.getCompletedAtMs() > status.getResult().getCompletedAtMs())) {
      List<StageStatus> stages = status.getStages();
      for (StageStatus stage : status.getStages()) {
        stages = markDone(stages, stage.getStage());
      }
      next.setState(JobState.DONE).setResult(result).setFailure(null).setStages(stages);
    }
    return touched(next, result.getCompletedAtMs());
  }

  /**
   * Of two failures, the earlier one is the reason; after a result or a cancellation a failure
   * changes only the times.
   */
  public static JobStatus failure(JobStatus status, JobFailure failure) {
    if (failure.getRefusedRequest()) {
      return status; // refuses a later request under this id; the job itself goes on as it was
    }
    JobStatus.Builder next = JobStatus.newBuilder(status);
    boolean replaces = status.getFailure() == null || FIRST_FAILURE.compare(failure, status.getFailure()) < 0;
    if (status.getState() != JobState.DONE && status.getState() != JobState.CANCELLED && replaces) {
      next.setState(JobState.FAILED).setFailure(failure);
    }
    return touched(next, failure.getTimestampMs());
  }

  /**
   * A job that has not ended is CANCELLED; an ended one stays as it was (its times move). A
   * cancellation may come before anything else of the job: the job is then CANCELLED from the
   * start, and its request fills in when it arrives.
   */
  public static JobStatus cancellation(JobStatus status, JobCancellation cancellation) {
    JobStatus.Builder next = JobStatus.newBuilder(status);
    if (!ended(status.getState())) {
      next.setState(JobState.CANCELLED).setCancellation(cancellation);
    } else if (status.getState() == JobState.CANCELLED && (status.getCancellation() == null
        || FIRST_CANCELLATION.compare(cancellation, status.getCancellation()) < 0)) {
      next.setCancellation(cancellation);
    }
    return touched(next, cancellation.getTimestampMs());
  }

  private static JobState running(JobState state) {
    return ended(state) ? state : JobState.RUNNING;
  }

  /** At most {@link #HISTORY_PER_STAGE} entries of {@code stage} in {@code history}; see {@link #progress}. */
  private static void summarise(List<JobProgress> history, Stage stage) {
    List<JobProgress> steps = new ArrayList<>(history.stream().filter(p -> p.getStage() == stage)
        .sorted(Comparator.comparingLong(JobProgress::getStep)).toList());
    while (steps.size() > HISTORY_PER_STAGE) {
      int closest = 1;
      for (int i = 2; i < steps.size() - 1; i++) {
        if (gap(steps, i) < gap(steps, closest)) {
          closest = i;
        }
      }
      history.remove(steps.remove(closest));
    }
  }

  /** The steps between the neighbours of entry {@code i}: the hole its removal would leave. */
  private static long gap(List<JobProgress> steps, int i) {
    return steps.get(i + 1).getStep() - steps.get(i - 1).getStep();
  }

  private static List<StageStatus> markDone(List<StageStatus> stages, Stage stage) {
    int index = indexOf(stages, stage);
    return put(stages, new StageStatus(stage, index < 0 ? null : stages.get(index).getLatest(), true));
  }

  /** {@code stages} with {@code stage} added or replaced, in pipeline order. */
  private static List<StageStatus> put(List<StageStatus> stages, StageStatus stage) {
    List<StageStatus> next = new ArrayList<>(stages);
    int index = indexOf(next, stage.getStage());
    if (index < 0) {
      next.add(stage);
    } else {
      next.set(index, stage);
    }
    next.sort(Comparator.comparingInt(s -> PIPELINE_ORDER.indexOf(s.getStage())));
    return next;
  }

  private static int indexOf(List<StageStatus> stages, Stage stage) {
    for (int i = 0; i < stages.size(); i++) {
      if (stages.get(i).getStage() == stage) {
        return i;
      }
    }
    return -1;
  }

  private static boolean sameStep(JobProgress a, JobProgress b) {
    return a.getStage() == b.getStage() && a.getStep() == b.getStep();
  }

  private static long earliest(long known, long timestampMs) {
    return known == 0 ? timestampMs : Math.min(known, timestampMs);
  }

  /** Every event moves the job's first and last times, whatever else it changes. */
  private static JobStatus touched(JobStatus.Builder next, long timestampMs) {
    return next.setSubmittedAtMs(earliest(next.getSubmittedAtMs(), timestampMs))
        .setUpdatedAtMs(Math.max(next.getUpdatedAtMs(), timestampMs)).build();
  }
}
