package dev.distillery.cli;

import dev.distillery.schemas.JobProgress;
import java.util.TreeMap;

/** One progress event as one line with a bar: plain text, so it reads well in a pipeline's log too. */
public final class ProgressLine {
  private static final int WIDTH = 30;

  private ProgressLine() {}

  public static String format(JobProgress p) {
    int filled = (int) Math.min(WIDTH, Math.round(WIDTH * p.getFraction()));
    StringBuilder metrics = new StringBuilder();
    new TreeMap<>(p.getMetrics()).forEach((k, v) -> metrics.append(String.format(" %s=%.4g", k, v)));
    String left = p.getSecondsLeft() == null || p.getFraction() >= 1 ? "" : String.format(" (%s left)", duration(p.getSecondsLeft()));
    return String.format("%-17s [%s%s] %d/%d%s %s%s", p.getStage(), "#".repeat(filled), ".".repeat(WIDTH - filled),
        p.getStep(), p.getTotalSteps(), left, p.getMessage(), metrics);
  }

  /** 42 s, 3 min 5 s, 2 h 10 min. */
  static String duration(double seconds) {
    long s = Math.round(seconds);
    return s < 60 ? s + " s" : s < 3600 ? s / 60 + " min " + s % 60 + " s" : s / 3600 + " h " + s % 3600 / 60 + " min";
  }
}
