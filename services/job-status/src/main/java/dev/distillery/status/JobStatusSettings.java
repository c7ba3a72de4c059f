package dev.distillery.status;

import java.io.IOException;
import java.io.Reader;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.format.DateTimeParseException;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The job-status service's own settings, beside {@link dev.distillery.common.config.ServiceConfig}
 * and read from the same sources, later ones winning: the defaults, the properties file named by
 * {@code DISTILLERY_CONFIG}, then the environment ({@code DISTILLERY_STATUS_RETENTION} is {@code
 * status.retention}).
 *
 * @param retention how long a job that ended (DONE, FAILED or CANCELLED) stays in the store after
 *     its last event; then it is deleted, and its changelog gets a tombstone. Key {@code
 *     status.retention}: a number with a unit ({@code ms}, {@code s}, {@code m}, {@code h}, {@code
 *     d}) or an ISO-8601 duration ({@code P7D}); default 7 days.
 */
public record JobStatusSettings(Duration retention) {
  public static final String RETENTION = "status.retention";
  public static final JobStatusSettings DEFAULT = new JobStatusSettings(Duration.ofDays(7));
  private static final Pattern AMOUNT = Pattern.compile("(\\d+)\\s*(ms|s|m|h|d)");

  public JobStatusSettings {
    if (retention.isNegative() || retention.isZero()) {
      throw new IllegalArgumentException(RETENTION + " must be positive, was " + retention);
    }
  }

  /** From the process environment, as the service reads its configuration. */
  public static JobStatusSettings load() {
    return from(System.getenv());
  }

  /** From {@code env}: {@code DISTILLERY_CONFIG}'s file, then {@code DISTILLERY_STATUS_RETENTION}. */
  public static JobStatusSettings from(Map<String, String> env) {
    String retention = null;
    String file = env.get("DISTILLERY_CONFIG");
    if (file != null && !file.isBlank()) {
      retention = read(Path.of(file)).getProperty(RETENTION);
    }
    String variable = env.get("DISTILLERY_STATUS_RETENTION");
    if (variable != null) {
      retention = variable;
    }
    return retention == null ? DEFAULT : new JobStatusSettings(duration(retention));
  }

  /** From flat keys ({@code status.retention}); absent keys take their defaults. */
  public static JobStatusSettings fromKeys(Map<String, String> keys) {
    String retention = keys.get(RETENTION);
    return retention == null ? DEFAULT : new JobStatusSettings(duration(retention));
  }

  /**
   * How often the store is searched for jobs past their retention: a tenth of it, between 100 ms
   * and a minute, so a job goes at most that much later than its retention says.
   */
  public Duration sweepInterval() {
    Duration tenth = retention.dividedBy(10);
    return tenth.compareTo(Duration.ofMillis(100)) < 0 ? Duration.ofMillis(100)
        : tenth.compareTo(Duration.ofMinutes(1)) > 0 ? Duration.ofMinutes(1) : tenth;
  }

  static Duration duration(String text) {
    String value = text.trim().toLowerCase(Locale.ROOT);
    Matcher m = AMOUNT.matcher(value);
    if (m.matches()) {
      long amount = Long.parseLong(m.group(1));
      return switch (m.group(2)) {
        case "ms" -> Duration.ofMillis(amount);
        case "s" -> Duration.ofSeconds(amount);
        case "m" -> Duration.ofMinutes(amount);
        case "h" -> Duration.ofHours(amount);
        default -> Duration.ofDays(amount);
      };
    }
    try {
      return Duration.parse(text.trim());
    } catch (DateTimeParseException e) {
      throw new IllegalArgumentException(RETENTION + " must be a duration such as 7d, 12h, 30s or P7D, was '"
          + text + "'", e);
    }
  }

  private static Properties read(Path file) {
    Properties properties = new Properties();
    try (Reader reader = Files.newBufferedReader(file)) {
      properties.load(reader);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read configuration file " + file, e);
    }
    return properties;
  }
}
