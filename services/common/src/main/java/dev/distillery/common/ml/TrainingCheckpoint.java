package dev.distillery.common.ml;

import ai.djl.MalformedModelException;
import ai.djl.Model;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.io.Reader;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Comparator;
import java.util.Properties;
import java.util.stream.Stream;

/**
 * A training run's state on disk after each finished epoch: the weights, the best epoch's weights
 * and the counters, so a process killed mid-run continues after its last finished epoch. The
 * state file is written last and atomically: it never points at weights that are not complete.
 * The optimizer's moments are not kept: a resumed run restarts them (a short warm-up).
 */
public final class TrainingCheckpoint {
  /**
   * Counters of a run.
   *
   * @param epoch the last finished epoch, 0 before the first
   * @param bestEpoch the epoch with the best validation accuracy so far
   * @param bestAccuracy that accuracy (NaN before the first epoch or without validation)
   */
  public record State(int epoch, int bestEpoch, double bestAccuracy) {
    static final State FRESH = new State(0, 0, Double.NaN);
  }

  private static final String STATE = "state.properties";
  private static final String LAST = "last.params";
  private static final String BEST = "best.params";

  private final Path dir;
  private final String fingerprint;

  /**
   * State kept in {@code dir}, valid only for the run {@code fingerprint} describes (the request
   * and the run's role), so a reused job id never continues someone else's run.
   */
  public TrainingCheckpoint(Path dir, String fingerprint) {
    this.dir = dir;
    this.fingerprint = fingerprint;
  }

  /** Loads the last finished epoch's weights into {@code model}; FRESH when there is none for this run. */
  State restore(Model model) throws IOException {
    Path file = dir.resolve(STATE);
    if (!Files.isRegularFile(file)) {
      return State.FRESH;
    }
    Properties saved = new Properties();
    try (Reader in = Files.newBufferedReader(file)) {
      saved.load(in);
    }
    if (!fingerprint.equals(saved.getProperty("fingerprint"))) {
      deleteAll(dir);
      return State.FRESH;
    }
    load(model, Files.readAllBytes(dir.resolve(LAST)));
    return new State(Integer.parseInt(saved.getProperty("epoch")), Integer.parseInt(saved.getProperty("bestEpoch")),
        Double.parseDouble(saved.getProperty("bestAccuracy")));
  }

  /** The best epoch's weights saved so far, or null. */
  byte[] bestWeights() throws IOException {
    Path best = dir.resolve(BEST);
    return Files.isRegularFile(best) ? Files.readAllBytes(best) : null;
  }

  /** Saves a finished epoch: the model's weights, the best weights when they changed, then the counters. */
  void save(Model model, State state, byte[] newBestWeights) throws IOException {
    Files.createDirectories(dir);
    replace(LAST, weights(model));
    if (newBestWeights != null) {
      replace(BEST, newBestWeights);
    }
    Properties counters = new Properties();
    counters.setProperty("fingerprint", fingerprint);
    counters.setProperty("epoch", String.valueOf(state.epoch()));
    counters.setProperty("bestEpoch", String.valueOf(state.bestEpoch()));
    counters.setProperty("bestAccuracy", String.valueOf(state.bestAccuracy()));
    ByteArrayOutputStream text = new ByteArrayOutputStream();
    try (Writer out = new OutputStreamWriter(text, StandardCharsets.UTF_8)) {
      counters.store(out, "training state; weights in " + LAST + " and " + BEST);
    }
    replace(STATE, text.toByteArray());
  }

  /** Removes the state of every run under {@code dir}: their outcome is published, a restart must not resume them. */
  public static void deleteAll(Path dir) throws IOException {
    if (!Files.isDirectory(dir)) {
      return;
    }
    try (Stream<Path> files = Files.walk(dir)) {
      files.sorted(Comparator.reverseOrder()).forEach(path -> {
        try {
          Files.delete(path);
        } catch (IOException e) {
          throw new UncheckedIOException(e);
        }
      });
    } catch (UncheckedIOException e) {
      throw e.getCause();
    }
  }

  private void replace(String name, byte[] content) throws IOException {
    Path temporary = dir.resolve(name + ".tmp");
    Files.write(temporary, content);
    Files.move(temporary, dir.resolve(name), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
  }

  static byte[] weights(Model model) throws IOException {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    try (DataOutputStream out = new DataOutputStream(bytes)) {
      model.getBlock().saveParameters(out);
    }
    return bytes.toByteArray();
  }

  static void load(Model model, byte[] weights) throws IOException {
    try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(weights))) {
      model.getBlock().loadParameters(model.getNDManager(), in);
    } catch (MalformedModelException e) {
      throw new IOException("saved training weights do not fit the model: " + e.getMessage(), e);
    }
  }
}
