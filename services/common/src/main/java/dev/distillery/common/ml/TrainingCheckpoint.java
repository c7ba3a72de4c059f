package dev.distillery.common.ml;

import ai.djl.MalformedModelException;
import ai.djl.Model;
import ai.djl.pytorch.engine.PtNDManager;
import ai.djl.pytorch.engine.PtSymbolBlock;
import ai.djl.pytorch.jni.JniUtils;
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
 * and the counters, so a process killed mid-run continues after its last finished epoch. Weights
 * go to files named by their epoch; the counters file, replaced last and atomically, names the
 * files it belongs to, so a kill at any point leaves a consistent state (older files are removed
 * only after). The optimizer's moments are not kept: a resumed run restarts them.
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

  private final Path dir;
  private final String fingerprint;
  /** The counters as last saved or restored, with the names of their weight files. */
  private Properties saved;

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
    Properties counters = new Properties();
    try (Reader in = Files.newBufferedReader(file)) {
      counters.load(in);
    }
    if (!fingerprint.equals(counters.getProperty("fingerprint"))) {
      deleteAll(dir);
      return State.FRESH;
    }
    saved = counters;
    load(model, Files.readAllBytes(dir.resolve(saved.getProperty("last"))));
    return new State(Integer.parseInt(saved.getProperty("epoch")), Integer.parseInt(saved.getProperty("bestEpoch")),
        Double.parseDouble(saved.getProperty("bestAccuracy")));
  }

  /** The best epoch's weights restored, or null. */
  byte[] bestWeights() throws IOException {
    return saved == null ? null : Files.readAllBytes(dir.resolve(saved.getProperty("best")));
  }

  /**
   * Saves a finished epoch: the model's weights, the best weights when this epoch is the best,
   * then the counters naming both, then removes the files no longer named.
   */
  void save(Model model, State state, byte[] newBestWeights) throws IOException {
    Files.createDirectories(dir);
    String last = "epoch-" + state.epoch() + ".params";
    replace(last, weights(model));
    String best = newBestWeights == null ? saved.getProperty("best") : "best-" + state.epoch() + ".params";
    if (newBestWeights != null) {
      replace(best, newBestWeights);
    }
    Properties counters = new Properties();
    counters.setProperty("fingerprint", fingerprint);
    counters.setProperty("epoch", String.valueOf(state.epoch()));
    counters.setProperty("bestEpoch", String.valueOf(state.bestEpoch()));
    counters.setProperty("bestAccuracy", String.valueOf(state.bestAccuracy()));
    counters.setProperty("last", last);
    counters.setProperty("best", best);
    ByteArrayOutputStream text = new ByteArrayOutputStream();
    try (Writer out = new OutputStreamWriter(text, StandardCharsets.UTF_8)) {
      counters.store(out, "training state of one run");
    }
    replace(STATE, text.toByteArray());
    saved = counters;
    try (Stream<Path> files = Files.list(dir)) {
      for (Path stale : files.filter(f -> f.toString().endsWith(".params")
          && !f.getFileName().toString().equals(last) && !f.getFileName().toString().equals(best)).toList()) {
        Files.delete(stale);
      }
    }
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

  /** Writes under a temporary name of its own (two writers never share one), then moves it in place at once. */
  private void replace(String name, byte[] content) throws IOException {
    Path temporary = Files.createTempFile(dir, name, ".tmp");
    try {
      Files.write(temporary, content);
      Files.move(temporary, dir.resolve(name), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    } finally {
      Files.deleteIfExists(temporary);
    }
  }

  public static byte[] weights(Model model) throws IOException {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    try (DataOutputStream out = new DataOutputStream(bytes)) {
      model.getBlock().saveParameters(out);
    }
    return bytes.toByteArray();
  }

  public static void load(Model model, byte[] weights) throws IOException {
    try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(weights))) {
      if (model.getBlock() instanceof PtSymbolBlock module) {
        // A TorchScript module's loadParameters swaps in a new native module but keeps handing out
        // the old one's parameter arrays (DJL caches them): training would update tensors the
        // forward pass no longer reads. So the model gets a new block instead.
        in.readByte(); // saveParameters' format version
        PtSymbolBlock loaded = JniUtils.loadModule((PtNDManager) model.getNDManager(), in, true, true);
        model.setBlock(loaded);
        module.close();
        return;
      }
      model.getBlock().loadParameters(model.getNDManager(), in);
    } catch (MalformedModelException e) {
      throw new IOException("saved training weights do not fit the model: " + e.getMessage(), e);
    }
  }
}
