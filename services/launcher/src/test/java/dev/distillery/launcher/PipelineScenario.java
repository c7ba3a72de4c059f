package dev.distillery.launcher;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import ai.djl.Model;
import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.config.ServiceConfig;
import dev.distillery.common.kafka.DeadLetters;
import dev.distillery.cli.JobWatcher;
import dev.distillery.common.kafka.KafkaClients;
import dev.distillery.common.kafka.KafkaTopics;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.Evaluation;
import dev.distillery.common.ml.Models;
import dev.distillery.common.ml.TrainingLoop;
import dev.distillery.pruner.L1Unstructured;
import dev.distillery.schemas.ArtifactKind;
import dev.distillery.schemas.ModelArtifact;
import dev.distillery.schemas.QuantizationReport;
import dev.distillery.schemas.QuantizationSettings;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.DatasetSpec;
import dev.distillery.schemas.DistillationSettings;
import dev.distillery.schemas.JobProgress;
import dev.distillery.schemas.JobResult;
import dev.distillery.schemas.LayerSparsity;
import dev.distillery.schemas.OptimizerKind;
import dev.distillery.schemas.PruningMethod;
import dev.distillery.schemas.PruningReport;
import dev.distillery.schemas.PruningSettings;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.StudentSpec;
import dev.distillery.schemas.TeacherSpec;
import dev.distillery.schemas.TransferSettings;
import dev.distillery.schemas.kafka.Topics;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import dev.distillery.common.testing.OnnxChecker;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * One real job through a real broker and real libtorch, with the bad inputs that must not stop
 * the services: a malformed record and an invalid request, sent ahead of the good one.
 */
final class PipelineScenario {
  static final Path SUBSET = Path.of("../../datasets/fashion-mnist-subset").toAbsolutePath().normalize();
  static final double SPARSITY = 0.5;

  private PipelineScenario() {}

  static void run(String bootstrapServers, Path work) throws Exception {
    DjlRuntime.start(2);
    KafkaTopics.ensure(bootstrapServers, 2);
    ArtifactStore store = new ArtifactStore(work.resolve("artifacts"));
    DatasetSpec data = DatasetSpec.newBuilder().setLocation(SUBSET.toString()).build();
    Datasets.TrainTest sets = Datasets.load(data);
    TeacherTraining.Teacher teacher = TeacherTraining.train("convnet", 0.5, sets.train(), sets.test(),
        TrainingLoop.Plan.adam(2, 64, 0.002, 1), store, "teacher.params", line -> {});

    String suffix = UUID.randomUUID().toString().substring(0, 8);
    CompressionRequest demo = DemoMain.request("good-" + suffix, teacher.checkpoint(), data);
    CompressionRequest good = CompressionRequest.newBuilder(demo)
        .setTeacher(TeacherSpec.newBuilder(demo.getTeacher()).setWidth(0.5).build())
        .setDistillation(DistillationSettings.newBuilder().setTemperature(4.0).setAlpha(0.7).setEpochs(2)
            .setBatchSize(64).setLearningRate(0.002).setSeed(42L).setHardLabelBaseline(true).build())
        // Two gradual steps (to 43.75%, then exactly 50%), each fine-tuned for an epoch.
        .setPruning(PruningSettings.newBuilder().setMethod(PruningMethod.L1_UNSTRUCTURED).setTargetSparsity(SPARSITY)
            .setSteps(2).setFineTuneEpochs(1).setLearningRate(0.0005).build())
        .build();
    CompressionRequest unknownStudent = CompressionRequest.newBuilder(good)
        .setJobId("bad-arch-" + suffix).setStudent(StudentSpec.newBuilder().setArchitecture("resnet-9000").setWidth(1.0).build()).build();
    CompressionRequest diverging = CompressionRequest.newBuilder(good)
        .setJobId("diverging-" + suffix)
        .setDistillation(DistillationSettings.newBuilder(good.getDistillation()).setHardLabelBaseline(false)
            .setOptimizer(OptimizerKind.SGD).setLearningRate(1e30).build())
        .setStages(List.of(Stage.TEACHER_INFERENCE, Stage.DISTILLATION))
        .build();
    // The teacher learnt all ten classes; the new task is five of them, from 1,000 images. Half of
    // every hidden layer's channels are then removed, the smaller model fine-tuned twice, then
    // quantized to int8.
    CompressionRequest transfer = CompressionRequest.newBuilder(good)
        .setJobId("transfer-" + suffix)
        .setStudent(StudentSpec.newBuilder().setArchitecture("convnet").setWidth(0.5).build())
        .setDataset(DatasetSpec.newBuilder(data).setClasses(List.of(9, 8, 7, 6, 5)).setTrainLimit(1000).build())
        .setDistillation(DistillationSettings.newBuilder(good.getDistillation()).setEpochs(3).setLearningRate(0.005).build())
        .setTransfer(TransferSettings.newBuilder().setPretrainedClasses(10).build())
        .setPruning(PruningSettings.newBuilder().setMethod(PruningMethod.LN_STRUCTURED).setTargetSparsity(0.5)
            .setFineTuneEpochs(1).setFinalFineTuneEpochs(1).setLearningRate(0.0005).build())
        .setQuantization(QuantizationSettings.newBuilder().setCalibrationImages(200).build())
        .setStages(List.of(Stage.TRANSFER, Stage.PRUNING, Stage.QUANTIZATION))
        .build();

    try (LocalPipeline pipeline = LocalPipeline.start(LocalPipeline.keys(bootstrapServers, store.root(), 2,
            List.of(store.root().resolve("teachers")), List.of(SUBSET.getParent())));
        JobWatcher watcher = new JobWatcher(bootstrapServers);
        KafkaProducer<String, byte[]> producer = producer(bootstrapServers, store)) {
      String malformedKey = "garbage-" + suffix;
      // All on one partition, bad inputs first: the good job proves the service went on.
      send(producer, malformedKey, "{\"jobId\": \"not avro\"}".getBytes(StandardCharsets.UTF_8));
      send(producer, unknownStudent);
      send(producer, good);
      send(producer, diverging);
      send(producer, transfer);

      ConsumerRecord<String, byte[]> deadLetter = awaitDeadLetter(bootstrapServers, malformedKey, Duration.ofMinutes(1));
      assertThat(new String(deadLetter.value(), StandardCharsets.UTF_8)).isEqualTo("{\"jobId\": \"not avro\"}");
      assertThat(header(deadLetter, DeadLetters.REASON)).contains("CompressionRequest");
      assertThat(header(deadLetter, DeadLetters.SOURCE_TOPIC)).isEqualTo(Topics.REQUESTS.name());

      JobWatcher.Outcome rejected = watcher.await(unknownStudent.getJobId(), Duration.ofMinutes(1), p -> {});
      assertThat(rejected.failure()).isNotNull();
      assertThat(rejected.failure().getField()).isEqualTo("student.architecture");
      assertThat(rejected.failure().getReason()).contains("resnet-9000");

      Set<Stage> stagesWithProgress = EnumSet.noneOf(Stage.class);
      List<JobProgress> progressEvents = new ArrayList<>();
      JobWatcher.Outcome outcome = watcher.await(good.getJobId(), Duration.ofMinutes(10), progress -> {
        stagesWithProgress.add(progress.getStage());
        progressEvents.add(progress);
      });
      assertThat(outcome.failure()).as("failure of the good job").isNull();
      assertThat(stagesWithProgress).containsExactlyInAnyOrder(Stage.TEACHER_INFERENCE, Stage.DISTILLATION, Stage.PRUNING);
      // What an off-the-shelf dashboard reads: the fraction done, and the time left once there is a pace.
      assertThat(progressEvents).allSatisfy(p -> assertThat(p.getFraction())
          .isEqualTo(p.getTotalSteps() <= 0 ? 0 : Math.min(1, (double) p.getStep() / p.getTotalSteps())));
      assertThat(progressEvents).filteredOn(p -> p.getFraction() > 0 && p.getFraction() < 1)
          .anySatisfy(p -> assertThat(p.getSecondsLeft()).isPositive());
      checkResult(outcome.result(), sets, good);

      JobWatcher.Outcome diverged = watcher.await(diverging.getJobId(), Duration.ofMinutes(5), p -> {});
      assertThat(diverged.failure()).as("failure of the diverging job").isNotNull();
      assertThat(diverged.failure().getStage()).isEqualTo(Stage.DISTILLATION);
      assertThat(diverged.failure().getField()).isEqualTo("distillation.learningRate");
      assertThat(diverged.failure().getReason()).contains("training diverged", "not published");

      Set<Stage> transferStages = EnumSet.noneOf(Stage.class);
      JobWatcher.Outcome transferred = watcher.await(transfer.getJobId(), Duration.ofMinutes(5),
          progress -> transferStages.add(progress.getStage()));
      assertThat(transferred.failure()).as("failure of the transfer job").isNull();
      assertThat(transferStages).containsExactlyInAnyOrder(Stage.TRANSFER, Stage.PRUNING, Stage.QUANTIZATION);
      checkTransfer(transferred.result(), transfer);
      checkManagementPort(pipeline.managementPort());
    }
  }

  /** Health, readiness and the counters of what this scenario did, as an operator sees them. */
  private static void checkManagementPort(int port) throws Exception {
    HttpClient client = HttpClient.newHttpClient();
    for (String path : List.of("/health", "/ready")) {
      HttpResponse<String> response = client.send(
          HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path)).build(), HttpResponse.BodyHandlers.ofString());
      assertThat(response.statusCode()).as(path).isEqualTo(200);
    }
    String metrics = client.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/metrics")).build(),
        HttpResponse.BodyHandlers.ofString()).body();
    assertThat(metrics)
        .contains("distillery_records_dead_lettered_total{stage=\"teacher-planner\"} 1.0\n")
        .contains("distillery_jobs_failed_total{stage=\"teacher-planner\"} 1.0\n")
        .contains("distillery_jobs_failed_total{stage=\"student-trainer\"} 1.0\n")
        .contains("distillery_jobs_completed_total{stage=\"student-transfer\"} 1.0\n")
        .contains("distillery_jobs_completed_total{stage=\"pruner\"} 2.0\n")
        .contains("distillery_stage_job_seconds_count{stage=\"pruner\"} 2\n")
        .containsPattern("distillery_stage_job_seconds_bucket\\{stage=\"pruner\",le=\"7200.0\"} 2\n")
        .containsPattern("distillery_consumer_lag\\{stage=\"pruner\"} \\d+\\.0\n")
        // The JVM's and the Kafka clients' own meters, under Micrometer's standard names.
        .containsPattern("jvm_memory_used_bytes\\{area=\"heap\",id=\"[^\"]+\"} [0-9.E]+\n")
        .containsPattern("jvm_threads_live_threads [0-9.]+\n")
        .containsPattern("kafka_consumer_fetch_manager_records_consumed_total\\{client_id=\"[^\"]+\",[^}]*} [0-9.E]+\n")
        .containsPattern("kafka_producer_record_send_total\\{client_id=\"[^\"]+\",[^}]*} [0-9.E]+\n")
        // Vert.x's HTTP server meters: the probes above were served.
        .containsPattern("vertx_http_server_requests_total\\{[^}]*} [1-9]")
        .containsPattern("distillery_samples_per_second\\{stage=\"student-trainer\"} [1-9]");
  }

  /**
   * The pretrained convnet with a five-class head, fine-tuned, compared with training from scratch,
   * then half its channels removed.
   */
  private static void checkTransfer(JobResult result, CompressionRequest request) throws Exception {
    Datasets.TrainTest fiveClasses = Datasets.load(request.getDataset());
    assertThat(fiveClasses.numClasses()).isEqualTo(5);
    assertThat(result.getTeacher()).isNull();
    System.out.printf("transfer to 5 classes from %d images: transferred %.4f, from scratch %.4f%n",
        fiveClasses.train().size(), result.getStudent().getTestAccuracy(), result.getBaseline().getTestAccuracy());
    // Chance is 0.2 on five balanced classes.
    assertThat(result.getStudent().getTestAccuracy()).isGreaterThan(0.6);
    assertThat(result.getBaseline().getTestAccuracy()).isGreaterThan(0.2);
    assertThat(result.getStudent().getParameters()).isEqualTo(result.getBaseline().getParameters());
    assertThat(result.getStageSeconds()).containsKeys("TRANSFER", "PRUNING", "QUANTIZATION");
    assertThat(result.getStageKernels()).containsOnlyKeys("TRANSFER", "PRUNING");
    // convnet at width 0.5 has hidden layers of 16, 16, 32, 32 and 128.
    assertThat(result.getPruned().getHiddenUnits()).containsExactly(8, 8, 16, 16, 64);
    assertThat(result.getPruned().getParameters()).isLessThan(result.getStudent().getParameters() / 3);
    PruningReport report = result.getPruning();
    assertThat(report.getAccuracyBefore()).isEqualTo(result.getStudent().getTestAccuracy());
    assertThat(report.getMacsAfter()).isLessThan(report.getMacsBefore() / 3).isEqualTo(report.getNonZeroMacsAfter());
    try (Model pruned = Models.load("convnet", result.getPruned().getHiddenUnits(), 5, fiveClasses.train().imageShape(),
        ArtifactStore.open(result.getFinalCheckpoint()))) {
      assertThat(Models.head(pruned).get(0).getArray().getShape().get(0)).as("outputs of the new head").isEqualTo(5);
      assertThat(Evaluation.accuracy(pruned, fiveClasses.test())).isEqualTo(result.getPruned().getTestAccuracy());
    }
    checkQuantization(result);
  }

  /** The structurally pruned convnet's ONNX float and int8 models, as ONNX's checker and ONNX Runtime see them. */
  private static void checkQuantization(JobResult result) throws Exception {
    Map<ArtifactKind, ModelArtifact> files = new EnumMap<>(ArtifactKind.class);
    result.getArtifacts().forEach(a -> files.put(a.getKind(), a));
    assertThat(files).containsOnlyKeys(ArtifactKind.DJL_PARAMETERS, ArtifactKind.SAFETENSORS, ArtifactKind.SPARSE,
        ArtifactKind.ONNX, ArtifactKind.ONNX_INT8, ArtifactKind.SPARSE_INT8);
    ModelArtifact onnx = files.get(ArtifactKind.ONNX);
    ModelArtifact int8 = files.get(ArtifactKind.ONNX_INT8);
    QuantizationReport report = result.getQuantization();
    System.out.printf("int8 of the pruned convnet: %.4f -> %.4f, %d -> %d bytes of ONNX, batch 256 %.2f -> %.2f ms%n",
        onnx.getTestAccuracy(), int8.getTestAccuracy(), onnx.getFile().getSizeBytes(), int8.getFile().getSizeBytes(),
        onnx.getLatencyMsBatch256(), int8.getLatencyMsBatch256());
    // The same weights in another runtime: argmax ties aside, the same answers.
    assertThat(onnx.getTestAccuracy()).isCloseTo(result.getPruned().getTestAccuracy(), within(0.002));
    assertThat(int8.getTestAccuracy()).isCloseTo(onnx.getTestAccuracy(), within(0.03));
    assertThat(report.getAccuracyFloat()).isEqualTo(onnx.getTestAccuracy());
    assertThat(report.getAccuracyInt8()).isEqualTo(int8.getTestAccuracy());
    assertThat(report.getCalibrationImages()).isEqualTo(200);
    assertThat((double) report.getWeightBytesFloat() / report.getWeightBytesInt8()).isBetween(3.5, 4.0);
    assertThat(int8.getFile().getSizeBytes()).isLessThan(onnx.getFile().getSizeBytes() / 3);
    assertThat(files.get(ArtifactKind.SPARSE_INT8).getFile().getSizeBytes())
        .isLessThan(files.get(ArtifactKind.SPARSE).getFile().getSizeBytes() / 2);
    assertThat(files.get(ArtifactKind.SPARSE_INT8).getTestAccuracy()).isCloseTo(onnx.getTestAccuracy(), within(0.03));
    assertThat(int8.getLatencyMsBatch1()).isPositive();
    assertThat(onnx.getLatencyMsBatch256()).isGreaterThan(onnx.getLatencyMsBatch1());
    for (ModelArtifact model : List.of(onnx, int8)) {
      Path file = ArtifactStore.open(model.getFile());
      OnnxChecker.check(file);
      assertThat(ArtifactStore.sha256Of(file)).isEqualTo(model.getFile().getSha256());
    }
  }

  private static void checkResult(JobResult result, Datasets.TrainTest sets, CompressionRequest request)
      throws Exception {
    // A model that has learnt nothing scores about 0.1 on ten balanced classes.
    assertThat(result.getTeacher().getTestAccuracy()).isGreaterThan(0.6);
    assertThat(result.getStudent().getTestAccuracy()).isGreaterThan(0.6);
    // The hard-label baseline: the same student, data, seed and schedule.
    assertThat(result.getBaseline().getTestAccuracy()).isGreaterThan(0.6);
    assertThat(result.getBaseline().getParameters()).isEqualTo(result.getStudent().getParameters());
    assertThat(result.getBaseline().getTestAccuracy()).isNotEqualTo(result.getStudent().getTestAccuracy());
    assertThat(result.getStudent().getBestEpoch()).isBetween(1, 2);
    assertThat(result.getStudent().getValidationAccuracy()).isGreaterThan(0.6);
    assertThat(result.getPruned().getTestAccuracy()).isGreaterThan(0.6);
    assertThat(result.getStudent().getParameters()).isLessThan(result.getTeacher().getParameters());
    ModelArtifact onnx = result.getArtifacts().stream().filter(a -> a.getKind() == ArtifactKind.ONNX).findFirst()
        .orElseThrow();
    assertThat(onnx.getTestAccuracy()).as("the ONNX export in ONNX Runtime")
        .isCloseTo(result.getPruned().getTestAccuracy(), within(0.002));
    assertThat(result.getQuantization()).isNull();
    assertThat(result.getStageSeconds()).containsKeys("TEACHER_INFERENCE", "DISTILLATION", "PRUNING");
    // One JVM here: every stage ran on the kernels its start-up probe chose.
    assertThat(result.getStageKernels()).containsOnlyKeys("TEACHER_INFERENCE", "DISTILLATION", "PRUNING")
        .allSatisfy((stage, kernels) -> assertThat(kernels).isEqualTo(DjlRuntime.kernels().toString()));

    long weights = 0;
    long expectedZeros = 0;
    for (LayerSparsity layer : result.getLayers()) {
      assertThat(layer.getZeros()).as(layer.getName()).isEqualTo(L1Unstructured.prunedCount(SPARSITY, layer.getWeights()));
      weights += layer.getWeights();
      expectedZeros += L1Unstructured.prunedCount(SPARSITY, layer.getWeights());
    }
    assertThat(result.getSparsity()).isEqualTo((double) expectedZeros / weights);
    assertThat(result.getSparsity()).isCloseTo(SPARSITY, org.assertj.core.data.Offset.offset(0.01));

    // The checkpoint is where the event says, with the bytes it says, and really that sparse.
    Path checkpoint = ArtifactStore.open(result.getFinalCheckpoint());
    assertThat(ArtifactStore.sha256Of(checkpoint)).isEqualTo(result.getFinalCheckpoint().getSha256());
    try (Model pruned = Models.load("lenet5", request.getStudent().getWidth(), sets.train().numClasses(),
        sets.train().imageShape(), checkpoint)) {
      long zeros = 0;
      long total = 0;
      for (var weight : Models.prunableWeights(pruned)) {
        total += weight.getValue().getArray().size();
        zeros += weight.getValue().getArray().size() - Models.nonZero(weight.getValue().getArray());
      }
      assertThat(total).isEqualTo(weights);
      assertThat(zeros).isEqualTo(expectedZeros);
      assertThat(Models.nonZeroCount(pruned)).isEqualTo(result.getPruned().getNonZeroParameters());
    }
    PruningReport report = result.getPruning();
    assertThat(report.getAccuracyBefore()).isEqualTo(result.getStudent().getTestAccuracy());
    assertThat(report.getAccuracyFineTuned()).isEqualTo(result.getPruned().getTestAccuracy());
    // LeNet-5 on 28x28: 6*25*28*28 + 16*6*25*10*10 + 400*120 + 120*84 + 84*10 multiply-accumulates.
    assertThat(report.getMacsBefore()).isEqualTo(416_520).isEqualTo(report.getMacsAfter());
    assertThat(report.getNonZeroMacsAfter()).isBetween(report.getMacsAfter() / 3, report.getMacsAfter() * 2 / 3);
    assertThat(report.getLatencyMsBatch1After()).isPositive();
    assertThat(report.getLatencyMsBatch256After()).isGreaterThan(report.getLatencyMsBatch1After());
    assertThat(result.getSparseCheckpoint().getSizeBytes()).as("sparse encoding of a 50%-pruned model")
        .isLessThan(result.getFinalCheckpoint().getSizeBytes());
    Path safetensors = ArtifactStore.open(result.getSafetensors());
    assertThat(safetensors.getFileName().toString()).endsWith(".safetensors");
    assertThat(java.nio.file.Files.size(safetensors)).as("8-byte length, header, 4 bytes a parameter")
        .isGreaterThan(8 + 4 * result.getPruned().getParameters());
  }

  /** A producer of requests for the scenarios' jobs. */
  static KafkaProducer<String, byte[]> producer(String bootstrapServers, ArtifactStore store) {
    return KafkaClients.producer(ServiceConfig.fromKeys("scenario", Map.of(
        "kafka.bootstrap.servers", bootstrapServers, "artifacts.dir", store.root().toString(),
        "worker.threads", "1", "torch.threads", "1", "management.port", "0")));
  }

  /** Sends a request to partition 0, in order after those sent before it. */
  static void send(KafkaProducer<String, byte[]> producer, CompressionRequest request) throws Exception {
    send(producer, request.getJobId(), Topics.REQUESTS.valueSerde().serializer().serialize("", request));
  }

  private static void send(KafkaProducer<String, byte[]> producer, String key, byte[] value) throws Exception {
    producer.send(new ProducerRecord<>(Topics.REQUESTS.name(), 0, key, value)).get(30, TimeUnit.SECONDS);
  }

  private static ConsumerRecord<String, byte[]> awaitDeadLetter(String bootstrapServers, String key, Duration timeout) {
    return awaitRecord(bootstrapServers, Topics.DEAD_LETTERS.name(), key, record -> true, timeout);
  }

  /** The first record of {@code topic} under {@code key} that {@code match}es, waiting up to {@code timeout}. */
  static ConsumerRecord<String, byte[]> awaitRecord(String bootstrapServers, String topic, String key,
      java.util.function.Predicate<ConsumerRecord<String, byte[]>> match, Duration timeout) {
    long deadline = System.nanoTime() + timeout.toNanos();
    try (KafkaConsumer<String, byte[]> consumer = fromBeginning(bootstrapServers, topic)) {
      while (System.nanoTime() < deadline) {
        for (ConsumerRecord<String, byte[]> record : consumer.poll(Duration.ofMillis(200))) {
          if (key.equals(record.key()) && match.test(record)) {
            return record;
          }
        }
      }
    }
    throw new AssertionError("no matching record under " + key + " on " + topic + " within " + timeout);
  }

  /** A consumer of every partition of {@code topic}, from its first record, in no group. */
  static KafkaConsumer<String, byte[]> fromBeginning(String bootstrapServers, String topic) {
    KafkaConsumer<String, byte[]> consumer = new KafkaConsumer<>(Map.of(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG,
        bootstrapServers), new StringDeserializer(), new ByteArrayDeserializer());
    List<TopicPartition> partitions = consumer.partitionsFor(topic).stream()
        .map(p -> new TopicPartition(p.topic(), p.partition())).toList();
    consumer.assign(partitions);
    consumer.seekToBeginning(partitions);
    return consumer;
  }

  static String header(ConsumerRecord<String, byte[]> record, String name) {
    var header = record.headers().lastHeader(name);
    return header == null ? null : new String(header.value(), StandardCharsets.UTF_8);
  }
}
