package dev.distillery.bench;

import ai.djl.Model;
import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.config.ServiceConfig;
import dev.distillery.common.kafka.JobEvents;
import dev.distillery.common.kafka.KafkaClients;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.Evaluation;
import dev.distillery.common.ml.ImageDataset;
import dev.distillery.common.ml.Models;
import dev.distillery.common.ml.Preprocessing;
import dev.distillery.kafka.embedded.EmbeddedKafkaBroker;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.DatasetSpec;
import dev.distillery.schemas.DistillationSettings;
import dev.distillery.schemas.JobContext;
import dev.distillery.schemas.ModelFormat;
import dev.distillery.schemas.PruningSettings;
import dev.distillery.schemas.SoftLabelBatch;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.StudentSpec;
import dev.distillery.schemas.TeacherSpec;
import dev.distillery.schemas.kafka.Topics;
import dev.distillery.teacher.TeacherInferenceService;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.tools.ProducerPerformance;

/**
 * Teacher-inference benchmarks (bench/README.md). Every mode starts an in-process KRaft broker;
 * replicas run as separate JVMs ({@link TeacherInferenceService#main}), as they would in
 * production, so their threads and memory are their own.
 *
 * <ul>
 *   <li>{@code throughput [threads] [samples]}: one replica against the same teacher run directly
 *       in this JVM with the same libtorch threads
 *   <li>{@code replicas [samples]}: one replica with one thread against two with one thread each
 *   <li>{@code publish [records]}: publishing soft-label records against Kafka's ProducerPerformance
 *       with the same record size
 *   <li>{@code memory [jobs] [samples]}: resident memory of one replica after each of N jobs
 * </ul>
 */
public final class TeacherInferenceBench {
  private static final Path FULL = Path.of("/usr/share/datasets/fashion-mnist");
  private static final Path SUBSET = Path.of("datasets/fashion-mnist-subset").toAbsolutePath();
  private static final int LABEL_BATCH = 256;

  private final EmbeddedKafkaBroker broker;
  private final Path work;
  private final Path dataset;
  private final Path teacher;

  private TeacherInferenceBench(EmbeddedKafkaBroker broker, Path work) throws Exception {
    this.broker = broker;
    this.work = work;
    this.dataset = Files.isDirectory(FULL) ? FULL : SUBSET;
    ImageDataset train = Datasets.read(dataset, "train");
    // Inference speed does not depend on the weights' values: a freshly initialised teacher will do.
    try (Model model = Models.create("convnet", 1.0, 10, train.imageShape(), 1)) {
      this.teacher = ArtifactStore.localPath(Models.save(model, new ArtifactStore(work), "bench", "convnet.params").getUri());
    }
  }

  public static void main(String[] args) throws Exception {
    String mode = args.length > 0 ? args[0] : "throughput";
    // This JVM runs inference only to create the teacher; replicas and the baseline run in their own.
    DjlRuntime.start(1);
    Path work = Files.createTempDirectory("distillery-bench");
    try (EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.start()) {
      Map<String, Integer> topics = new HashMap<>();
      Topics.ALL.forEach(topic -> topics.put(topic.name(), 1));
      topics.put(Topics.TEACHER_SHARDS.name(), 8);
      broker.createTopics(topics);
      TeacherInferenceBench bench = new TeacherInferenceBench(broker, work);
      switch (mode) {
        case "throughput" -> bench.throughput(Integer.parseInt(arg(args, 1, "2")), Integer.parseInt(arg(args, 2, "0")));
        case "replicas" -> bench.replicas(Integer.parseInt(arg(args, 1, "0")));
        case "publish" -> bench.publish(Integer.parseInt(arg(args, 1, "20000")));
        case "memory" -> bench.memory(Integer.parseInt(arg(args, 1, "20")), Integer.parseInt(arg(args, 2, "10000")));
        default -> throw new IllegalArgumentException("unknown mode " + mode);
      }
    }
  }

  private void throughput(int threads, int samples) throws Exception {
    ImageDataset train = Datasets.read(dataset, "train").limit(samples);
    say("dataset %s, %d training samples, teacher convnet (871K parameters), %d libtorch threads", dataset, train.size(), threads);
    for (int round = 1; round <= 2; round++) {
      double direct = direct(train, threads);
      JobTiming service = runJob(1, threads, samples, 1);
      say("round %d: direct %.0f samples/s; service %.0f samples/s request-to-last-label (%.2f of direct), "
          + "%.0f samples/s first-to-last label (%.2f of direct)", round, direct,
          service.endToEndRate(), service.endToEndRate() / direct, service.labellingRate(), service.labellingRate() / direct);
    }
  }

  private double directUnchecked(ImageDataset train) {
    try {
      return direct(train, 1);
    } catch (Exception e) {
      throw new IllegalStateException(e);
    }
  }

  /** The teacher run directly, in a fresh JVM with the same settings a replica gets. */
  private double direct(ImageDataset train, int threads) throws Exception {
    Process process = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-Xmx1g", "-cp", System.getProperty("java.class.path"), DirectInference.class.getName(),
        teacher.toString(), dataset.toString(), String.valueOf(train.size()), String.valueOf(threads),
        String.valueOf(LABEL_BATCH)).redirectError(ProcessBuilder.Redirect.DISCARD).start();
    List<String> lines = new String(process.getInputStream().readAllBytes()).lines().toList();
    if (process.waitFor() != 0 || lines.isEmpty()) {
      throw new IllegalStateException("direct inference failed: " + lines);
    }
    return Double.parseDouble(lines.get(lines.size() - 1));
  }

  private void replicas(int samples) throws Exception {
    say("dataset %s, samples %s, one libtorch thread per replica", dataset, samples == 0 ? "all" : samples);
    // The machine's own ceiling: the teacher run directly, one process alone, then two at once.
    ImageDataset train = Datasets.read(dataset, "train").limit(samples);
    double alone = direct(train, 1);
    CompletableFuture<Double> a = CompletableFuture.supplyAsync(() -> directUnchecked(train));
    CompletableFuture<Double> b = CompletableFuture.supplyAsync(() -> directUnchecked(train));
    double together = a.get() + b.get();
    say("direct, 1 thread: one process %.0f samples/s, two processes at once %.0f samples/s in all: %.2fx",
        alone, together, together / alone);
    for (int round = 1; round <= 2; round++) {
      JobTiming one = runJob(1, 1, samples, 1);
      JobTiming two = runJob(2, 1, samples, 1);
      say("round %d: 1 replica %.0f samples/s, 2 replicas %.0f samples/s: %.2fx (labelling only: %.0f vs %.0f, %.2fx)",
          round, one.endToEndRate(), two.endToEndRate(), two.endToEndRate() / one.endToEndRate(),
          one.labellingRate(), two.labellingRate(), two.labellingRate() / one.labellingRate());
    }
  }

  private void memory(int jobs, int samples) throws Exception {
    say("one replica, %d consecutive jobs of %d samples each", jobs, samples);
    runJob(1, 1, samples, jobs);
  }

  /** Timing of one job, seen from outside the replicas. */
  private record JobTiming(int samples, double requestToLastSeconds, double firstToLastSeconds) {
    double endToEndRate() {
      return samples / requestToLastSeconds;
    }

    double labellingRate() {
      return samples / firstToLastSeconds;
    }
  }

  /** Starts replicas, runs {@code jobs} jobs one after the other, returns the last job's timing. */
  private JobTiming runJob(int replicas, int threads, int samples, int jobs) throws Exception {
    List<Process> processes = new ArrayList<>();
    List<Integer> ports = new ArrayList<>();
    try {
      for (int i = 0; i < replicas; i++) {
        int port = freePort();
        ports.add(port);
        processes.add(startReplica(threads, port, i));
      }
      for (int i = 0; i < replicas; i++) {
        awaitReady(ports.get(i), processes.get(i));
      }
      JobTiming timing = null;
      for (int job = 1; job <= jobs; job++) {
        timing = job(samples);
        if (jobs > 1) {
          long pid = processes.get(0).pid();
          say("job %2d: %.1f s; replica RSS %s, peak %s, threads %s, Java heap committed %s", job,
              timing.requestToLastSeconds(), ProcessMemory.status(pid, "VmRSS"), ProcessMemory.status(pid, "VmHWM"),
              ProcessMemory.status(pid, "Threads"), ProcessMemory.heapCommitted(pid));
        }
      }
      return timing;
    } finally {
      processes.forEach(Process::destroy);
      for (Process p : processes) {
        p.waitFor(30, TimeUnit.SECONDS);
      }
    }
  }

  private JobTiming job(int samples) throws Exception {
    CompressionRequest request = CompressionRequest.newBuilder()
        .setJobId("bench-" + System.nanoTime())
        .setTeacher(TeacherSpec.newBuilder().setFormat(ModelFormat.BUILT_IN).setArchitecture("convnet").setWidth(1.0)
            .setCheckpointUri(teacher.toUri().toString()).build())
        .setDataset(DatasetSpec.newBuilder().setLocation(dataset.toString()).setTrainLimit(samples).setTestLimit(0).build())
        .setStudent(StudentSpec.newBuilder().setArchitecture("lenet5").setWidth(1.0).build())
        .setDistillation(DistillationSettings.newBuilder().build())
        .setPruning(PruningSettings.newBuilder().build())
        .setStages(List.of(Stage.TEACHER_INFERENCE, Stage.DISTILLATION))
        .build();
    try (KafkaConsumer<String, byte[]> consumer = new KafkaConsumer<>(Map.of("bootstrap.servers", broker.bootstrapServers()),
            new StringDeserializer(), new ByteArrayDeserializer());
        KafkaProducer<String, byte[]> producer = KafkaClients.producer(
            ServiceConfig.fromKeys("bench", Map.of("kafka.bootstrap.servers", broker.bootstrapServers())));
        JobEvents events = new JobEvents(producer)) {
      TopicPartition partition = new TopicPartition(Topics.SOFT_LABELS.name(), 0);
      consumer.assign(List.of(partition));
      consumer.seekToEnd(List.of(partition));
      consumer.position(partition);
      long start = System.nanoTime();
      events.send(Topics.REQUESTS, request.getJobId(), request).get(30, TimeUnit.SECONDS);
      BitSet seen = new BitSet();
      int batchCount = -1;
      int total = 0;
      long first = 0;
      while (batchCount < 0 || seen.cardinality() < batchCount) {
        for (ConsumerRecord<String, byte[]> record : consumer.poll(Duration.ofMillis(100))) {
          if (!request.getJobId().equals(record.key())) {
            continue;
          }
          SoftLabelBatch batch = Topics.SOFT_LABELS.valueSerde().deserializer().deserialize(record.topic(), record.value());
          if (first == 0) {
            first = System.nanoTime();
          }
          batchCount = batch.getBatchCount();
          total = batch.getTotalSamples();
          seen.set(batch.getBatchIndex());
        }
        if (System.nanoTime() - start > TimeUnit.MINUTES.toNanos(30)) {
          throw new IllegalStateException("job did not finish in 30 minutes");
        }
      }
      long end = System.nanoTime();
      return new JobTiming(total, (end - start) / 1e9, (end - first) / 1e9);
    }
  }

  private void publish(int records) throws Exception {
    int classes = 10;
    Random random = new Random(1);
    float[] logits = new float[LABEL_BATCH * classes];
    for (int i = 0; i < logits.length; i++) {
      logits[i] = (float) random.nextGaussian();
    }
    ByteBuffer packed = ByteBuffer.allocate(logits.length * 4).order(java.nio.ByteOrder.LITTLE_ENDIAN);
    packed.asFloatBuffer().put(logits);
    CompressionRequest request = CompressionRequest.newBuilder()
        .setJobId("publish-bench")
        .setTeacher(TeacherSpec.newBuilder().setFormat(ModelFormat.BUILT_IN).setArchitecture("convnet").setWidth(1.0)
            .setCheckpointUri(teacher.toUri().toString()).build())
        .setDataset(DatasetSpec.newBuilder().setLocation(dataset.toString()).setTrainLimit(0).setTestLimit(0).build())
        .setStudent(StudentSpec.newBuilder().setArchitecture("lenet5").setWidth(1.0).build())
        .setDistillation(DistillationSettings.newBuilder().build())
        .setPruning(PruningSettings.newBuilder().build())
        .setStages(List.of(Stage.TEACHER_INFERENCE, Stage.DISTILLATION))
        .build();
    JobContext context = JobContext.newBuilder().setRequest(request).setStageSeconds(Map.of()).build();
    SoftLabelBatch batch = SoftLabelBatch.newBuilder().setJobId("publish-bench").setContext(context)
        .setBatchIndex(0).setBatchCount(records).setTotalSamples(records * LABEL_BATCH).setFirstSample(0)
        .setSampleCount(LABEL_BATCH).setNumClasses(classes).setTemperature(4.0).setScaledLogits(packed).build();
    int recordBytes = Topics.SOFT_LABELS.valueSerde().serializer().serialize("", batch).length;
    say("%d soft-label records of %d bytes (%d samples x %d classes as float32 + context)", records, recordBytes,
        LABEL_BATCH, classes);
    for (int round = 1; round <= 2; round++) {
      publishRound(round, records, recordBytes, batch, Map.of());
    }
    say("with batch.size=262144 on both sides:");
    publishRound(3, records, recordBytes, batch, Map.of("batch.size", "262144"));
  }

  private void publishRound(int round, int records, int recordBytes, SoftLabelBatch batch, Map<String, String> extra)
      throws Exception {
    Map<String, String> keys = new HashMap<>(Map.of("kafka.bootstrap.servers", broker.bootstrapServers()));
    extra.forEach((k, v) -> keys.put("kafka." + k, v));
    {
      try (KafkaProducer<String, byte[]> producer = KafkaClients.producer(ServiceConfig.fromKeys("bench", keys));
          JobEvents events = new JobEvents(producer)) {
        long start = System.nanoTime();
        List<CompletableFuture<?>> acks = new ArrayList<>(records);
        for (int i = 0; i < records; i++) {
          acks.add(events.send(Topics.SOFT_LABELS, "publish-bench", batch));
        }
        CompletableFuture.allOf(acks.toArray(CompletableFuture[]::new)).get(10, TimeUnit.MINUTES);
        double seconds = (System.nanoTime() - start) / 1e9;
        say("round %d: distillery JobEvents (Avro encode + idempotent producer, acks=all): %.0f records/s, %.1f MB/s",
            round, records / seconds, records * (double) recordBytes / seconds / 1e6);
      }
      say("round %d: Kafka ProducerPerformance, same record size, acks=all, idempotence on:", round);
      List<String> tool = new ArrayList<>(List.of("--topic", Topics.SOFT_LABELS.name(), "--num-records",
          String.valueOf(records), "--record-size", String.valueOf(recordBytes), "--throughput", "-1", "--producer-props",
          "bootstrap.servers=" + broker.bootstrapServers(), "acks=all", "enable.idempotence=true", "linger.ms=5"));
      extra.forEach((k, v) -> tool.add(k + "=" + v));
      ProducerPerformance.main(tool.toArray(String[]::new));
    }
  }

  private Process startReplica(int threads, int port, int index) throws Exception {
    ProcessBuilder builder = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-Xmx1g", "-cp", System.getProperty("java.class.path"), TeacherInferenceService.class.getName())
        .redirectErrorStream(true)
        .redirectOutput(work.resolve("replica-" + index + "-" + System.nanoTime() + ".log").toFile());
    Map<String, String> env = builder.environment();
    env.put("KAFKA_BOOTSTRAP_SERVERS", broker.bootstrapServers());
    env.put("DISTILLERY_ARTIFACTS_DIR", work.toString());
    env.put("DISTILLERY_TORCH_THREADS", String.valueOf(threads));
    env.put("DISTILLERY_LABEL_BATCH_SIZE", String.valueOf(LABEL_BATCH));
    env.put("DISTILLERY_SHARD_SIZE", "2048");
    env.put("DISTILLERY_MANAGEMENT_PORT", String.valueOf(port));
    return builder.start();
  }

  private static void awaitReady(int port, Process process) throws Exception {
    HttpClient client = HttpClient.newHttpClient();
    HttpRequest ready = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/ready")).build();
    long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(2);
    while (true) {
      if (!process.isAlive()) {
        throw new IllegalStateException("replica exited with " + process.exitValue());
      }
      try {
        if (client.send(ready, HttpResponse.BodyHandlers.discarding()).statusCode() == 200) {
          return;
        }
      } catch (java.io.IOException e) {
        // not listening yet
      }
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException("replica not ready after 2 minutes");
      }
      TimeUnit.MILLISECONDS.sleep(100);
    }
  }

  private static int freePort() throws Exception {
    try (ServerSocket socket = new ServerSocket(0)) {
      return socket.getLocalPort();
    }
  }

  private static String arg(String[] args, int index, String fallback) {
    return args.length > index ? args[index] : fallback;
  }

  private static void say(String format, Object... args) {
    System.out.printf("[bench] " + format + "%n", args);
  }
}
