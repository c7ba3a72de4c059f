package dev.distillery.common.kafka;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.List;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;

class OffsetTrackerTest {
  private final TopicPartition p0 = new TopicPartition("t", 0);
  private final TopicPartition p1 = new TopicPartition("t", 1);

  @Test
  void commitsOnlyUpToTheFirstUnfinishedRecord() {
    OffsetTracker tracker = new OffsetTracker();
    tracker.started(p0, 10);
    tracker.started(p0, 11);
    tracker.started(p0, 12);
    tracker.started(p1, 5);
    tracker.finished(p0, 11);
    tracker.finished(p0, 12);
    assertThat(tracker.committable()).isEmpty();
    tracker.finished(p0, 10);
    tracker.finished(p1, 5);
    assertThat(tracker.committable()).containsEntry(p0, new OffsetAndMetadata(13)).containsEntry(p1, new OffsetAndMetadata(6));
    assertThat(tracker.committable()).isEmpty();
    assertThat(tracker.inProgress()).isZero();
  }

  @Test
  void forgetsRevokedPartitions() {
    OffsetTracker tracker = new OffsetTracker();
    tracker.started(p0, 1);
    tracker.forget(List.of(p0));
    tracker.finished(p0, 1);
    assertThat(tracker.committable()).isEmpty();
  }
}
