package dev.distillery.schemas.json;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import com.fasterxml.jackson.databind.JsonNode;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.ModelFormat;
import dev.distillery.schemas.PruningMethod;
import dev.distillery.schemas.Stage;
import org.junit.jupiter.api.Test;

/** Requests as people write them in JSON: defaults fill in, unions are plain, errors name the field. */
class PlainJsonTest {
  private static final String MINIMAL = """
      {"jobId": "j1",
       "teacher": {"architecture": "convnet", "checkpointUri": "file:///models/teacher.params"},
       "dataset": {"location": "/data/fashion-mnist"},
       "student": {"architecture": "lenet5"},
       "distillation": {"epochs": 5},
       "pruning": {"method": "LN_STRUCTURED", "layerSparsity": {"01Conv2d_weight": 0.25}},
       "stages": ["TEACHER_INFERENCE", "DISTILLATION", "PRUNING"],
       "outputUri": null}""";

  @Test
  void readsAPlainRequestWithDefaultsAndWritesItBack() throws Exception {
    CompressionRequest request = read(MINIMAL);
    assertThat(request.getTeacher().getFormat()).isEqualTo(ModelFormat.BUILT_IN);
    assertThat(request.getTeacher().getWidth()).isEqualTo(1.0);
    assertThat(request.getDistillation().getEpochs()).isEqualTo(5);
    assertThat(request.getDistillation().getTemperature()).isEqualTo(4.0);
    assertThat(request.getPruning().getMethod()).isEqualTo(PruningMethod.LN_STRUCTURED);
    assertThat(request.getPruning().getLayerSparsity()).containsEntry("01Conv2d_weight", 0.25);
    assertThat(request.getStages()).containsExactly(Stage.TEACHER_INFERENCE, Stage.DISTILLATION, Stage.PRUNING);
    assertThat(request.getOutputUri()).isNull();

    JsonNode written = PlainJson.write(request);
    assertThat(written.get("teacher").get("architecture").asText()).isEqualTo("convnet"); // not {"string": ...}
    assertThat(written.get("outputUri").isNull()).isTrue();
    assertThat(PlainJson.read(written, CompressionRequest.class)).isEqualTo(request);
  }

  @Test
  void namesTheFieldAtFault() {
    assertThatThrownBy(() -> read(MINIMAL.replace("\"epochs\": 5", "\"epochs\": \"five\"")))
        .isInstanceOf(PlainJson.InvalidJsonException.class)
        .hasMessage("distillation.epochs: must be a whole number, was \"five\"");
    assertThatThrownBy(() -> read(MINIMAL.replace("\"DISTILLATION\", \"PRUNING\"]", "\"DISTILLATION\", \"PRUNE\"]")))
        .hasMessageStartingWith("stages[2]: must be one of [UNSUPPORTED,");
    assertThatThrownBy(() -> read(MINIMAL.replace("\"student\":", "\"studnet\":")))
        .hasMessageStartingWith("studnet: unknown field");
    assertThatThrownBy(() -> read(MINIMAL.replace("\"checkpointUri\": \"file:///models/teacher.params\"", "\"x\": 1")))
        .hasMessageStartingWith("teacher.x: unknown field");
    assertThatThrownBy(() -> read("{\"jobId\": \"j1\"}")).hasMessage("teacher: is required");
  }

  @Test
  void writesNonFiniteNumbersAsNull() {
    var progress = new dev.distillery.schemas.JobProgress("j", Stage.DISTILLATION, 1L, 2L, "epoch 1",
        java.util.Map.of("validationAccuracy", Double.NaN, "loss", 0.5), 0.5, null, 7L);
    JsonNode json = PlainJson.write(progress);
    assertThat(json.get("metrics").get("validationAccuracy").isNull()).isTrue();
    assertThat(json.get("metrics").get("loss").asDouble()).isEqualTo(0.5);
  }

  private static CompressionRequest read(String json) throws Exception {
    return PlainJson.read(PlainJson.MAPPER.readTree(json), CompressionRequest.class);
  }
}
