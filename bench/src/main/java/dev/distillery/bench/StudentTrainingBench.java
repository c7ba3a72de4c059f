package dev.distillery.bench;

import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.config.ServiceConfig;
import dev.distillery.common.kafka.JobEvents;
import dev.distillery.common.kafka.KafkaClients;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.ImageDataset;
import dev.distillery.common.ml.TrainingLoop;
import dev.distillery.common.service.StageService;
import dev.distillery.kafka.embedded.EmbeddedKafkaBroker;
import dev.distillery.cli.JobWatcher;
import dev.distillery.common.kafka.KafkaTopics;
import dev.distillery.launcher.LocalPipeline;
import dev.distillery.cli.ResultsTable;
import dev.distillery.launcher.TeacherTraining;
import dev.distillery.pruner.PrunerService;
import dev.distillery.schemas.Augmentation;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.DatasetSpec;
import dev.distillery.schemas.DistillationSettings;
import dev.distillery.schemas.JobResult;
import dev.distillery.schemas.LearningRateSchedule;
import dev.distillery.schemas.ModelFormat;
import dev.distillery.schemas.OptimizerKind;
import dev.distillery.schemas.PruningSettings;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.StudentSpec;
import dev.distillery.schemas.TeacherSpec;
import dev.distillery.schemas.TransferSettings;
import dev.distillery.schemas.kafka.Topics;
import dev.distillery.student.StudentTrainerService;
import dev.distillery.teacher.TeacherInferenceService;
import io.vertx.core.Vertx;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.producer.KafkaProducer;

/**
 * Quality and memory of the student trainer, measured through the real pipeline (in-process KRaft
 * broker, the services' own stages) on the full Fashion-MNIST. Modes:
 *
 * <ul>
 *   <li>{@code distill}: the teacher (convnet), the student (lenet5) on hard labels only, and the
 *       same student distilled; options {@code --teacher-epochs}, {@code --epochs}, {@code --lr},
 *       {@code --temperature}, {@code --alpha}, {@code --batch}, {@code --width} (of the lenet5 student)
 *   <li>{@code transfer}: convnet pretrained on classes 0-4, transferred to classes 5-9 with 1,000
 *       labelled images, against the same convnet trained from scratch on those images; options
 *       {@code --pretrain-epochs}, {@code --epochs}, {@code --lr}, {@code --freeze}, {@code --images}
 *   <li>{@code memory}: a student-trainer process (its own JVM, options {@code --jvm -Xmx1g,-XX:+AlwaysPreTouch}, comma-separated)
 *       through {@code --jobs} consecutive small distillation jobs, its resident memory after each
 * </ul>
 *
 * Teachers are trained once and cached under {@code var/bench}.
 */
public final class StudentTrainingBench {
  private static final Path FULL = Path.of("/usr/share/datasets/fashion-mnist");
  private static final Path CACHE = Path.of("var/bench").toAbsolutePath();
  private static final int THREADS = 2;

  private StudentTrainingBench() {}

  public static void main(String[] args) throws Exception {
    String mode = args.length > 0 ? args[0] : "distill";
    Map<String, String> options = new TreeMap<>();
    for (int i = 1; i + 1 < args.length; i += 2) {
      options.put(args[i].replaceFirst("^--", ""), args[i + 1]);
    }
    DjlRuntime.start(THREADS);
    switch (mode) {
      case "distill" -> distill(options);
      case "transfer" -> transfer(options);
      case "memory" -> memory(Integer.parseInt(options.getOrDefault("jobs", "20")),
          List.of(options.getOrDefault("jvm", "-Xmx1g").split(",")));
      default -> throw new IllegalArgumentException("unknown mode " + mode);
    }
  }

  private static void distill(Map<String, String> o) throws Exception {
    DatasetSpec data = DatasetSpec.newBuilder().setLocation(FULL.toString()).build();
    int teacherEpochs = Integer.parseInt(o.getOrDefault("teacher-epochs", "15"));
    // --teacher-torchscript FILE: a teacher trained elsewhere (in PyTorch), as a user brings one.
    Path teacher = o.containsKey("teacher-torchscript") ? Path.of(o.get("teacher-torchscript")).toAbsolutePath()
        : teacher("convnet-full-" + teacherEpochs, data, teacherEpochs);
    DistillationSettings.Builder training = DistillationSettings.newBuilder()
        .setEpochs(Integer.parseInt(o.getOrDefault("epochs", "20")))
        .setBatchSize(Integer.parseInt(o.getOrDefault("batch", "128")))
        .setLearningRate(Double.parseDouble(o.getOrDefault("lr", "0.002")))
        .setSchedule(LearningRateSchedule.COSINE)
        .setTemperature(Double.parseDouble(o.getOrDefault("temperature", "4")))
        .setAlpha(Double.parseDouble(o.getOrDefault("alpha", "0.9")))
        .setSeed(Long.parseLong(o.getOrDefault("seed", "42")))
        .setLabelSmoothing(Double.parseDouble(o.getOrDefault("label-smoothing", "0")))
        .setAugmentation(Augmentation.valueOf(o.getOrDefault("augmentation", "NONE")))
        .setHardLabelBaseline(true);
    CompressionRequest.Builder built = request("distill", teacher, data, training.build());
    if (o.containsKey("teacher-torchscript")) {
      built.setTeacher(TeacherSpec.newBuilder().setFormat(ModelFormat.TORCHSCRIPT)
          .setCheckpointUri(teacher.toUri().toString()).build());
    }
    CompressionRequest request = built
        .setStudent(StudentSpec.newBuilder().setArchitecture(o.getOrDefault("student", "lenet5"))
            .setWidth(Double.parseDouble(o.getOrDefault("width", "1.0"))).build())
        .setStages(List.of(Stage.TEACHER_INFERENCE, Stage.DISTILLATION))
        .build();
    JobResult result = runThroughPipeline(request);
    say("settings: %s; student %s", request.getDistillation(), request.getStudent());
    double teacherAccuracy = result.getTeacher().getTestAccuracy();
    double baseline = result.getBaseline().getTestAccuracy();
    double distilled = result.getStudent().getTestAccuracy();
    say("teacher %.4f (%d params), hard-label student %.4f, distilled student %.4f (%d params, %.1fx fewer)",
        teacherAccuracy, result.getTeacher().getParameters(), baseline, distilled, result.getStudent().getParameters(),
        (double) result.getTeacher().getParameters() / result.getStudent().getParameters());
    say("distilled - hard-label: %+.2f points (target >= +0.5); distilled - teacher: %+.2f points (target >= -1.5)",
        100 * (distilled - baseline), 100 * (distilled - teacherAccuracy));
  }

  private static void transfer(Map<String, String> o) throws Exception {
    int pretrainEpochs = Integer.parseInt(o.getOrDefault("pretrain-epochs", "10"));
    DatasetSpec firstFive = DatasetSpec.newBuilder().setLocation(FULL.toString()).setClasses(List.of(0, 1, 2, 3, 4)).build();
    Path pretrained = teacher("convnet-classes0to4-" + pretrainEpochs, firstFive, pretrainEpochs);
    DatasetSpec lastFive = DatasetSpec.newBuilder().setLocation(FULL.toString()).setClasses(List.of(5, 6, 7, 8, 9))
        .setTrainLimit(Integer.parseInt(o.getOrDefault("images", "1000"))).build();
    DistillationSettings training = DistillationSettings.newBuilder()
        .setEpochs(Integer.parseInt(o.getOrDefault("epochs", "30")))
        .setBatchSize(Integer.parseInt(o.getOrDefault("batch", "64")))
        .setLearningRate(Double.parseDouble(o.getOrDefault("lr", "0.002")))
        .setSchedule(LearningRateSchedule.COSINE)
        .build();
    CompressionRequest request = request("transfer", pretrained, lastFive, training)
        .setStudent(StudentSpec.newBuilder().setArchitecture("convnet").setWidth(1.0).build())
        .setTransfer(TransferSettings.newBuilder().setPretrainedClasses(5)
            .setFreezeBackbone(Boolean.parseBoolean(o.getOrDefault("freeze", "false")))
            .setBackboneLearningRateFactor(Double.parseDouble(o.getOrDefault("backbone-factor", "0.1"))).build())
        .setStages(List.of(Stage.TRANSFER))
        .build();
    JobResult result = runThroughPipeline(request);
    say("settings: %s; transfer: %s", request.getDistillation(), request.getTransfer());
    double transferred = result.getStudent().getTestAccuracy();
    double scratch = result.getBaseline().getTestAccuracy();
    say("classes 5-9 from %d images: transferred %.4f, from scratch %.4f: %+.2f points (target >= +5)",
        lastFive.getTrainLimit(), transferred, scratch, 100 * (transferred - scratch));
  }

  /**
   * One student-trainer process through {@code jobs} consecutive small jobs (lenet5, 1 epoch on the
   * shipped 4,000-image subset); teacher inference and the pruner run in this JVM.
   */
  private static void memory(int jobs, List<String> jvmOptions) throws Exception {
    Path work = Files.createTempDirectory("distillery-bench");
    DatasetSpec data = DatasetSpec.newBuilder()
        .setLocation(Path.of("datasets/fashion-mnist-subset").toAbsolutePath().toString()).build();
    Path teacher = teacher("convnet-subset-2", data, 2);
    try (EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.start()) {
      KafkaTopics.ensure(broker.bootstrapServers(), 2);
      List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
      command.addAll(jvmOptions);
      command.addAll(List.of("-cp", System.getProperty("java.class.path"), StudentTrainerService.class.getName()));
      ProcessBuilder builder = new ProcessBuilder(command)
          .redirectErrorStream(true).redirectOutput(work.resolve("trainer.log").toFile());
      say("student-trainer JVM options %s", jvmOptions);
      // The bench's own teacher and dataset are the roots.
      String modelRoot = teacher.getParent().toString();
      String datasetRoot = data.getLocation();
      builder.environment().putAll(Map.of("KAFKA_BOOTSTRAP_SERVERS", broker.bootstrapServers(),
          "DISTILLERY_ARTIFACTS_DIR", work.toString(), "DISTILLERY_TORCH_THREADS", String.valueOf(THREADS),
          "DISTILLERY_MANAGEMENT_PORT", "0", "DISTILLERY_MODEL_ROOTS", modelRoot, "DISTILLERY_DATASET_ROOTS", datasetRoot));
      Process trainer = builder.start();
      Vertx vertx = Vertx.vertx();
      try (JobWatcher watcher = new JobWatcher(broker.bootstrapServers());
          KafkaProducer<String, byte[]> producer = KafkaClients.producer(ServiceConfig.fromKeys("bench",
              Map.of("kafka.bootstrap.servers", broker.bootstrapServers())));
          JobEvents events = new JobEvents(producer)) {
        Map<String, String> keys = Map.of("kafka.bootstrap.servers", broker.bootstrapServers(),
            "artifacts.dir", work.toString(), "torch.threads", "1", "model.roots", modelRoot,
            "dataset.roots", datasetRoot);
        List<StageService<?>> others = new ArrayList<>(TeacherInferenceService.stages(
            ServiceConfig.fromKeys(TeacherInferenceService.NAME, keys)));
        others.addAll(PrunerService.stages(ServiceConfig.fromKeys(PrunerService.NAME, keys)));
        for (StageService<?> stage : others) {
          vertx.deployVerticle(stage).await(1, TimeUnit.MINUTES);
        }
        for (int job = 1; job <= jobs; job++) {
          CompressionRequest request = request("memory-" + job, teacher, data,
              DistillationSettings.newBuilder().setEpochs(1).setHardLabelBaseline(true).build())
              .setStudent(StudentSpec.newBuilder().setArchitecture("lenet5").setWidth(1.0).build())
              .setStages(List.of(Stage.TEACHER_INFERENCE, Stage.DISTILLATION)).build();
          long start = System.nanoTime();
          events.send(Topics.REQUESTS, request.getJobId(), request).get(30, TimeUnit.SECONDS);
          JobWatcher.Outcome outcome = watcher.await(request.getJobId(), Duration.ofMinutes(30), p -> {});
          if (outcome.failure() != null) {
            throw new IllegalStateException("job failed: " + outcome.failure());
          }
          long pid = trainer.pid();
          say("job %2d: %.1f s; trainer RSS %s, peak %s, Java heap committed %s", job,
              (System.nanoTime() - start) / 1e9, ProcessMemory.status(pid, "VmRSS"), ProcessMemory.status(pid, "VmHWM"),
              ProcessMemory.heapCommitted(pid));
        }
      } finally {
        trainer.destroy();
        trainer.waitFor(30, TimeUnit.SECONDS);
        vertx.close().await(1, TimeUnit.MINUTES);
      }
    }
  }

  static JobResult runThroughPipeline(CompressionRequest request) throws Exception {
    Path work = Files.createTempDirectory("distillery-bench");
    try (EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.start()) {
      KafkaTopics.ensure(broker.bootstrapServers(), 2);
      // The bench's own request: its teacher's directory and its dataset are the roots.
      Path teacherDir = ArtifactStore.localPath(request.getTeacher().getCheckpointUri()).getParent();
      Path dataset = ArtifactStore.localPath(request.getDataset().getLocation());
      try (LocalPipeline pipeline = LocalPipeline.start(LocalPipeline.keys(broker.bootstrapServers(), work, THREADS,
              List.of(teacherDir), List.of(dataset)));
          JobWatcher watcher = new JobWatcher(broker.bootstrapServers());
          KafkaProducer<String, byte[]> producer = KafkaClients.producer(ServiceConfig.fromKeys("bench",
              Map.of("kafka.bootstrap.servers", broker.bootstrapServers())));
          JobEvents events = new JobEvents(producer)) {
        long start = System.nanoTime();
        events.send(Topics.REQUESTS, request.getJobId(), request).get(30, TimeUnit.SECONDS);
        JobWatcher.Outcome outcome = watcher.await(request.getJobId(), Duration.ofHours(3), p ->
            say("%s %d/%d %s %s", p.getStage(), p.getStep(), p.getTotalSteps(), p.getMessage(), new TreeMap<>(p.getMetrics())));
        if (outcome.failure() != null) {
          throw new IllegalStateException("job failed: " + outcome.failure());
        }
        say("job took %.0f s%n%s", (System.nanoTime() - start) / 1e9, ResultsTable.render(outcome.result()));
        return outcome.result();
      }
    }
  }

  private static CompressionRequest.Builder request(String name, Path teacher, DatasetSpec data,
      DistillationSettings training) {
    return CompressionRequest.newBuilder()
        .setJobId("bench-" + name + "-" + System.currentTimeMillis())
        .setTeacher(TeacherSpec.newBuilder().setFormat(ModelFormat.BUILT_IN).setArchitecture("convnet").setWidth(1.0)
            .setCheckpointUri(teacher.toUri().toString()).build())
        .setDataset(data)
        .setDistillation(training)
        .setPruning(PruningSettings.newBuilder().build());
  }

  /** A convnet trained with hard labels on {@code data}, cached by {@code name}. */
  static Path teacher(String name, DatasetSpec data, int epochs) throws Exception {
    return trained("convnet", name, data, epochs);
  }

  /** A model of {@code architecture} trained with hard labels on {@code data}, cached by {@code name}. */
  static Path trained(String architecture, String name, DatasetSpec data, int epochs) throws Exception {
    return trained(architecture, name, data, epochs, false);
  }

  /**
   * As {@link #trained(String, String, DatasetSpec, int)}; with {@code holdOut} on the 90% of the
   * training set outside the split a job with validationSplit 0.1 and seed 42 holds out, so that an
   * accuracy budget is judged on images the model never saw.
   */
  static Path trained(String architecture, String name, DatasetSpec data, int epochs, boolean holdOut)
      throws Exception {
    ArtifactStore store = new ArtifactStore(CACHE);
    Path teachers = CACHE.resolve("teachers");
    if (Files.isDirectory(teachers)) {
      try (var files = Files.newDirectoryStream(teachers, name + "-*.params")) {
        for (Path cached : files) {
          return cached;
        }
      }
    }
    Datasets.TrainTest sets = Datasets.load(data);
    ImageDataset train = holdOut ? sets.train().subset(Datasets.split(sets.train(), 0.1, 42).training()) : sets.train();
    say("training %s on %d images for %d epochs (cached for later runs)", name, train.size(), epochs);
    TeacherTraining.Teacher trained = TeacherTraining.train(architecture, 1.0, train, sets.test(),
        new TrainingLoop.Plan(epochs, 128, 0.001, OptimizerKind.ADAM, 0, 0, LearningRateSchedule.COSINE, 1, 1, 7),
        store, name + ".params", StudentTrainingBench::say);
    say("%s: test accuracy %.4f", name, trained.testAccuracy());
    return trained.checkpoint();
  }

  static void say(String format, Object... args) {
    System.out.printf("[bench] " + format + "%n", args);
  }
}
