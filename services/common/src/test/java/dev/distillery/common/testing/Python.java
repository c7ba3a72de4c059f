package dev.distillery.common.testing;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Debian's Python 3 (with python3-torch and python3-onnx, which .ci/run installs), run as a user would. */
final class Python {
  private static final String PYTHON = "/usr/bin/python3";

  private Python() {}

  /**
   * Runs {@code python3 args...} and returns what it printed (standard output and error).
   *
   * @param failure what a failure means, for the exception, followed by what Python printed
   */
  static String run(List<String> args, String failure) throws IOException, InterruptedException {
    List<String> command = new ArrayList<>(List.of(PYTHON));
    command.addAll(args);
    Path output = Files.createTempFile("python", ".txt");
    try {
      Process python = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(output.toFile()).start();
      if (!python.waitFor(120, TimeUnit.SECONDS)) {
        python.destroyForcibly();
        throw new IOException("Python did not finish in 120 s: " + command);
      }
      String text = Files.readString(output, StandardCharsets.UTF_8);
      if (python.exitValue() != 0) {
        throw new IOException(failure + ":\n" + text);
      }
      return text;
    } finally {
      Files.deleteIfExists(output);
    }
  }
}
