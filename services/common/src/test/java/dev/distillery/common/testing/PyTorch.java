package dev.distillery.common.testing;

import dev.distillery.common.ml.Preprocessing;
import io.vertx.core.json.JsonArray;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;

/**
 * Real PyTorch (Debian's python3-torch 1.13, which .ci/run installs) loading what Distillery
 * wrote, as a user would: the check that an output "loads in PyTorch" is PyTorch loading it.
 */
public final class PyTorch {
  private PyTorch() {}

  /**
   * The logits {@code torch.jit.load(module)} gives in eval mode for the first {@code count}
   * training images of the IDX dataset in {@code datasetDir}, preprocessed by {@code input}.
   */
  public static float[] torchScriptLogits(Path module, Path datasetDir, int count, Preprocessing input)
      throws IOException, InterruptedException {
    Path script = Files.createTempFile("torchscript_logits", ".py");
    try (InputStream in = PyTorch.class.getResourceAsStream("/pytorch/torchscript_logits.py")) {
      Files.write(script, in.readAllBytes());
    }
    List<String> command = new ArrayList<>(List.of(script.toString(), module.toString(), datasetDir.toString(),
        String.valueOf(count), String.valueOf(input.scale()), String.valueOf(input.mean()), String.valueOf(input.std())));
    if (input.shape().length > 0) {
      command.add(Arrays.stream(input.shape()).mapToObj(Long::toString).collect(Collectors.joining(",")));
    }
    try {
      String text = Python.run(command, "PyTorch could not load " + module + " (is python3-torch installed?)");
      return GoldenFixtures.floats(new JsonArray(text.strip()));
    } finally {
      Files.deleteIfExists(script);
    }
  }
}
