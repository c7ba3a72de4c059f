package dev.distillery.status;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.distillery.schemas.kafka.SchemaRegistry;
import org.apache.kafka.streams.errors.DeserializationExceptionHandler;
import org.apache.kafka.streams.errors.StreamsException;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.junit.jupiter.api.Test;

/** A record whose schema the registry cannot give yet is read again, not skipped. */
class SkipUndecodableTest {
  /** What a registry with nothing listening says: no answer. */
  private static Throwable registryAway() {
    return catchThrowable(() -> new SchemaRegistry("http://127.0.0.1:1", "", "").schemaById(1));
  }

  @Test
  void aRecordWaitingForTheRegistryFailsItsThreadWhichIsReplaced() {
    Throwable away = registryAway();
    assertThat(away).isInstanceOf(SchemaRegistry.Unavailable.class);
    assertThat(new SkipUndecodable().handleError(null, null, (Exception) away).result())
        .isEqualTo(DeserializationExceptionHandler.Result.FAIL);
    assertThat(SkipUndecodable.REPLACE_THREAD_WHILE_REGISTRY_AWAY.handle(new StreamsException("failed", away)))
        .isEqualTo(StreamThreadExceptionResponse.REPLACE_THREAD);
  }

  @Test
  void anyOtherFailureStopsStreamsAsBefore() {
    assertThat(SkipUndecodable.REPLACE_THREAD_WHILE_REGISTRY_AWAY.handle(new StreamsException("a bug")))
        .isEqualTo(StreamThreadExceptionResponse.SHUTDOWN_CLIENT);
  }
}
