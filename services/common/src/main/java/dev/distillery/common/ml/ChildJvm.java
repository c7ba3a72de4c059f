package dev.distillery.common.ml;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * A JVM with this one's java command and classpath, for what must not run in this process:
 * oneDNN reads its settings (ONEDNN_VERBOSE, ISA, fpmath mode) once per process, and a kernel may
 * crash the process it runs in. Its output goes to a file, so a child that hangs cannot block the
 * caller past the timeout; it is destroyed whatever happens.
 */
final class ChildJvm {
  /** How a child ended: its exit code and what it printed (stdout and stderr). */
  record Result(int exitCode, List<String> lines) {
    String output() {
      return String.join("\n", lines);
    }
  }

  private ChildJvm() {}

  /**
   * Runs {@code java <args>} with {@code set} added to this process's environment and {@code unset}
   * removed from it. A small heap: a container's JAVA_TOOL_OPTIONS (MaxRAMPercentage) would size
   * it for a whole service.
   *
   * @throws IOException also when the child did not finish within {@code timeout}
   */
  static Result run(Map<String, String> set, Collection<String> unset, Duration timeout, List<String> args)
      throws IOException, InterruptedException {
    List<String> command = new ArrayList<>(List.of(ProcessHandle.current().info().command().orElse("java"),
        "-Xmx512m", "-cp", System.getProperty("java.class.path")));
    for (String key : List.of("ai.djl.offline", "DJL_CACHE_DIR")) {
      if (System.getProperty(key) != null) {
        command.add("-D" + key + "=" + System.getProperty(key));
      }
    }
    command.addAll(args);
    Path output = Files.createTempFile("distillery-child", ".log");
    Process process = null;
    try {
      ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(output.toFile());
      builder.environment().keySet().removeAll(unset);
      builder.environment().putAll(set);
      process = builder.start();
      if (!process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
        throw new IOException("the child JVM did not finish in " + timeout.toSeconds() + " s: " + args);
      }
      return new Result(process.exitValue(), Files.readAllLines(output, StandardCharsets.UTF_8));
    } finally {
      if (process != null) {
        process.destroyForcibly();
      }
      Files.deleteIfExists(output);
    }
  }
}
