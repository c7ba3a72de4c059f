package dev.distillery.common.testing;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

/** ONNX's own checker (Debian's python3-onnx, which .ci/run installs) on a model Distillery wrote. */
public final class OnnxChecker {
  private OnnxChecker() {}

  /** Runs {@code onnx.checker.check_model} with shape inference ({@code full_check}); throws with its report if it fails. */
  public static void check(Path model) throws IOException, InterruptedException {
    Python.run(List.of("-c", "import sys, onnx; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)",
        model.toString()), "onnx.checker refuses " + model + " (is python3-onnx installed?)");
  }
}
