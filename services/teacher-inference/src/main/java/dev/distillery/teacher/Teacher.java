package dev.distillery.teacher;

import ai.djl.MalformedModelException;
import ai.djl.Model;
import ai.djl.ndarray.types.Shape;
import dev.distillery.common.JobFailedException;
import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.ml.Models;
import dev.distillery.common.ml.Preprocessing;
import dev.distillery.schemas.ModelFormat;
import dev.distillery.schemas.TeacherSpec;
import java.io.IOException;
import java.nio.file.Path;

/**
 * A loaded teacher: a built-in architecture with its weights, or a user's TorchScript module
 * exported from PyTorch, with the preprocessing its input needs.
 *
 * @param model the model, closed with this teacher
 * @param input how dataset images become its input
 * @param architecture the built-in architecture's name, or {@code torchscript}
 */
record Teacher(Model model, Preprocessing input, String architecture) implements AutoCloseable {
  static final String TORCHSCRIPT = "torchscript";

  static Teacher load(TeacherSpec spec, int classes, Shape imageShape) throws JobFailedException {
    Path path = ArtifactStore.localPath(spec.getCheckpointUri());
    if (spec.getFormat() == ModelFormat.TORCHSCRIPT) {
      Model model = Model.newInstance("teacher", "PyTorch");
      try {
        model.load(path);
      } catch (IOException | MalformedModelException | RuntimeException e) {
        model.close();
        throw new JobFailedException("teacher.checkpointUri", "cannot load TorchScript module " + path + ": " + e.getMessage(), e);
      }
      Preprocessing input = Preprocessing.of(spec.getInput());
      long values = 1;
      for (long d : input.shape()) {
        values *= d;
      }
      if (input.shape().length > 0 && values != imageShape.size()) {
        model.close();
        throw new JobFailedException("teacher.input.shape", "shape " + spec.getInput().getShape() + " holds "
            + values + " values, the dataset's images have " + imageShape.size());
      }
      return new Teacher(model, input, TORCHSCRIPT);
    }
    try {
      return new Teacher(Models.load(spec.getArchitecture(), spec.getWidth(), classes, imageShape, path),
          Preprocessing.BUILT_IN, spec.getArchitecture());
    } catch (IOException e) {
      throw new JobFailedException("teacher.checkpointUri", e.getMessage(), e);
    }
  }

  @Override
  public void close() {
    model.close();
  }
}
