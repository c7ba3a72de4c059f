package dev.distillery.launcher;

import static org.assertj.core.api.Assertions.assertThat;

import ai.djl.Model;
import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.kafka.KafkaTopics;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.Models;
import dev.distillery.kafka.embedded.EmbeddedKafkaBroker;
import dev.distillery.kafka.embedded.EmbeddedKafkaExtension;
import dev.distillery.schemas.DatasetSpec;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * The Python example (examples/python/distillery_client.py, with Debian's python3-confluent-kafka
 * and python3-avro, which .ci/run installs) against the real broker and services, in each wire
 * format: a request it encodes is decoded and answered, and it decodes the answer. Registry mode
 * is {@link RegistryModeTest}'s.
 */
@ExtendWith(EmbeddedKafkaExtension.class)
class PythonClientTest {
  private static final Path CLIENT = Path.of("../../examples/python/distillery_client.py").toAbsolutePath().normalize();
  private static final Path RELEASED =
      Path.of("../../schemas/src/main/resources/dev/distillery/schemas/released").toAbsolutePath().normalize();

  record Run(int status, String output) {}

  @Test
  void aPythonPipelineSubmitsAJobAndReadsItsResult(EmbeddedKafkaBroker broker, @TempDir Path work) throws Exception {
    ArtifactStore store = new ArtifactStore(work.resolve("artifacts"));
    JsonObject request = quantizeTeacher(broker, store);
    try (LocalPipeline pipeline = LocalPipeline.start(keys(broker, store))) {
      Run done = python(broker, work, "quantize.json", request);
      assertThat(done.status()).as(done.output()).isZero();
      assertThat(done.output()).contains("submitted py-", "QUANTIZATION", "DONE: ", "\"kind\": \"ONNX_INT8\"");

      // An invalid request: the failure, decoded in Python, names the field.
      Run refused = python(broker, work, "invalid.json", request.copy()
          .put("student", new JsonObject().put("architecture", "lenet5")).put("stages", new JsonArray().add("DISTILLATION")));
      assertThat(refused.status()).as(refused.output()).isEqualTo(1);
      assertThat(refused.output()).contains("FAILED in TEACHER_INFERENCE (field stages)", "DISTILLATION needs TEACHER_INFERENCE");
    }
  }

  /** A teacher saved in {@code store}, and a request that quantizes it (a few seconds' work). */
  static JsonObject quantizeTeacher(EmbeddedKafkaBroker broker, ArtifactStore store) throws Exception {
    DjlRuntime.start(2);
    KafkaTopics.ensure(broker.bootstrapServers(), 2);
    DatasetSpec data = DatasetSpec.newBuilder().setLocation(PipelineScenario.SUBSET.toString()).build();
    Path teacher;
    try (Model model = Models.create("lenet5", 1.0, 10, Datasets.load(data).train().imageShape(), 3)) {
      teacher = ArtifactStore.localPath(Models.save(model, store, "teachers", "lenet5.params").getUri());
    }
    return new JsonObject()
        .put("teacher", new JsonObject().put("architecture", "lenet5").put("checkpointUri", teacher.toUri().toString()))
        .put("dataset", new JsonObject().put("location", PipelineScenario.SUBSET.toString())
            .put("trainLimit", 500).put("testLimit", 200))
        // Records without a default of their own must be given, even empty: their fields have defaults.
        .put("student", new JsonObject()).put("distillation", new JsonObject()).put("pruning", new JsonObject())
        .put("quantization", new JsonObject().put("calibrationImages", 64))
        .put("stages", new JsonArray().add("QUANTIZATION"));
  }

  static Map<String, String> keys(EmbeddedKafkaBroker broker, ArtifactStore store) {
    return new HashMap<>(LocalPipeline.keys(broker.bootstrapServers(), store.root(), 2,
        List.of(store.root().resolve("teachers")), List.of(PipelineScenario.SUBSET.getParent())));
  }

  static Run python(EmbeddedKafkaBroker broker, Path work, String name, JsonObject request, String... options)
      throws Exception {
    Path file = work.resolve(name);
    Files.writeString(file, request.encode());
    Path log = work.resolve(name + ".log");
    List<String> command = new ArrayList<>(List.of("/usr/bin/python3", CLIENT.toString(), "--bootstrap-servers",
        broker.bootstrapServers(), "--schemas", RELEASED.toString(), "--timeout", "240"));
    command.addAll(List.of(options));
    command.add(file.toString());
    Process process = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
    if (!process.waitFor(5, TimeUnit.MINUTES)) {
      process.destroyForcibly();
      throw new AssertionError("the Python client did not finish in 5 minutes:\n" + Files.readString(log));
    }
    String output = Files.readString(log, StandardCharsets.UTF_8);
    System.out.println(output);
    return new Run(process.exitValue(), output);
  }
}
