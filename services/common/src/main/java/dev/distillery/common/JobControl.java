package dev.distillery.common;

import java.util.Optional;
import java.util.function.Supplier;

/**
 * Lets long work ask, between batches, whether its job should go on: the job running on this
 * thread is registered by the stage ({@code JobRunner}) with a check that says why it must stop
 * (cancelled, ended elsewhere, lease lost). Training, inference and publishing call {@link
 * #checkpoint()}; on threads that run no job it does nothing.
 */
public final class JobControl {
  /** How often the check runs at most: it may touch the file system (the lease). */
  private static final long CHECK_INTERVAL_NANOS = 200_000_000L;
  private static final ThreadLocal<Scope> CURRENT = new ThreadLocal<>();

  private JobControl() {}

  /** The registration of one job on one thread; closing it ends the registration. */
  public static final class Scope implements AutoCloseable {
    private final String jobId;
    private final Supplier<Optional<JobStoppedException>> check;
    private long lastCheckNanos;

    private Scope(String jobId, Supplier<Optional<JobStoppedException>> check) {
      this.jobId = jobId;
      this.check = check;
    }

    public String jobId() {
      return jobId;
    }

    @Override
    public void close() {
      if (CURRENT.get() == this) {
        CURRENT.remove();
      }
    }
  }

  /** Registers {@code jobId} on this thread; {@code check} says why it must stop, or is empty. */
  public static Scope enter(String jobId, Supplier<Optional<JobStoppedException>> check) {
    Scope scope = new Scope(jobId, check);
    CURRENT.set(scope);
    return scope;
  }

  /** Throws {@link JobStoppedException} when the job on this thread must stop; call between batches. */
  public static void checkpoint() {
    Scope scope = CURRENT.get();
    if (scope == null) {
      return;
    }
    long now = System.nanoTime();
    if (now - scope.lastCheckNanos < CHECK_INTERVAL_NANOS && scope.lastCheckNanos != 0) {
      return;
    }
    scope.lastCheckNanos = now;
    Optional<JobStoppedException> stop = scope.check.get();
    if (stop.isPresent()) {
      throw stop.get();
    }
  }
}
