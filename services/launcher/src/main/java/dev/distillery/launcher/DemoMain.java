package dev.distillery.launcher;

import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.kafka.JobEvents;
import dev.distillery.cli.JobWatcher;
import dev.distillery.cli.ProgressLine;
import dev.distillery.cli.ResultsTable;
import dev.distillery.common.kafka.KafkaClients;
import dev.distillery.common.kafka.KafkaTopics;
import dev.distillery.common.config.ServiceConfig;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.ImageDataset;
import dev.distillery.kafka.embedded.EmbeddedKafkaBroker;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.DatasetSpec;
import dev.distillery.schemas.DistillationSettings;
import dev.distillery.schemas.LearningRateSchedule;
import dev.distillery.schemas.ModelFormat;
import dev.distillery.schemas.PruningMethod;
import dev.distillery.schemas.PruningSettings;
import dev.distillery.schemas.SoftLabelSource;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.StudentSpec;
import dev.distillery.schemas.TeacherSpec;
import dev.distillery.schemas.kafka.Topics;
import dev.distillery.schemas.kafka.WireFormat;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.producer.KafkaProducer;

/**
 * The demo: an embedded Kafka broker, all services in this JVM, a teacher trained once and
 * cached, and one compression job on Fashion-MNIST followed live until its results table.
 *
 * <p>Uses the full Fashion-MNIST when Debian's {@code dataset-fashion-mnist} is installed, the
 * subset shipped in {@code datasets/} otherwise. Settings: {@code --work DIR} (default
 * {@code var/demo}), {@code --dataset DIR}, {@code --train-limit N} (default 15000 on the full set),
 * {@code --http-port 8080} (the dashboard's), {@code --keep-running true} (stay up after the job,
 * for the dashboard, until Ctrl-C), {@code --bootstrap-servers HOST:PORT} (no broker or services
 * of its own: submit to services running elsewhere that share {@code --work}'s artifacts).
 */
public final class DemoMain {
  private static final Path FULL_DATASET = Path.of("/usr/share/datasets/fashion-mnist");
  private static final Path SHIPPED_SUBSET = Path.of("datasets/fashion-mnist-subset");

  private DemoMain() {}

  public static void main(String[] args) throws Exception {
    Map<String, String> options = options(args);
    Path work = Path.of(options.getOrDefault("work", "var/demo")).toAbsolutePath();
    Path dataset = Path.of(options.getOrDefault("dataset",
        Files.isDirectory(FULL_DATASET) ? FULL_DATASET.toString() : SHIPPED_SUBSET.toString())).toAbsolutePath();
    boolean full = dataset.equals(FULL_DATASET);
    int trainLimit = Integer.parseInt(options.getOrDefault("train-limit", full ? "15000" : "0"));
    int threads = Runtime.getRuntime().availableProcessors();
    long started = System.nanoTime();
    say("dataset %s (train limit %s), work directory %s", dataset, trainLimit == 0 ? "none" : trainLimit, work);

    DjlRuntime.start(threads);
    ArtifactStore store = new ArtifactStore(work.resolve("artifacts"));
    DatasetSpec data = DatasetSpec.newBuilder().setLocation(dataset.toString()).setTrainLimit(trainLimit).build();
    Path teacher = teacher(store, data);

    CompressionRequest request = recipe("demo-" + System.currentTimeMillis(), teacher, data);
    String external = options.get("bootstrap-servers");
    if (external != null) {
      // Services run elsewhere (docker compose, Kubernetes) and share this artifact directory.
      KafkaTopics.ensure(external, 3);
      // In their format: with DISTILLERY_SCHEMA_REGISTRY_URL set (compose sets it), Confluent's.
      submitAndWatch(external, ServiceConfig.load("demo").wire(), request);
    } else {
      try (EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.start()) {
        KafkaTopics.ensure(broker.bootstrapServers(), 3);
        say("Kafka broker (KRaft, in-process) at %s", broker.bootstrapServers());
        int httpPort = Integer.parseInt(options.getOrDefault("http-port", "8080"));
        try (LocalPipeline pipeline =
            LocalPipeline.start(LocalPipeline.keys(broker.bootstrapServers(), store.root(), threads,
                List.of(store.root().resolve("teachers")), List.of(dataset)), httpPort, request)) {
          say("services ready; health and metrics on http://localhost:%d/metrics", pipeline.managementPort());
          say("dashboard: http://localhost:%d/#token=%s  (API: /api/jobs, events: /api/events; send the token as"
              + " 'Authorization: Bearer <token>')", pipeline.dashboardPort(), pipeline.dashboardToken());
          submitAndWatch(broker.bootstrapServers(), WireFormat.SINGLE_OBJECT, request);
          if (Boolean.parseBoolean(options.getOrDefault("keep-running", "false"))) {
            say("broker, services and dashboard keep running until Ctrl-C");
            Thread.currentThread().join();
          }
        }
      }
    }
    say("demo finished in %.1f s", (System.nanoTime() - started) / 1e9);
  }

  /** Publishes the request, prints its progress and then its results; exits with 1 if it failed. */
  private static void submitAndWatch(String bootstrapServers, WireFormat wire, CompressionRequest request)
      throws Exception {
    try (JobWatcher watcher = new JobWatcher(Map.of("bootstrap.servers", bootstrapServers), wire);
        KafkaProducer<String, byte[]> producer = KafkaClients.producer(ServiceConfig.fromKeys("demo", Map.of(
            "kafka.bootstrap.servers", bootstrapServers)))) {
      long sentAtMs = System.currentTimeMillis();
      new JobEvents(producer, wire, progress -> {}).send(Topics.REQUESTS, request.getJobId(), request).get(30, TimeUnit.SECONDS);
      say("submitted job %s to %s", request.getJobId(), Topics.REQUESTS.name());
      JobWatcher.Outcome outcome =
          watcher.awaitSubmitted(request.getJobId(), sentAtMs, Duration.ofHours(2), p -> say("%s", ProgressLine.format(p)));
      if (outcome.failure() != null) {
        say("job FAILED in %s: %s", outcome.failure().getStage(), outcome.failure().getReason());
        System.exit(1);
      }
      if (outcome.cancellation() != null) {
        say("job CANCELLED (%s): %s", outcome.cancellation().getRequestedBy(), outcome.cancellation().getReason());
        System.exit(1);
      }
      System.out.println();
      System.out.print(ResultsTable.render(outcome.result()));
    }
  }

  /**
   * How the demo's teacher is trained: long enough (12 epochs, cosine) to stand clearly above the
   * student, which distillation needs to pay (bench/README.md, "Results against the papers").
   */
  static final DistillationSettings TEACHER_TRAINING = DistillationSettings.newBuilder().setEpochs(12).setBatchSize(64)
      .setLearningRate(0.002).setSchedule(LearningRateSchedule.COSINE).setSeed(7L).build();

  /** The demo's teacher, trained on first use and reused afterwards. */
  private static Path teacher(ArtifactStore store, DatasetSpec data) throws Exception {
    String stem = "convnet-" + TEACHER_TRAINING.getEpochs() + "ep-" + Path.of(data.getLocation()).getFileName()
        + "-" + data.getTrainLimit();
    Path teachers = store.root().resolve("teachers");
    if (Files.isDirectory(teachers)) {
      try (var files = Files.newDirectoryStream(teachers, stem + "-*.params")) {
        for (Path cached : files) {
          say("teacher: reusing %s", cached);
          return cached;
        }
      }
    }
    Datasets.TrainTest sets = Datasets.load(data);
    say("teacher: training convnet on %d images (once; cached for later runs)", sets.train().size());
    ImageDataset train = sets.train();
    TeacherTraining.Teacher trained = TeacherTraining.train("convnet", 1.0, train, sets.test(), TEACHER_TRAINING, store,
        stem + ".params", DemoMain::say);
    say("teacher: test accuracy %.4f, saved to %s", trained.testAccuracy(), trained.checkpoint());
    return trained.checkpoint();
  }

  /**
   * The demo's job: the convnet distilled into LeNet-5 (14x fewer parameters) for 10 epochs beside
   * the same student on hard labels (T=4, alpha=0.5: chosen by `bench/run.sh sweep`, bench/README.md),
   * then pruned towards 90% in five steps, fine-tuned against the unpruned student's soft labels,
   * keeping the sparsest step within one point on the validation split, then quantized to int8:
   * Deep Compression's chain, distill, prune, quantize, encode.
   */
  static CompressionRequest recipe(String jobId, Path teacher, DatasetSpec data) {
    return CompressionRequest.newBuilder(request(jobId, teacher, data))
        .setDistillation(DistillationSettings.newBuilder().setTemperature(4.0).setAlpha(0.5).setEpochs(10)
            .setBatchSize(64).setLearningRate(0.002).setSeed(42L).setSchedule(LearningRateSchedule.COSINE)
            .setHardLabelBaseline(true).build())
        .setPruning(PruningSettings.newBuilder().setMethod(PruningMethod.L1_UNSTRUCTURED).setTargetSparsity(0.9)
            .setSteps(5).setFineTuneEpochs(2).setFinalFineTuneEpochs(2).setLearningRate(0.001)
            .setDistillFrom(SoftLabelSource.UNPRUNED).setMaxAccuracyLoss(1.0).build())
        .setStages(List.of(Stage.TEACHER_INFERENCE, Stage.DISTILLATION, Stage.PRUNING, Stage.QUANTIZATION))
        .build();
  }

  /** A quick job (LeNet-5, 80% one-shot pruning) that the end-to-end tests start from. */
  static CompressionRequest request(String jobId, Path teacher, DatasetSpec data) {
    return CompressionRequest.newBuilder()
        .setJobId(jobId)
        .setSubmittedAtMs(System.currentTimeMillis())
        .setTeacher(TeacherSpec.newBuilder().setFormat(ModelFormat.BUILT_IN).setArchitecture("convnet").setWidth(1.0)
            .setCheckpointUri(teacher.toUri().toString()).build())
        .setDataset(data)
        .setStudent(StudentSpec.newBuilder().setArchitecture("lenet5").setWidth(1.0).build())
        .setDistillation(DistillationSettings.newBuilder().setTemperature(4.0).setAlpha(0.7).setEpochs(3)
            .setBatchSize(64).setLearningRate(0.002).setSeed(42L).setSchedule(LearningRateSchedule.COSINE)
            .setHardLabelBaseline(true).build())
        .setPruning(PruningSettings.newBuilder().setMethod(PruningMethod.L1_UNSTRUCTURED).setTargetSparsity(0.8).setFineTuneEpochs(2).setLearningRate(0.001).build())
        .setStages(List.of(Stage.TEACHER_INFERENCE, Stage.DISTILLATION, Stage.PRUNING))
        .setOutputUri(null)
        .build();
  }

  private static void say(String format, Object... args) {
    System.out.printf("[demo] " + format + "%n", args);
  }

  private static Map<String, String> options(String[] args) {
    Map<String, String> options = new TreeMap<>();
    for (int i = 0; i + 1 < args.length; i += 2) {
      if (!args[i].startsWith("--")) {
        throw new IllegalArgumentException("expected --option value, got " + args[i]);
      }
      options.put(args[i].substring(2), args[i + 1]);
    }
    return options;
  }
}
