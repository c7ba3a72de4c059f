package dev.distillery.teacher;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.distillery.common.JobFailedException;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.Evaluation;
import dev.distillery.common.ml.JobModel;
import dev.distillery.common.ml.ImageDataset;
import dev.distillery.schemas.InputSpec;
import dev.distillery.schemas.ModelFormat;
import dev.distillery.schemas.TeacherSpec;
import dev.distillery.common.testing.GoldenFixtures;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A user's teacher exported from PyTorch 1.13 (golden/torchscript_teacher.py: a traced CNN and a
 * scripted MLP on flat input) gives, through DJL, the logits PyTorch computed for the same images.
 */
class TorchScriptTeacherTest {
  static final Path SUBSET = Path.of("../../datasets/fashion-mnist-subset");
  private static ImageDataset train;

  @BeforeAll
  static void data() throws IOException {
    DjlRuntime.start(1);
    train = Datasets.read(SUBSET, "train");
  }

  static List<JsonObject> cases() throws IOException {
    return GoldenFixtures.cases("torchscript_teacher.json");
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("cases")
  void logitsEqualPyTorchs(JsonObject golden) throws Exception {
    int count = golden.getInteger("count");
    JsonArray expected = golden.getJsonArray("logits");
    float[] actual = new float[count * 10];
    try (JobModel teacher = JobModel.load(JobModel.Source.of(spec(golden, golden.getJsonArray("input_shape").getList())), 10, train.imageShape())) {
      assertThat(teacher.architecture()).isEqualTo(JobModel.TORCHSCRIPT);
      Evaluation.forEachBatch(teacher.model(), train, teacher.input(), 0, count, 16,
          (first, logits, n, classes) -> System.arraycopy(logits, 0, actual, first * classes, logits.length));
    }
    assertThat(actual).hasSize(expected.size());
    for (int i = 0; i < actual.length; i++) {
      assertThat(actual[i]).as("logit %d of %s", i, golden.getString("model"))
          .isCloseTo(expected.getNumber(i).floatValue(), org.assertj.core.data.Offset.offset(1e-5f));
    }
  }

  @Test
  void aShapeThatDoesNotFitTheImagesNamesTheField() throws Exception {
    JsonObject cnn = golden().getJsonArray("cases").getJsonObject(0);
    assertThatThrownBy(() -> JobModel.load(JobModel.Source.of(spec(cnn, List.of(1, 28, 27))), 10, train.imageShape()))
        .isInstanceOf(JobFailedException.class)
        .satisfies(e -> assertThat(((JobFailedException) e).field()).isEqualTo("teacher.input.shape"));
  }

  @Test
  void aFileThatIsNotTorchScriptNamesTheField() throws Exception {
    Path notAModel = Files.createTempFile("not-a-model", ".pt");
    Files.writeString(notAModel, "hello");
    TeacherSpec spec = TeacherSpec.newBuilder().setFormat(ModelFormat.TORCHSCRIPT).setArchitecture(null)
        .setCheckpointUri(notAModel.toUri().toString()).build();
    assertThatThrownBy(() -> JobModel.load(JobModel.Source.of(spec), 10, train.imageShape()))
        .isInstanceOf(JobFailedException.class)
        .satisfies(e -> assertThat(((JobFailedException) e).field()).isEqualTo("teacher.checkpointUri"));
  }

  static TeacherSpec spec(JsonObject golden, List<?> shape) throws IOException {
    try {
      Path model = Path.of(TorchScriptTeacherTest.class.getResource("/golden/" + golden.getString("model")).toURI());
      return TeacherSpec.newBuilder().setFormat(ModelFormat.TORCHSCRIPT).setArchitecture(null)
          .setCheckpointUri(model.toUri().toString())
          .setInput(new InputSpec(shape.stream().map(d -> ((Number) d).intValue()).toList(),
              golden.getDouble("pixel_scale"), golden.getDouble("mean"), golden.getDouble("std")))
          .build();
    } catch (URISyntaxException e) {
      throw new IOException(e);
    }
  }

  static JsonObject golden() throws IOException {
    return GoldenFixtures.read("torchscript_teacher.json");
  }
}
