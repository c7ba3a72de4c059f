package dev.distillery.launcher;

import static org.assertj.core.api.Assertions.assertThat;

import dev.distillery.cli.JobWatcher;
import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.kafka.DeadLetters;
import dev.distillery.common.kafka.KafkaTopics;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.TrainingLoop;
import dev.distillery.kafka.embedded.EmbeddedKafkaBroker;
import dev.distillery.kafka.embedded.EmbeddedKafkaExtension;
import dev.distillery.schemas.ArtifactRef;
import dev.distillery.schemas.CheckpointReady;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.DatasetFormat;
import dev.distillery.schemas.DatasetSpec;
import dev.distillery.schemas.DistillationSettings;
import dev.distillery.schemas.InputSpec;
import dev.distillery.schemas.JobContext;
import dev.distillery.schemas.JobFailure;
import dev.distillery.schemas.JobProgress;
import dev.distillery.schemas.ModelFormat;
import dev.distillery.schemas.PruningMethod;
import dev.distillery.schemas.PruningSettings;
import dev.distillery.schemas.QuantizationSettings;
import dev.distillery.schemas.SoftLabelBatch;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.StudentSpec;
import dev.distillery.schemas.TeacherSpec;
import dev.distillery.schemas.json.PlainJson;
import dev.distillery.schemas.kafka.Topic;
import dev.distillery.schemas.kafka.Topics;
import java.io.ByteArrayOutputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.EncoderFactory;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * Hostile and careless input against the real broker and services, after a good job has
 * finished: raw bytes and forged records on every input topic, every request field out of range,
 * paths outside the roots, a reused job id, oversized requests, and abuse of the job API. Each
 * case must be answered (a failure naming the field, a dead letter with the reason, or a 4xx);
 * afterwards nothing exists outside the roots, the first job's result is the only one under its
 * id, and the services are healthy and finish another good job.
 */
@ExtendWith(EmbeddedKafkaExtension.class)
class BadInputSuiteTest {
  private static final String TOKEN = "suite-token-" + UUID.randomUUID();
  private static final Duration ANSWER = Duration.ofMinutes(2);

  /** A request sent to the requests topic and the field its failure must name. */
  private record RequestCase(CompressionRequest request, String field) {}

  @Test
  void everyBadInputIsAnsweredAndHarmsNothing(EmbeddedKafkaBroker broker, @TempDir Path work,
      @TempDir Path elsewhere) throws Exception {
    DjlRuntime.start(2);
    String bootstrap = broker.bootstrapServers();
    KafkaTopics.ensure(bootstrap, 2);
    Path models = Files.createDirectories(work.resolve("models"));
    Path artifacts = work.resolve("artifacts");
    DatasetSpec data = DatasetSpec.newBuilder().setLocation(PipelineScenario.SUBSET.toString()).setTrainLimit(600)
        .setTestLimit(300).build();
    Datasets.TrainTest sets = Datasets.load(data);
    Path teacher = TeacherTraining.train("convnet", 0.5, sets.train(), sets.test(),
        TrainingLoop.Plan.adam(1, 64, 0.002, 1), new ArtifactStore(models), "teacher.params", line -> {}).checkpoint();
    // Outside every root: a real model (so "exists" and "does not" can be compared), and links to it.
    Path secret = Files.copy(teacher, elsewhere.resolve("secret.params"));
    Path teachers = teacher.getParent();
    Files.createSymbolicLink(teachers.resolve("link.params"), secret);
    Files.createSymbolicLink(teachers.resolve("linked-dir"), elsewhere);
    Set<Path> elsewhereBefore = listing(elsewhere);
    Path outsideOutput = Path.of("/tmp", "distillery-suite-" + UUID.randomUUID());

    String suffix = UUID.randomUUID().toString().substring(0, 8);
    CompressionRequest good = CompressionRequest.newBuilder(DemoMain.request("first-" + suffix, teacher, data))
        .setTeacher(TeacherSpec.newBuilder().setArchitecture("convnet").setWidth(0.5)
            .setCheckpointUri(teacher.toUri().toString()).build())
        .setDistillation(DistillationSettings.newBuilder().setEpochs(1).setBatchSize(64).setLearningRate(0.002)
            .setSeed(42L).build())
        .setPruning(PruningSettings.newBuilder().setMethod(PruningMethod.L1_UNSTRUCTURED).setTargetSparsity(0.5)
            .setFineTuneEpochs(0).build())
        .build();

    Map<String, String> keys = LocalPipeline.keys(bootstrap, artifacts, 2, List.of(teachers),
        List.of(PipelineScenario.SUBSET.getParent()));
    keys.put("api.tokens", TOKEN);
    try (LocalPipeline pipeline = LocalPipeline.start(keys);
        JobWatcher watcher = new JobWatcher(bootstrap);
        KafkaProducer<String, byte[]> producer = PipelineScenario.producer(bootstrap, new ArtifactStore(artifacts))) {
      send(producer, good);
      JobWatcher.Outcome first = watcher.await(good.getJobId(), Duration.ofMinutes(5), p -> {});
      assertThat(first.failure()).as("the first good job").isNull();

      int answered = 0;
      Map<String, String> reasons = new HashMap<>();
      List<RequestCase> cases = requestCases(good, suffix, secret, elsewhere, teachers, outsideOutput);
      for (RequestCase c : cases) {
        send(producer, c.request());
      }
      for (RequestCase c : cases) {
        JobFailure failure = watcher.await(c.request().getJobId(), ANSWER, p -> {}).failure();
        assertThat(failure).as(c.request().getJobId()).isNotNull();
        assertThat(failure.getField()).as(c.request().getJobId() + ": " + failure.getReason()).isEqualTo(c.field());
        if (c.field().contains("Uri") || c.field().equals("dataset.location")) {
          // The answer says nothing about whether the path exists, and does not echo it.
          assertThat(failure.getReason()).as(c.request().getJobId())
              .doesNotContain("no file", "no directory", secret.toString(), elsewhere.toString());
          reasons.put(c.request().getTeacher().getCheckpointUri(), failure.getReason().replace(c.request().getJobId(), ""));
        }
        answered++;
      }
      assertThat(reasons.get(secret.toString())).contains("outside the allowed roots")
          .isEqualTo(reasons.get(elsewhere.resolve("missing.params").toString()));

      // The first job's id again, with another request; then the first request's record again.
      CompressionRequest reused = CompressionRequest.newBuilder(good).setPruning(
          PruningSettings.newBuilder(good.getPruning()).setTargetSparsity(0.9).build()).build();
      send(producer, reused);
      JobFailure refusal = awaitRecord(bootstrap, Topics.FAILURES, good.getJobId(), JobFailure::getRefusedRequest);
      assertThat(refusal.getField()).isEqualTo("jobId");
      answered++;
      send(producer, good); // an identical re-delivery: a duplicate, not a second job
      answered++;

      // Raw bytes and forged records on every input topic.
      Map<String, Topic<?>> dead = new LinkedHashMap<>();
      for (Topic<?> topic : List.of(Topics.REQUESTS, Topics.TEACHER_SHARDS, Topics.SOFT_LABELS, Topics.CHECKPOINTS)) {
        Map<String, byte[]> raw = Map.of(
            "text", "{\"jobId\": \"not avro\"}".getBytes(StandardCharsets.UTF_8),
            "empty", new byte[0],
            "claims-a-gigabyte", claimsAGigabyte(topic),
            "wrong-record", Topics.PROGRESS.valueSerde().serializer().serialize("", JobProgress.newBuilder()
                .setJobId("x").setStage(Stage.PRUNING).setStep(1).setTotalSteps(1).setMessage("m").setTimestampMs(1L)
                .build()));
        for (Map.Entry<String, byte[]> entry : raw.entrySet()) {
          String key = "raw-" + topic.name() + "-" + entry.getKey() + "-" + suffix;
          producer.send(new ProducerRecord<>(topic.name(), key, entry.getValue())).get(30, TimeUnit.SECONDS);
          dead.put(key, topic);
        }
      }
      for (Map.Entry<String, Topic<?>> entry : dead.entrySet()) {
        ConsumerRecord<String, byte[]> letter = awaitDeadLetter(bootstrap, entry.getKey());
        assertThat(PipelineScenario.header(letter, DeadLetters.SOURCE_TOPIC)).isEqualTo(entry.getValue().name());
        assertThat(PipelineScenario.header(letter, DeadLetters.REASON)).as(entry.getKey()).isNotBlank();
        answered++;
      }
      // Well-formed records that lie: a soft-label batch claiming 2^31 samples of 256 classes, and a
      // checkpoint event pointing the pruner at a file outside the roots.
      JobContext context = JobContext.newBuilder().setRequest(good).build();
      String hugeLabels = "forged-labels-" + suffix;
      producer.send(new ProducerRecord<>(Topics.SOFT_LABELS.name(), hugeLabels, Topics.SOFT_LABELS.valueSerde()
          .serializer().serialize("", SoftLabelBatch.newBuilder().setJobId(hugeLabels).setContext(context)
              .setBatchIndex(0).setBatchCount(1).setTotalSamples(Integer.MAX_VALUE).setFirstSample(0)
              .setSampleCount(1).setNumClasses(256).setTemperature(4.0).setScaledLogits(ByteBuffer.allocate(8))
              .build()))).get(30, TimeUnit.SECONDS);
      assertThat(watcher.await(hugeLabels, ANSWER, p -> {}).failure().getReason()).contains("at most 256 classes");
      answered++;
      String forgedCheckpoint = "forged-checkpoint-" + suffix;
      producer.send(new ProducerRecord<>(Topics.CHECKPOINTS.name(), forgedCheckpoint, Topics.CHECKPOINTS.valueSerde()
          .serializer().serialize("", CheckpointReady.newBuilder().setJobId(forgedCheckpoint)
              .setProducedBy(Stage.DISTILLATION).setContext(context).setArchitecture("convnet").setWidth(0.5)
              .setCheckpoint(new ArtifactRef(secret.toUri().toString(), ArtifactStore.sha256Of(secret),
                  Files.size(secret))).build()))).get(30, TimeUnit.SECONDS);
      assertThat(watcher.await(forgedCheckpoint, ANSWER, p -> {}).failure().getReason())
          .contains("outside the allowed roots");
      answered++;

      answered += httpAbuse(pipeline.dashboardPort(), good, teachers, secret);
      System.out.printf("bad inputs answered: %d%n", answered);
      assertThat(answered).as("bad inputs answered").isGreaterThanOrEqualTo(40);

      // Nothing outside the roots, the first result the only one, and the services still work.
      assertThat(outsideOutput).doesNotExist();
      assertThat(listing(elsewhere)).isEqualTo(elsewhereBefore);
      CompressionRequest last = CompressionRequest.newBuilder(good).setJobId("last-" + suffix).build();
      send(producer, last);
      assertThat(watcher.await(last.getJobId(), Duration.ofMinutes(5), p -> {}).failure()).as("the last good job").isNull();
      assertThat(records(bootstrap, Topics.RESULTS, good.getJobId())).as("results of the first job").hasSize(1);
      assertThat(records(bootstrap, Topics.FAILURES, good.getJobId())).as("failures under the first id")
          .singleElement().matches(JobFailure::getRefusedRequest);
      for (int port : new int[] {pipeline.managementPort(), pipeline.dashboardPort()}) {
        assertThat(get(port, "/health", Map.of()).statusCode()).isEqualTo(200);
      }
      assertThat(get(pipeline.dashboardPort(), "/api/jobs/" + good.getJobId(), Map.of("Authorization", "Bearer " + TOKEN))
          .body()).contains("\"state\":\"DONE\"", "\"targetSparsity\":0.5");
    }
  }

  /**
   * Keyed by job id, partitioned as Kafka's clients partition: the job-status view folds a job's
   * request with its other events only when they share a partition.
   */
  private static void send(KafkaProducer<String, byte[]> producer, CompressionRequest request) throws Exception {
    producer.send(new ProducerRecord<>(Topics.REQUESTS.name(), request.getJobId(),
        Topics.REQUESTS.valueSerde().serializer().serialize("", request))).get(30, TimeUnit.SECONDS);
  }

  /** One request per bad field; each must fail naming that field, before any compute. */
  private static List<RequestCase> requestCases(CompressionRequest good, String suffix, Path secret, Path elsewhere,
      Path teachers, Path outsideOutput) {
    List<RequestCase> cases = new ArrayList<>();
    int[] n = {0};
    java.util.function.BiConsumer<String, UnaryOperator<CompressionRequest.Builder>> bad = (field, change) ->
        cases.add(new RequestCase(change.apply(CompressionRequest.newBuilder(good)
            .setJobId("bad-" + n[0]++ + "-" + suffix)).build(), field));
    TeacherSpec t = good.getTeacher();
    DatasetSpec d = good.getDataset();
    DistillationSettings s = good.getDistillation();
    PruningSettings p = good.getPruning();
    bad.accept("jobId", r -> r.setJobId("../../etc/" + suffix));
    bad.accept("jobId", r -> r.setJobId("training")); // the trainer's state directory
    bad.accept("teacher.format", r -> r.setTeacher(TeacherSpec.newBuilder(t).setFormat(ModelFormat.UNSUPPORTED).build()));
    bad.accept("teacher.architecture", r -> r.setTeacher(TeacherSpec.newBuilder(t).setArchitecture("resnet-9000").build()));
    bad.accept("teacher.width", r -> r.setTeacher(TeacherSpec.newBuilder(t).setWidth(0.0).build()));
    bad.accept("teacher.input.shape", r -> r.setTeacher(TeacherSpec.newBuilder(t)
        .setInput(InputSpec.newBuilder().setShape(List.of(1, 100_000, 28)).build()).build()));
    bad.accept("teacher.input", r -> r.setTeacher(TeacherSpec.newBuilder(t)
        .setInput(InputSpec.newBuilder().setStd(0.0).build()).build()));
    bad.accept("dataset.format", r -> r.setDataset(DatasetSpec.newBuilder(d).setFormat(DatasetFormat.UNSUPPORTED).build()));
    bad.accept("dataset.trainLimit", r -> r.setDataset(DatasetSpec.newBuilder(d).setTrainLimit(-1).build()));
    bad.accept("dataset.testLimit", r -> r.setDataset(DatasetSpec.newBuilder(d).setTestLimit(-5).build()));
    bad.accept("dataset.classes", r -> r.setDataset(DatasetSpec.newBuilder(d).setClasses(List.of(3, 3)).build()));
    bad.accept("dataset.classes", r -> r.setDataset(DatasetSpec.newBuilder(d).setClasses(List.of(99)).build()));
    bad.accept("student.architecture", r -> r.setStudent(StudentSpec.newBuilder().setArchitecture("gpt-5").setWidth(1.0).build()));
    bad.accept("student.width", r -> r.setStudent(StudentSpec.newBuilder().setArchitecture("lenet5").setWidth(1e9).build()));
    bad.accept("distillation.temperature", r -> r.setDistillation(DistillationSettings.newBuilder(s).setTemperature(0.0).build()));
    bad.accept("distillation.alpha", r -> r.setDistillation(DistillationSettings.newBuilder(s).setAlpha(Double.NaN).build()));
    bad.accept("distillation.epochs", r -> r.setDistillation(DistillationSettings.newBuilder(s).setEpochs(1_000_000).build()));
    bad.accept("distillation.batchSize", r -> r.setDistillation(DistillationSettings.newBuilder(s).setBatchSize(0).build()));
    bad.accept("distillation.learningRate", r -> r.setDistillation(DistillationSettings.newBuilder(s)
        .setLearningRate(Double.POSITIVE_INFINITY).build()));
    bad.accept("distillation.momentum", r -> r.setDistillation(DistillationSettings.newBuilder(s).setMomentum(2.0).build()));
    bad.accept("distillation.weightDecay", r -> r.setDistillation(DistillationSettings.newBuilder(s).setWeightDecay(-1.0).build()));
    bad.accept("distillation.stepEpochs", r -> r.setDistillation(DistillationSettings.newBuilder(s).setStepEpochs(0).build()));
    bad.accept("distillation.validationSplit", r -> r.setDistillation(DistillationSettings.newBuilder(s).setValidationSplit(0.9).build()));
    bad.accept("distillation.labelSmoothing", r -> r.setDistillation(DistillationSettings.newBuilder(s).setLabelSmoothing(-0.1).build()));
    bad.accept("pruning.targetSparsity", r -> r.setPruning(PruningSettings.newBuilder(p).setTargetSparsity(1.5).build()));
    bad.accept("pruning.maxAccuracyLoss", r -> r.setPruning(PruningSettings.newBuilder(p).setMaxAccuracyLoss(-1.0).build()));
    bad.accept("pruning.fineTuneEpochs", r -> r.setPruning(PruningSettings.newBuilder(p).setFineTuneEpochs(-1).build()));
    bad.accept("pruning.norm", r -> r.setPruning(PruningSettings.newBuilder(p).setNorm(0).build()));
    bad.accept("pruning.steps", r -> r.setPruning(PruningSettings.newBuilder(p).setSteps(1000).build()));
    bad.accept("pruning.initialSparsity", r -> r.setPruning(PruningSettings.newBuilder(p).setInitialSparsity(0.9).build()));
    bad.accept("pruning.layerSparsity", r -> r.setPruning(PruningSettings.newBuilder(p)
        .setLayerSparsity(Map.of("conv9.weight", 0.5)).build())); // a layer lenet5 lacks: found by the first stage
    bad.accept("pruning.layerSparsity", r -> r.setPruning(PruningSettings.newBuilder(p)
        .setLayerSparsity(Map.of("01Conv2d_weight", 7.0)).build()));
    bad.accept("pruning.skipLayers", r -> r.setPruning(PruningSettings.newBuilder(p).setSkipLayers(List.of("")).build()));
    bad.accept("stages", r -> r.setStages(List.of()));
    bad.accept("stages", r -> r.setStages(List.of(Stage.PRUNING, Stage.PRUNING)));
    bad.accept("stages", r -> r.setStages(List.of(Stage.DISTILLATION)));
    // Oversized: 3,000 layers named, and a request of more than 64 KB.
    Map<String, Double> many = Stream.iterate(0, i -> i + 1).limit(3000)
        .collect(Collectors.toMap(i -> "layer" + i + ".weight", i -> 0.5));
    bad.accept("(the request)", r -> r.setPruning(PruningSettings.newBuilder(p).setMethod(PruningMethod.L1_UNSTRUCTURED)
        .setLayerSparsity(many).build()));
    bad.accept("pruning.skipLayers", r -> r.setPruning(PruningSettings.newBuilder(p)
        .setSkipLayers(List.of("x".repeat(300))).build()));
    // Paths outside the roots: absolute (existing and not), .., a symbolic link, a linked
    // directory, other schemes, a host, a relative path; and outputs outside the artifact roots.
    for (String uri : List.of(secret.toString(), elsewhere.resolve("missing.params").toString(), secret.toUri().toString(),
        teachers + "/..".repeat(teachers.getNameCount()) + secret, teachers.resolve("link.params").toString(),
        teachers.resolve("linked-dir/secret.params").toString(), "http://example.com/teacher.params",
        "file://fileserver/share/teacher.params", "models/teacher.params")) {
      String field = "teacher.checkpointUri";
      bad.accept(field, r -> r.setTeacher(TeacherSpec.newBuilder(t).setCheckpointUri(uri).build()));
    }
    bad.accept("dataset.location", r -> r.setDataset(DatasetSpec.newBuilder(d)
        .setLocation(PipelineScenario.SUBSET + "/../../services").build()));
    bad.accept("dataset.location", r -> r.setDataset(DatasetSpec.newBuilder(d).setLocation("/etc").build()));
    bad.accept("student.checkpointUri", r -> r.setStudent(StudentSpec.newBuilder().setFormat(ModelFormat.TORCHSCRIPT)
        .setArchitecture("custom").setWidth(1.0).setCheckpointUri(secret.toUri().toString()).build()));
    // int8 quantization of a module whose layers Java cannot see; no calibration images.
    bad.accept("teacher.format", r -> r.setTeacher(TeacherSpec.newBuilder(t).setFormat(ModelFormat.TORCHSCRIPT).build())
        .setStages(List.of(Stage.PRUNING, Stage.QUANTIZATION)));
    bad.accept("quantization.calibrationImages", r -> r.setQuantization(new QuantizationSettings(0))
        .setStages(List.of(Stage.TEACHER_INFERENCE, Stage.DISTILLATION, Stage.QUANTIZATION)));
    bad.accept("outputUri", r -> r.setOutputUri(outsideOutput.toUri().toString()));
    bad.accept("outputUri", r -> r.setOutputUri(teachers.toString()));
    return cases;
  }

  /** HTTP abuse of the job API; returns the number of cases. */
  private static int httpAbuse(int port, CompressionRequest good, Path teachers, Path secret) throws Exception {
    String json = PlainJson.write(CompressionRequest.newBuilder(good).setJobId("http-" + UUID.randomUUID()).build())
        .toString();
    Map<String, String> token = Map.of("Authorization", "Bearer " + TOKEN);
    Map<String, String> asJson = Map.of("Authorization", "Bearer " + TOKEN, "Content-Type", "application/json");
    record HttpCase(String method, String path, Map<String, String> headers, String body, int status) {}
    Map<String, String> withOrigin = new HashMap<>(asJson);
    withOrigin.put("Origin", "https://evil.example");
    String outside = json.replace(good.getTeacher().getCheckpointUri(), secret.toUri().toString());
    String reusedId = PlainJson.write(good).toString();
    List<HttpCase> cases = List.of(
        new HttpCase("POST", "/api/jobs", Map.of("Content-Type", "application/json"), json, 401),
        new HttpCase("POST", "/api/jobs", Map.of("Content-Type", "application/json", "Authorization", "Bearer wrong"), json, 401),
        new HttpCase("GET", "/api/jobs", Map.of(), null, 401),
        new HttpCase("GET", "/api/events", Map.of("Authorization", "Bearer nope"), null, 401),
        new HttpCase("POST", "/api/jobs", Map.of("Authorization", "Bearer " + TOKEN, "Content-Type", "text/plain"), json, 415),
        new HttpCase("POST", "/api/jobs", withOrigin, json, 403),
        new HttpCase("GET", "/api/jobs", Map.of("Authorization", "Bearer " + TOKEN, "Origin", "https://evil.example"), null, 403),
        new HttpCase("POST", "/api/jobs", asJson, "{\"pad\": \"" + "x".repeat(2 << 20) + "\"}", 413),
        new HttpCase("POST", "/api/jobs", asJson, "[1, 2", 400),
        new HttpCase("POST", "/api/jobs", asJson, outside, 400),
        new HttpCase("POST", "/api/jobs", asJson, reusedId, 409));
    HttpClient client = HttpClient.newHttpClient();
    for (HttpCase c : cases) {
      HttpRequest.Builder request = HttpRequest.newBuilder(URI.create("http://localhost:" + port + c.path()))
          .timeout(Duration.ofSeconds(30))
          .method(c.method(), c.body() == null ? HttpRequest.BodyPublishers.noBody()
              : HttpRequest.BodyPublishers.ofString(c.body()));
      c.headers().forEach(request::header);
      HttpResponse<String> response = client.send(request.build(), HttpResponse.BodyHandlers.ofString());
      assertThat(response.statusCode()).as(c.method() + " " + c.path() + " " + c.headers().keySet() + ": "
          + response.body()).isEqualTo(c.status());
      if (c.body() == outside) {
        assertThat(response.body()).contains("teacher.checkpointUri", "outside the allowed roots")
            .doesNotContain(secret.toString());
      }
    }
    return cases.size();
  }

  /** A single-object header of {@code topic}'s record type, then a string claiming 2^30 bytes. */
  private static byte[] claimsAGigabyte(Topic<?> topic) throws Exception {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    BinaryEncoder encoder = EncoderFactory.get().binaryEncoder(out, null);
    encoder.writeLong(1L << 30);
    encoder.flush();
    org.apache.avro.Schema schema = org.apache.avro.specific.SpecificData.get()
        .getSchema(((dev.distillery.schemas.kafka.AvroSerde<?>) topic.valueSerde()).type());
    return ByteBuffer.allocate(10 + out.size()).order(ByteOrder.LITTLE_ENDIAN).put((byte) 0xC3).put((byte) 0x01)
        .putLong(SchemaNormalization.parsingFingerprint64(schema)).put(out.toByteArray()).array();
  }

  private static Set<Path> listing(Path dir) throws Exception {
    try (Stream<Path> paths = Files.walk(dir)) {
      return paths.collect(Collectors.toSet());
    }
  }

  private static HttpResponse<String> get(int port, String path, Map<String, String> headers) throws Exception {
    HttpRequest.Builder request = HttpRequest.newBuilder(URI.create("http://localhost:" + port + path))
        .timeout(Duration.ofSeconds(30));
    headers.forEach(request::header);
    return HttpClient.newHttpClient().send(request.build(), HttpResponse.BodyHandlers.ofString());
  }

  /** Every record of {@code topic} under {@code key}, from the beginning to the end as it is now. */
  private static <V> List<V> records(String bootstrap, Topic<V> topic, String key) {
    List<V> found = new ArrayList<>();
    try (KafkaConsumer<String, byte[]> consumer = PipelineScenario.fromBeginning(bootstrap, topic.name())) {
      Set<TopicPartition> partitions = consumer.assignment();
      Map<TopicPartition, Long> end = consumer.endOffsets(partitions);
      while (partitions.stream().anyMatch(p -> consumer.position(p) < end.get(p))) {
        for (ConsumerRecord<String, byte[]> record : consumer.poll(Duration.ofMillis(200))) {
          if (key.equals(record.key())) {
            found.add(topic.valueSerde().deserializer().deserialize(record.topic(), record.value()));
          }
        }
      }
    }
    return found;
  }

  private static <V> V awaitRecord(String bootstrap, Topic<V> topic, String key, java.util.function.Predicate<V> match) {
    ConsumerRecord<String, byte[]> record = PipelineScenario.awaitRecord(bootstrap, topic.name(), key,
        r -> match.test(topic.valueSerde().deserializer().deserialize(r.topic(), r.value())), ANSWER);
    return topic.valueSerde().deserializer().deserialize(record.topic(), record.value());
  }

  private static ConsumerRecord<String, byte[]> awaitDeadLetter(String bootstrap, String key) {
    return PipelineScenario.awaitRecord(bootstrap, Topics.DEAD_LETTERS.name(), key, record -> true, ANSWER);
  }

}
