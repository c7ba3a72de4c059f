package dev.distillery.status;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The retention of ended jobs, read as the service reads its other keys: defaults, file, environment. */
class JobStatusSettingsTest {
  @Test
  void retentionDefaultsToAWeekAndIsReadFromTheFileThenTheEnvironment(@TempDir Path dir) throws Exception {
    assertThat(JobStatusSettings.from(Map.of()).retention()).isEqualTo(Duration.ofDays(7));
    Path file = Files.writeString(dir.resolve("job-status.properties"), "status.retention=12h\n");
    assertThat(JobStatusSettings.from(Map.of("DISTILLERY_CONFIG", file.toString())).retention())
        .isEqualTo(Duration.ofHours(12));
    assertThat(JobStatusSettings.from(Map.of("DISTILLERY_CONFIG", file.toString(),
        "DISTILLERY_STATUS_RETENTION", "P2D")).retention()).isEqualTo(Duration.ofDays(2));
    assertThat(JobStatusSettings.fromKeys(Map.of("status.retention", "1500ms")).retention())
        .isEqualTo(Duration.ofMillis(1500));
    assertThat(JobStatusSettings.fromKeys(Map.of("status.retention", " 30 s")).retention())
        .isEqualTo(Duration.ofSeconds(30));
  }

  @Test
  void aRetentionThatIsNotAPositiveDurationIsRefusedByName() {
    for (String bad : new String[] {"0s", "seven days", "-5m", ""}) {
      assertThatThrownBy(() -> JobStatusSettings.fromKeys(Map.of("status.retention", bad)))
          .as(bad).isInstanceOf(IllegalArgumentException.class).hasMessageContaining("status.retention");
    }
  }

  @Test
  void theStoreIsSweptEveryTenthOfTheRetentionBetween100MillisecondsAndAMinute() {
    assertThat(new JobStatusSettings(Duration.ofDays(7)).sweepInterval()).isEqualTo(Duration.ofMinutes(1));
    assertThat(new JobStatusSettings(Duration.ofSeconds(5)).sweepInterval()).isEqualTo(Duration.ofMillis(500));
    assertThat(new JobStatusSettings(Duration.ofMillis(200)).sweepInterval()).isEqualTo(Duration.ofMillis(100));
  }
}
