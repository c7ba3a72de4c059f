package dev.distillery.common.kafka;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.junit.jupiter.api.Test;

class AttemptsTest {

  @Test
  void attemptsRoundTripThroughCommitMetadata() {
    Map<String, Integer> attempts = new LinkedHashMap<>(Map.of("job-1", 2, "a.b_c-9", 1));
    assertThat(Attempts.parse(Attempts.format(attempts))).isEqualTo(attempts);
    assertThat(Attempts.parse(null)).isEmpty();
    assertThat(Attempts.parse("someone else's metadata")).isEmpty();
    assertThat(Attempts.parse("attempts:ok:2,broken:x,:3")).isEqualTo(Map.of("ok", 2));
  }

  @Test
  void metadataStaysWithinWhatTheBrokerTakes() {
    Map<String, Integer> many = new LinkedHashMap<>();
    for (int i = 0; i < 1_000; i++) {
      many.put("job-with-a-longish-identifier-" + i, 1);
    }
    String metadata = Attempts.format(many);
    assertThat(metadata.length()).isLessThanOrEqualTo(4_000);
    assertThat(Attempts.parse(metadata)).isNotEmpty().allSatisfy((job, attempt) -> assertThat(attempt).isEqualTo(1));
  }

  @Test
  void aDeliveredRecordCarriesItsAttempt() {
    ConsumerRecord<String, byte[]> record = new ConsumerRecord<>("t", 0, 5L, "job", new byte[0]);
    assertThat(Attempts.of(record)).isEqualTo(1);
    ConsumerRecord<String, byte[]> second = Attempts.withAttempt(Attempts.withAttempt(record, 3), 2);
    assertThat(Attempts.of(second)).isEqualTo(2);
    assertThat(second.offset()).isEqualTo(5L);
    assertThat(second.headers().headers(Attempts.HEADER)).hasSize(1);
  }
}
