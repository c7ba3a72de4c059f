package dev.distillery.status;

import dev.distillery.schemas.kafka.SchemaRegistry;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.streams.errors.ErrorHandlerContext;
import org.apache.kafka.streams.errors.LogAndContinueExceptionHandler;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;

/**
 * How job-status meets a record it cannot decode. One no one can decode is skipped (the stage
 * that consumes it dead-letters it). One whose writer schema the registry cannot give yet (no
 * answer, HTTP 5xx) is not: skipping it would leave a job's status behind for good, so the stream
 * thread fails on it and {@link #REPLACE_THREAD_WHILE_REGISTRY_AWAY} replaces the thread, which
 * reads it again from the last commit.
 */
public final class SkipUndecodable extends LogAndContinueExceptionHandler {
  /** Replaces a thread that failed for the registry, a second later; any other failure stops Streams. */
  static final StreamsUncaughtExceptionHandler REPLACE_THREAD_WHILE_REGISTRY_AWAY = exception -> {
    if (!registryAway(exception)) {
      return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
    }
    try {
      Thread.sleep(1_000); // the dying thread's own pause, so that a registry down is not asked in a loop
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.REPLACE_THREAD;
  };

  @Override
  public Response handleError(ErrorHandlerContext context, ConsumerRecord<byte[], byte[]> record, Exception exception) {
    return registryAway(exception) ? Response.fail() : super.handleError(context, record, exception);
  }

  private static boolean registryAway(Throwable exception) {
    for (Throwable cause = exception; cause != null; cause = cause.getCause()) {
      if (cause instanceof SchemaRegistry.Unavailable) {
        return true;
      }
    }
    return false;
  }
}
