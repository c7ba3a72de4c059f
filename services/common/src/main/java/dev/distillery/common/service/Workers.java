package dev.distillery.common.service;

import io.vertx.core.Vertx;
import io.vertx.core.WorkerExecutor;
import java.time.Duration;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The bounded, named pool where a service's DJL work runs, never on an event loop. The consumer
 * asks {@link #full()} and pauses instead of queueing more work than there are threads.
 */
public final class Workers implements AutoCloseable {
  private final WorkerExecutor executor;
  private final int size;
  private final AtomicInteger inFlight = new AtomicInteger();

  public Workers(Vertx vertx, String name, int size) {
    // Jobs take minutes: Vert.x's blocked-thread warning is meant for short blocking calls.
    this.executor = vertx.createSharedWorkerExecutor(name, size, 24, TimeUnit.HOURS);
    this.size = size;
  }

  /**
   * Runs {@code task} on the pool. The returned future completes on the worker thread, so what
   * directly follows it (publishing outputs) never runs on an event loop.
   */
  public <T> CompletableFuture<T> submit(Callable<T> task) {
    inFlight.incrementAndGet();
    CompletableFuture<T> result = new CompletableFuture<>();
    executor.executeBlocking(() -> {
      T value = null;
      Throwable error = null;
      try {
        value = task.call();
      } catch (Throwable t) {
        error = t;
      }
      idle();
      if (error == null) {
        result.complete(value);
      } else {
        result.completeExceptionally(error);
      }
      return null;
    }, false);
    return result;
  }

  private void idle() {
    synchronized (inFlight) {
      inFlight.decrementAndGet();
      inFlight.notifyAll();
    }
  }

  /** Waits up to {@code timeout} for running work to end; true when none is left. */
  public boolean awaitIdle(Duration timeout) throws InterruptedException {
    long deadline = System.nanoTime() + timeout.toNanos();
    synchronized (inFlight) {
      while (inFlight.get() > 0) {
        long left = deadline - System.nanoTime();
        if (left <= 0) {
          return false;
        }
        TimeUnit.NANOSECONDS.timedWait(inFlight, left);
      }
      return true;
    }
  }

  public boolean full() {
    return inFlight.get() >= size;
  }

  @Override
  public void close() {
    executor.close();
  }
}
