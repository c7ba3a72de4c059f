package dev.distillery.common.kafka;

import java.util.concurrent.CompletionStage;
import org.apache.kafka.clients.consumer.ConsumerRecord;

/** What a service does with each decoded record of its input topic. */
public interface RecordHandler<V> {
  /**
   * Starts work on one record. Called on the consumer thread, so it must not block: heavy work goes
   * to the service's worker pool. The returned stage completes once every output of the record
   * exists (a failure event counts as an output); only then is its offset committed.
   */
  CompletionStage<?> handle(ConsumerRecord<String, byte[]> record, V value);

  /**
   * While true the consumer takes no new records (its partitions are paused). A stage is also
   * busy whenever its worker pool is full ({@code StageService} adds that), so most handlers
   * need not say more.
   */
  default boolean busy() {
    return false;
  }

  /**
   * Called on the consumer thread at every poll, to give up on work that waits too long for input.
   * {@code fetchingMillis} is a clock that runs only while the consumer fetches: paused (busy) it
   * stands still, so nothing expires for want of records that could not be read. It is also the
   * clock of the records {@link #handle}d since the previous call.
   */
  default void expire(long fetchingMillis) {}
}
