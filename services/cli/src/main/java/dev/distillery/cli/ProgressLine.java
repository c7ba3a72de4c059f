package dev.distillery.cli;

import dev.distillery.schemas.JobProgress;
import java.util.TreeMap;

/** One progress event as one line with a bar: plain text, so it reads well in a pipeline's log too. */
public final class ProgressLine {
  private static final int WIDTH = 30;

  private ProgressLine() {}

  public static String format(JobProgress p) {
    int filled = p.getTotalSteps() <= 0 ? 0 : (int) Math.min(WIDTH, WIDTH * p.getStep() / p.getTotalSteps());
    StringBuilder metrics = new StringBuilder();
    new TreeMap<>(p.getMetrics()).forEach((k, v) -> metrics.append(String.format(" %s=%.4g", k, v)));
    return String.format("%-17s [%s%s] %d/%d %s%s", p.getStage(), "#".repeat(filled), ".".repeat(WIDTH - filled),
        p.getStep(), p.getTotalSteps(), p.getMessage(), metrics);
  }
}
