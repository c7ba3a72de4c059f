package dev.distillery.common;

/**
 * A job's work in this process stopped because it should not go on here: the job was cancelled,
 * it ended elsewhere (another stage failed it), or another process took it over. Not a failure of
 * the job: nothing more is published for it by this process.
 */
public final class JobStoppedException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  /** Why the work stopped. */
  public enum Why {
    /** A {@code JobCancellation} was published for the job. */
    CANCELLED,
    /** A stage published the job's failure. */
    ENDED,
    /** Another process holds the job's lease now: it goes on there. */
    FENCED
  }

  private final Why why;

  public JobStoppedException(Why why, String reason) {
    super(reason);
    this.why = why;
  }

  public Why why() {
    return why;
  }
}
