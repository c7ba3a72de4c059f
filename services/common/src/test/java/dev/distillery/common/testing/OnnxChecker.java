package dev.distillery.common.testing;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** ONNX's own checker (Debian's python3-onnx, which .ci/run installs) on a model Distillery wrote. */
public final class OnnxChecker {
  private OnnxChecker() {}

  /** Runs {@code onnx.checker.check_model} with shape inference ({@code full_check}); throws with its report if it fails. */
  public static void check(Path model) throws IOException, InterruptedException {
    List<String> command = List.of("/usr/bin/python3", "-c",
        "import sys, onnx; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)", model.toString());
    Path output = Files.createTempFile("onnx_checker", ".txt");
    try {
      Process python = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(output.toFile()).start();
      if (!python.waitFor(120, TimeUnit.SECONDS)) {
        python.destroyForcibly();
        throw new IOException("onnx.checker did not finish in 120 s: " + command);
      }
      if (python.exitValue() != 0) {
        throw new AssertionError("onnx.checker refuses " + model + " (is python3-onnx installed?):\n"
            + Files.readString(output, StandardCharsets.UTF_8));
      }
    } finally {
      Files.deleteIfExists(output);
    }
  }
}
