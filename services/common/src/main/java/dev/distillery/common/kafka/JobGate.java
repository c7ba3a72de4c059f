package dev.distillery.common.kafka;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import org.apache.kafka.clients.consumer.ConsumerRecord;

/** What the consumer loop asks of its stage about jobs, before it hands a record over. */
public interface JobGate {
  /** True when the job ended (cancelled, or failed somewhere): its records are skipped. */
  boolean ended(String jobId);

  /** How many times a job may be started in this stage, processes that died on it included. */
  int maxAttempts();

  /**
   * Ends a job whose records were delivered {@code attempts} times to processes that died before
   * finishing them: its failure event, and the record in the dead-letter topic with its attempts.
   * From this call on, {@link #ended} is true for the job.
   */
  CompletionStage<?> abandon(ConsumerRecord<String, byte[]> record, String jobId, int attempts);

  /** No job ends early and no record is given up: for loops outside the pipeline's stages. */
  JobGate NONE = new JobGate() {
    @Override
    public boolean ended(String jobId) {
      return false;
    }

    @Override
    public int maxAttempts() {
      return Integer.MAX_VALUE;
    }

    @Override
    public CompletionStage<?> abandon(ConsumerRecord<String, byte[]> record, String jobId, int attempts) {
      return CompletableFuture.completedFuture(null);
    }
  };
}
