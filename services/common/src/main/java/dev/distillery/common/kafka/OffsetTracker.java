package dev.distillery.common.kafka;

import java.util.Collection;
import java.util.HashMap;
import java.util.Map;
import java.util.TreeMap;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;

/**
 * Which offsets may be committed when records finish out of order: per partition, everything
 * below the first record still in progress. Used only on the consumer thread.
 */
final class OffsetTracker {
  private final Map<TopicPartition, TreeMap<Long, Boolean>> doneByOffset = new HashMap<>();

  void started(TopicPartition partition, long offset) {
    doneByOffset.computeIfAbsent(partition, p -> new TreeMap<>()).put(offset, false);
  }

  void finished(TopicPartition partition, long offset) {
    TreeMap<Long, Boolean> offsets = doneByOffset.get(partition);
    if (offsets != null && offsets.containsKey(offset)) {
      offsets.put(offset, true);
    }
  }

  /** Offsets to commit now, removing the finished prefix of each partition. */
  Map<TopicPartition, OffsetAndMetadata> committable() {
    Map<TopicPartition, OffsetAndMetadata> commits = new HashMap<>();
    doneByOffset.forEach((partition, offsets) -> {
      long next = -1;
      while (!offsets.isEmpty() && offsets.firstEntry().getValue()) {
        next = offsets.pollFirstEntry().getKey() + 1;
      }
      if (next >= 0) {
        commits.put(partition, new OffsetAndMetadata(next));
      }
    });
    return commits;
  }

  /** The first offset of {@code partition} still in progress (what a commit now would name), or -1. */
  long head(TopicPartition partition) {
    TreeMap<Long, Boolean> offsets = doneByOffset.get(partition);
    return offsets == null || offsets.isEmpty() ? -1 : offsets.firstKey();
  }

  void clear() {
    doneByOffset.clear();
  }

  int inProgress() {
    return doneByOffset.values().stream().mapToInt(TreeMap::size).sum();
  }

  void forget(Collection<TopicPartition> partitions) {
    partitions.forEach(doneByOffset::remove);
  }
}
