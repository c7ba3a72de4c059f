package dev.distillery.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.distillery.cli.Cli;
import dev.distillery.common.config.ServiceConfig;
import dev.distillery.common.kafka.JobEvents;
import dev.distillery.common.kafka.KafkaClients;
import dev.distillery.common.kafka.KafkaTopics;
import dev.distillery.kafka.embedded.EmbeddedKafkaBroker;
import dev.distillery.pruner.PrunerService;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.DatasetSpec;
import dev.distillery.schemas.DistillationSettings;
import dev.distillery.schemas.JobFailure;
import dev.distillery.schemas.LearningRateSchedule;
import dev.distillery.schemas.ModelFormat;
import dev.distillery.schemas.OptimizerKind;
import dev.distillery.schemas.PruningMethod;
import dev.distillery.schemas.PruningSettings;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.StudentSpec;
import dev.distillery.schemas.TeacherSpec;
import dev.distillery.schemas.json.PlainJson;
import dev.distillery.schemas.kafka.Topics;
import dev.distillery.status.JobStatusService;
import dev.distillery.student.StudentTrainerService;
import dev.distillery.teacher.TeacherInferenceService;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import org.apache.kafka.clients.producer.KafkaProducer;

/**
 * Issue 15's load benchmark: one set of services, each in a JVM of its own (teacher-inference,
 * student-trainer, pruner, job-status) on an in-process broker, and a burst of jobs submitted at
 * once by three clients: a Java {@link KafkaProducer} publishing requests to {@code
 * distillery.requests}, the CLI ({@link Cli}'s {@code submit}, one process per job), and job-status's
 * HTTP API ({@code POST /api/jobs} with a bearer token). With two or more jobs per client, one job
 * of each client is meant not to succeed: the producer's names an unknown student architecture (the
 * planner must fail it naming {@code student.architecture}), the CLI's has a learning rate that
 * diverges (the trainer must fail it naming {@code distillation.learningRate}), and the API's is
 * cancelled through {@code DELETE /api/jobs/{id}} once its distillation has started.
 *
 * <p>It measures jobs per hour (first submission to last outcome), each job's wait before its first
 * progress event and its total time, checks that every job has exactly one outcome on the topics,
 * the one it was meant to have, and that job-status shows each job once with the state its outcome
 * implies; and prints the resident memory of every process at the end.
 *
 * <p>Jobs are the demo's request ({@code DemoMain.request}: convnet teacher, LeNet-5 student with a
 * hard-label baseline, T=4, alpha=0.7, cosine; 80% L1 pruning) with {@code --epochs} epochs of
 * distillation and of fine-tuning. Options: {@code --jobs 21}, {@code --data DIR} (default the
 * shipped subset), {@code --train-limit N}, {@code --test-limit N}, {@code --epochs 2},
 * {@code --torch-threads 1} (per service process), {@code --teacher-epochs 0} (0: an untrained
 * teacher; speed does not depend on its weights), {@code --partitions 3}, {@code --timeout-minutes 90}.
 */
public final class LoadBench {
  private static final Path SUBSET = Path.of("datasets/fashion-mnist-subset").toAbsolutePath();
  private static final Duration READY = Duration.ofMinutes(3);
  /** How long to go on reading the topics after the last outcome, for second outcomes. */
  private static final Duration QUIET = Duration.ofSeconds(20);
  private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
  private static final Pattern SUBMITTED = Pattern.compile("(?m)^submitted (\\S+)$");

  enum Client { JAVA, CLI, HTTP }

  /** What a job is meant to do, and the state it must end in. */
  enum Kind {
    NORMAL("DONE"), INVALID("FAILED"), DIVERGING("FAILED"), CANCELLED("CANCELLED");

    final String state;

    Kind(String state) {
      this.state = state;
    }
  }

  /** One job as its client submitted it; {@code jobId} is null when the submission failed. */
  static final class Submission {
    final Client client;
    final Kind kind;
    String jobId;
    long clientMs;
    String problem;
    /** For the job to cancel: what the API answered, and when (epoch ms). */
    String cancelAnswer;
    long cancelledAtMs;

    Submission(Client client, Kind kind) {
      this.client = client;
      this.kind = kind;
    }
  }

  private final Map<String, String> options;
  private final Path work;
  private final Path dataset;
  private final String token;
  private EmbeddedKafkaBroker broker;
  private Path teacher;
  private final List<ServiceJvm> services = new ArrayList<>();
  private ServiceJvm jobStatus;
  private String doorCheck = "not run";

  private LoadBench(Map<String, String> options, Path work) {
    this.options = options;
    this.work = work;
    this.dataset = Path.of(options.getOrDefault("data", SUBSET.toString())).toAbsolutePath().normalize();
    byte[] random = new byte[16];
    new SecureRandom().nextBytes(random);
    this.token = HexFormat.of().formatHex(random);
  }

  public static void main(String[] args) throws Exception {
    Map<String, String> options = options(args);
    Path work = Files.createTempDirectory("distillery-load");
    new LoadBench(options, work).run();
    // Kafka's and the HTTP client's non-daemon threads would keep the JVM up.
    System.exit(0);
  }

  private int option(String name, int fallback) {
    return Integer.parseInt(options.getOrDefault(name, String.valueOf(fallback)));
  }

  private Path artifacts() {
    return work.resolve("artifacts");
  }

  private void run() throws Exception {
    int jobs = option("jobs", 21);
    int threads = option("torch-threads", 1);
    say("%d jobs from three clients; dataset %s (train limit %s, test limit %s), %d epochs; %d libtorch thread(s) "
            + "per service; %d cores; work directory %s", jobs, dataset, option("train-limit", 0), option("test-limit", 0),
        option("epochs", 2), threads, Runtime.getRuntime().availableProcessors(), work);
    teacher = makeTeacher(threads);
    try (EmbeddedKafkaBroker started = EmbeddedKafkaBroker.start()) {
      broker = started;
      KafkaTopics.ensure(broker.bootstrapServers(), option("partitions", 3));
      say("broker (KRaft, in this JVM) at %s, topics with %d partitions", broker.bootstrapServers(),
          option("partitions", 3));
      try {
        startServices(threads);
        burst(jobs);
      } finally {
        for (ServiceJvm service : services) {
          service.close();
        }
      }
    }
    say("logs and artifacts are in %s", work);
  }

  /** The teacher's checkpoint, made by {@link LoadTeacher} in a JVM of its own. */
  private Path makeTeacher(int threads) throws Exception {
    int epochs = option("teacher-epochs", 0);
    Process process = new ProcessBuilder(ServiceJvm.javaBinary(), "-Xmx1g", "-cp", System.getProperty("java.class.path"),
        LoadTeacher.class.getName(), dataset.toString(), String.valueOf(option("train-limit", 0)),
        artifacts().toString(), String.valueOf(epochs), String.valueOf(Math.max(threads, 2)))
        .redirectError(work.resolve("teacher.log").toFile()).start();
    List<String> lines = new String(process.getInputStream().readAllBytes()).lines().toList();
    if (process.waitFor() != 0 || lines.isEmpty()) {
      throw new IllegalStateException("making the teacher failed: " + lines + "; see " + work.resolve("teacher.log"));
    }
    lines.subList(0, lines.size() - 1).forEach(line -> say("teacher: %s", line));
    Path checkpoint = Path.of(lines.get(lines.size() - 1));
    say("teacher: convnet, %s, %s", epochs == 0 ? "untrained" : epochs + " epochs", checkpoint);
    return checkpoint;
  }

  /** The environment every service and the CLI get: broker, roots and demo.sh's settings. */
  private Map<String, String> environment(int threads) {
    Map<String, String> env = new TreeMap<>();
    env.put("KAFKA_BOOTSTRAP_SERVERS", broker.bootstrapServers());
    env.put("DISTILLERY_ARTIFACTS_DIR", artifacts().toString());
    env.put("DISTILLERY_MODEL_ROOTS", teacher.getParent().toString());
    env.put("DISTILLERY_DATASET_ROOTS", dataset.getParent().toString());
    env.put("DISTILLERY_TORCH_THREADS", String.valueOf(threads));
    env.put("DISTILLERY_API_TOKENS", token);
    // demo.sh's environment, unless bench/run.sh already exported it (it does).
    Map<String, String> demo = Map.of("OPT_OUT_TRACKING", "true",
        "DJL_CACHE_DIR", Path.of(System.getProperty("user.home"), ".djl.ai").toString(),
        "MALLOC_MMAP_MAX_", "0", "MALLOC_TRIM_THRESHOLD_", "100000000000", "MALLOC_TOP_PAD_", "536870912");
    demo.forEach((name, value) -> {
      if (System.getenv(name) == null) {
        env.put(name, value);
      }
    });
    return env;
  }

  private void startServices(int threads) throws Exception {
    Map<String, String> env = environment(threads);
    List<String> jvm = List.of("-Xmx1g", "-Dai.djl.offline=true",
        "-Dorg.apache.avro.SERIALIZABLE_PACKAGES=dev.distillery.schemas");
    Map<String, Class<?>> mains = new LinkedHashMap<>();
    mains.put(TeacherInferenceService.NAME, TeacherInferenceService.class);
    mains.put(StudentTrainerService.NAME, StudentTrainerService.class);
    mains.put(PrunerService.NAME, PrunerService.class);
    mains.put(JobStatusService.NAME, JobStatusService.class);
    long start = System.nanoTime();
    for (Map.Entry<String, Class<?>> main : mains.entrySet()) {
      services.add(ServiceJvm.start(main.getKey(), main.getValue(), jvm, env, work.resolve(main.getKey() + ".log")));
    }
    for (ServiceJvm service : services) {
      service.awaitReady(READY);
    }
    jobStatus = services.get(services.size() - 1);
    say("4 service processes ready in %.1f s (pids %s); job-status API on port %d",
        (System.nanoTime() - start) / 1e9,
        services.stream().map(s -> s.name() + " " + s.pid()).collect(Collectors.joining(", ")), jobStatus.port());
  }

  /** Submits every job at once from the three clients, waits for their outcomes and reports. */
  private void burst(int jobs) throws Exception {
    Map<Client, List<Submission>> plan = plan(jobs);
    try (JobLedger ledger = new JobLedger(broker.bootstrapServers())) {
      ExecutorService clients = Executors.newFixedThreadPool(3);
      CountDownLatch go = new CountDownLatch(1);
      Map<Client, Future<Long>> done = new LinkedHashMap<>();
      done.put(Client.JAVA, clients.submit(() -> timed(go, () -> viaProducer(plan.get(Client.JAVA)))));
      done.put(Client.CLI, clients.submit(() -> timed(go, () -> viaCli(plan.get(Client.CLI)))));
      done.put(Client.HTTP, clients.submit(() -> timed(go, () -> viaApi(plan.get(Client.HTTP)))));
      long burstStart = System.currentTimeMillis();
      go.countDown();
      for (Map.Entry<Client, Future<Long>> client : done.entrySet()) {
        say("%s client: %d submissions in %.1f s", client.getKey(), plan.get(client.getKey()).size(),
            client.getValue().get(10, TimeUnit.MINUTES) / 1000.0);
      }
      clients.shutdown();
      List<Submission> all = plan.values().stream().flatMap(List::stream).toList();
      all.stream().filter(s -> s.problem != null).forEach(s -> say("submission problem (%s): %s", s.client, s.problem));
      List<String> ids = all.stream().map(s -> s.jobId).filter(id -> id != null).toList();

      Duration timeout = Duration.ofMinutes(option("timeout-minutes", 90));
      long deadline = System.nanoTime() + timeout.toNanos();
      long lastReport = System.nanoTime();
      List<Double> loads = new ArrayList<>();
      while (ledger.endedCount(ids) < ids.size() && System.nanoTime() < deadline && servicesAlive()) {
        for (Submission s : all) {
          if (s.kind == Kind.CANCELLED && s.jobId != null && s.cancelAnswer == null
              && ledger.started(s.jobId, Stage.DISTILLATION)) {
            cancel(s, ledger);
          }
        }
        if (System.nanoTime() - lastReport > TimeUnit.SECONDS.toNanos(60)) {
          lastReport = System.nanoTime();
          loads.add(loadAverage());
          say("%.0f s: %d of %d jobs have an outcome; load average %.1f; RSS %s",
              (System.currentTimeMillis() - burstStart) / 1000.0, ledger.endedCount(ids), ids.size(),
              loads.get(loads.size() - 1), services.stream().map(this::rss).collect(Collectors.joining(", ")));
        }
        TimeUnit.MILLISECONDS.sleep(250);
      }
      say("%d of %d jobs have an outcome; reading the topics %d s more for second outcomes",
          ledger.endedCount(ids), ids.size(), QUIET.toSeconds());
      TimeUnit.MILLISECONDS.sleep(QUIET.toMillis());
      Map<String, String> expected = new HashMap<>();
      Map<String, JobLedger.Job> soFar = ledger.jobs();
      ids.forEach(id -> expected.put(id, soFar.containsKey(id) ? soFar.get(id).expectedState() : null));
      StatusView statuses = statuses(expected);
      List<String> memory = memory();
      ledger.close();
      report(all, ledger, statuses, memory, burstStart);
      if (!loads.isEmpty()) {
        say("1-minute load average, sampled every minute during the run: min %.1f, mean %.1f, max %.1f (%d cores)",
            Collections.min(loads), loads.stream().mapToDouble(Double::doubleValue).average().orElse(0),
            Collections.max(loads), Runtime.getRuntime().availableProcessors());
      }
    }
  }

  private interface Work {
    void run() throws Exception;
  }

  private static long timed(CountDownLatch go, Work work) throws Exception {
    go.await();
    long start = System.currentTimeMillis();
    work.run();
    return System.currentTimeMillis() - start;
  }

  private boolean servicesAlive() {
    for (ServiceJvm service : services) {
      if (!service.alive()) {
        say("%s's process has exited; see %s", service.name(), service.log());
        return false;
      }
    }
    return true;
  }

  /** {@code jobs} spread over the clients; with two or more each, one of each is a job not meant to succeed. */
  private static Map<Client, List<Submission>> plan(int jobs) {
    Map<Client, List<Submission>> plan = new LinkedHashMap<>();
    Map<Client, Kind> special = Map.of(Client.JAVA, Kind.INVALID, Client.CLI, Kind.DIVERGING, Client.HTTP, Kind.CANCELLED);
    for (Client client : Client.values()) {
      int count = jobs / 3 + (client.ordinal() < jobs % 3 ? 1 : 0);
      List<Submission> list = new ArrayList<>();
      for (int i = 0; i < count; i++) {
        // In the middle of the client's burst: the jobs after it show it disturbs nothing.
        list.add(new Submission(client, count >= 2 && i == count / 2 ? special.get(client) : Kind.NORMAL));
      }
      plan.put(client, list);
    }
    return plan;
  }

  /** The demo's request (DemoMain.request) with this run's dataset and epochs, made to fail as {@code kind} says. */
  private CompressionRequest request(String jobId, Kind kind) {
    int epochs = option("epochs", 2);
    CompressionRequest.Builder request = CompressionRequest.newBuilder()
        .setJobId(jobId)
        .setSubmittedAtMs(System.currentTimeMillis())
        .setTeacher(TeacherSpec.newBuilder().setFormat(ModelFormat.BUILT_IN).setArchitecture("convnet").setWidth(1.0)
            .setCheckpointUri(teacher.toUri().toString()).build())
        .setDataset(DatasetSpec.newBuilder().setLocation(dataset.toString()).setTrainLimit(option("train-limit", 0))
            .setTestLimit(option("test-limit", 0)).build())
        .setStudent(StudentSpec.newBuilder().setArchitecture("lenet5").setWidth(1.0).build())
        .setDistillation(DistillationSettings.newBuilder().setTemperature(4.0).setAlpha(0.7).setEpochs(epochs)
            .setBatchSize(64).setLearningRate(0.002).setSeed(42L).setSchedule(LearningRateSchedule.COSINE)
            .setHardLabelBaseline(true).build())
        .setPruning(PruningSettings.newBuilder().setMethod(PruningMethod.L1_UNSTRUCTURED).setTargetSparsity(0.8)
            .setFineTuneEpochs(epochs).setLearningRate(0.001).build())
        .setStages(List.of(Stage.TEACHER_INFERENCE, Stage.DISTILLATION, Stage.PRUNING))
        .setOutputUri(null);
    if (kind == Kind.INVALID) {
      request.setStudent(StudentSpec.newBuilder().setArchitecture("resnet-9000").setWidth(1.0).build());
    } else if (kind == Kind.DIVERGING) {
      // Passes every client's validation (a positive rate); only training tells.
      request.setDistillation(DistillationSettings.newBuilder(request.getDistillation()).setHardLabelBaseline(false)
          .setOptimizer(OptimizerKind.SGD).setLearningRate(1e30).build())
          .setStages(List.of(Stage.TEACHER_INFERENCE, Stage.DISTILLATION));
    }
    return request.build();
  }

  /** The request as a user writes it for the CLI or the API: JSON, no job id (one is made), no time. */
  private String json(Kind kind) {
    ObjectNode json = (ObjectNode) PlainJson.write(request("", kind));
    json.remove("jobId");
    json.remove("submittedAtMs");
    return json.toString();
  }

  /** The Java client: one producer publishing every request, then waiting for the acknowledgements. */
  private void viaProducer(List<Submission> jobs) throws Exception {
    String suffix = Long.toString(System.currentTimeMillis(), 36);
    KafkaProducer<String, byte[]> producer = KafkaClients.producer(ServiceConfig.fromKeys("load-bench-producer",
        Map.of("kafka.bootstrap.servers", broker.bootstrapServers())));
    JobEvents events = new JobEvents(producer);
    try {
      List<CompletableFuture<?>> acks = new ArrayList<>();
      for (int i = 0; i < jobs.size(); i++) {
        Submission s = jobs.get(i);
        s.jobId = "java-" + suffix + "-" + i;
        s.clientMs = System.currentTimeMillis();
        acks.add(events.send(Topics.REQUESTS, s.jobId, request(s.jobId, s.kind)));
      }
      for (int i = 0; i < acks.size(); i++) {
        try {
          acks.get(i).get(1, TimeUnit.MINUTES);
        } catch (Exception e) {
          jobs.get(i).problem = "not acknowledged: " + e;
        }
      }
    } finally {
      producer.close(Duration.ofSeconds(30));
      events.close();
    }
  }

  /** The CLI: {@code distillery submit FILE.json}, one process per job, all started at once. */
  private void viaCli(List<Submission> jobs) throws Exception {
    Path requests = Files.createDirectories(work.resolve("requests"));
    List<Process> processes = new ArrayList<>();
    for (int i = 0; i < jobs.size(); i++) {
      Path file = requests.resolve("cli-" + i + ".json");
      Files.writeString(file, json(jobs.get(i).kind));
      ProcessBuilder builder = new ProcessBuilder(ServiceJvm.javaBinary(), "-Xmx256m", "-cp",
          System.getProperty("java.class.path"), Cli.class.getName(), "submit", file.toString())
          .redirectErrorStream(true);
      builder.environment().putAll(environment(1));
      jobs.get(i).clientMs = System.currentTimeMillis();
      processes.add(builder.start());
    }
    for (int i = 0; i < jobs.size(); i++) {
      Process process = processes.get(i);
      String out = new String(process.getInputStream().readAllBytes());
      int exit = process.waitFor();
      Matcher id = SUBMITTED.matcher(out);
      if (exit == 0 && id.find()) {
        jobs.get(i).jobId = id.group(1);
      } else {
        jobs.get(i).problem = "distillery submit exited with " + exit + ": " + out.strip();
      }
    }
  }

  /** The HTTP API: {@code POST /api/jobs} with the bearer token, one request after the other. */
  private void viaApi(List<Submission> jobs) throws Exception {
    for (Submission s : jobs) {
      s.clientMs = System.currentTimeMillis();
      HttpResponse<String> answer = api("POST", "/api/jobs", json(s.kind));
      if (answer.statusCode() == 202) {
        s.jobId = PlainJson.MAPPER.readTree(answer.body()).get("jobId").asText();
      } else {
        s.problem = "POST /api/jobs answered " + answer.statusCode() + ": " + answer.body();
      }
    }
    // An invalid request is refused at the door and makes no job.
    HttpResponse<String> refused = api("POST", "/api/jobs", json(Kind.INVALID));
    doorCheck = refused.statusCode() + " " + refused.body();
  }

  private HttpResponse<String> api(String method, String path, String body) throws Exception {
    HttpRequest.Builder request = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + jobStatus.port() + path))
        .timeout(Duration.ofSeconds(60)).header("Authorization", "Bearer " + token);
    if (body == null) {
      request.method(method, HttpRequest.BodyPublishers.noBody());
    } else {
      request.header("Content-Type", "application/json").method(method, HttpRequest.BodyPublishers.ofString(body));
    }
    return HTTP.send(request.build(), HttpResponse.BodyHandlers.ofString());
  }

  private void cancel(Submission s, JobLedger ledger) throws Exception {
    if (ledger.ended(s.jobId)) {
      s.cancelAnswer = "not sent: the job ended before its distillation was seen";
      return;
    }
    s.cancelledAtMs = System.currentTimeMillis();
    HttpResponse<String> answer = api("DELETE", "/api/jobs/" + s.jobId, "{\"reason\": \"load benchmark\"}");
    s.cancelAnswer = answer.statusCode() + (answer.statusCode() == 202 ? "" : " " + answer.body());
    say("cancelled %s once its distillation had started: %s", s.jobId, s.cancelAnswer);
  }

  /** What job-status's API shows: each job's status by id, and how often each id is in the list. */
  private record StatusView(Map<String, String> byId, Map<String, Integer> listed, List<String> problems) {}

  /**
   * Waits up to a minute for job-status to show every job in the state its outcome implies (it
   * folds asynchronously), then reads the list and each job.
   */
  private StatusView statuses(Map<String, String> expected) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(1);
    Map<String, Integer> listed = new TreeMap<>();
    Map<String, String> listedState = new TreeMap<>();
    List<String> problems = new ArrayList<>();
    while (true) {
      listed.clear();
      listedState.clear();
      HttpResponse<String> list = api("GET", "/api/jobs", null);
      if (list.statusCode() == 200) {
        for (JsonNode status : PlainJson.MAPPER.readTree(list.body())) {
          String id = status.get("jobId").asText();
          listed.merge(id, 1, Integer::sum);
          listedState.put(id, status.get("state").asText());
        }
      }
      boolean settled = expected.entrySet().stream()
          .allMatch(e -> e.getValue() == null || e.getValue().equals(listedState.get(e.getKey())));
      if (settled || System.nanoTime() > deadline) {
        if (list.statusCode() != 200) {
          problems.add("GET /api/jobs answered " + list.statusCode() + ": " + list.body());
        }
        break;
      }
      TimeUnit.SECONDS.sleep(1);
    }
    Map<String, String> byId = new TreeMap<>();
    for (String id : expected.keySet()) {
      HttpResponse<String> one = api("GET", "/api/jobs/" + id, null);
      byId.put(id, one.statusCode() == 200 ? PlainJson.MAPPER.readTree(one.body()).get("state").asText()
          : "HTTP " + one.statusCode());
    }
    return new StatusView(byId, listed, problems);
  }

  private static double loadAverage() {
    try {
      return Double.parseDouble(Files.readString(Path.of("/proc/loadavg")).split(" ")[0]);
    } catch (Exception e) {
      return Double.NaN;
    }
  }

  private String rss(ServiceJvm service) {
    try {
      return service.name() + " " + ProcessMemory.status(service.pid(), "VmRSS");
    } catch (Exception e) {
      return service.name() + " ?";
    }
  }

  /** Every process's resident memory now and at its peak, and the Java heap it has committed. */
  private List<String> memory() throws Exception {
    List<String> rows = new ArrayList<>();
    for (ServiceJvm service : services) {
      long pid = service.pid();
      rows.add(String.format("| %s | %d | %s | %s | %s |", service.name(), pid, ProcessMemory.status(pid, "VmRSS"),
          ProcessMemory.status(pid, "VmHWM"), ProcessMemory.heapCommitted(pid)));
    }
    long self = ProcessHandle.current().pid();
    rows.add(String.format("| harness: broker, ledger, Java and HTTP clients | %d | %s | %s | %s |", self,
        ProcessMemory.status(self, "VmRSS"), ProcessMemory.status(self, "VmHWM"), ProcessMemory.heapCommitted(self)));
    return rows;
  }

  private void report(List<Submission> all, JobLedger ledger, StatusView statuses, List<String> memory,
      long burstStart) {
    Map<String, JobLedger.Job> jobs = ledger.jobs();
    List<Submission> submitted = all.stream().filter(s -> s.jobId != null).toList();
    long firstSubmission = submitted.stream().map(s -> jobs.get(s.jobId))
        .filter(j -> j != null && !j.requestsMs.isEmpty()).mapToLong(j -> Collections.min(j.requestsMs))
        .min().orElse(burstStart);
    long lastOutcome = submitted.stream().map(s -> jobs.get(s.jobId)).filter(j -> j != null && j.outcomes() > 0)
        .mapToLong(j -> j.firstOutcomeMs()).max().orElse(firstSubmission);
    double hours = (lastOutcome - firstSubmission) / 3_600_000.0;

    List<String> bad = new ArrayList<>();
    System.out.println();
    System.out.println("| # | client | meant | job | submitted, s | wait to first progress, s | total, s | in stages, s "
        + "(teacher + distillation + pruning) | retries | on the topics | job-status | as meant |");
    System.out.println("|---|---|---|---|---|---|---|---|---|---|---|---|");
    int row = 0;
    int ended = 0;
    int done = 0;
    List<Double> waits = new ArrayList<>();
    List<Double> doneTotals = new ArrayList<>();
    List<Double> doneInStages = new ArrayList<>();
    Map<String, List<Double>> byStage = new TreeMap<>();
    for (Submission s : all) {
      row++;
      if (s.jobId == null) {
        bad.add(s.client + " submission failed: " + s.problem);
        System.out.printf("| %d | %s | %s | - | not submitted: %s | | | | | | | no |%n", row, s.client, s.kind.state,
            s.problem);
        continue;
      }
      JobLedger.Job job = jobs.getOrDefault(s.jobId, new JobLedger.Job(s.jobId));
      long requested = job.requestsMs.isEmpty() ? 0 : Collections.min(job.requestsMs);
      String wait = job.firstProgressAnyMs == 0 || requested == 0 ? "-"
          : String.format("%.1f", (job.firstProgressAnyMs - requested) / 1000.0);
      if (job.firstProgressAnyMs != 0 && requested != 0) {
        waits.add((job.firstProgressAnyMs - requested) / 1000.0);
      }
      String total = job.outcomes() == 0 || requested == 0 ? "-"
          : String.format("%.1f", (job.firstOutcomeMs() - requested) / 1000.0);
      String inStages = job.result == null ? "-" : stageSeconds(job.result.getStageSeconds());
      String state = statuses.byId().getOrDefault(s.jobId, "?");
      int listed = statuses.listed().getOrDefault(s.jobId, 0);
      List<String> wrong = verdict(s, job, state, listed);
      if (job.outcomes() > 0) {
        ended++;
      }
      if (job.resultsMs.size() > 0 && s.kind == Kind.NORMAL) {
        done++;
        doneTotals.add((job.firstOutcomeMs() - requested) / 1000.0);
        doneInStages.add(job.result.getStageSeconds().values().stream().mapToDouble(Double::doubleValue).sum());
        job.result.getStageSeconds().forEach((stage, sec) -> byStage.computeIfAbsent(stage, k -> new ArrayList<>()).add(sec));
      }
      wrong.forEach(w -> bad.add(s.jobId + " (" + s.client + ", meant " + s.kind.state + "): " + w));
      System.out.printf("| %d | %s | %s | `%s` | %.1f | %s | %s | %s | %d | %s | %s%s | %s |%n", row, s.client,
          s.kind.state, s.jobId, requested == 0 ? Double.NaN : (requested - firstSubmission) / 1000.0, wait, total,
          inStages, job.retries.size(), job.outcomeRecords() + failureNote(job), state,
          listed == 1 ? "" : " (listed " + listed + "x)", wrong.isEmpty() ? "yes" : "**no**");
    }
    System.out.println();
    for (Submission s : all) {
      if (s.kind == Kind.CANCELLED && s.jobId != null) {
        JobLedger.Job job = jobs.get(s.jobId);
        say("cancellation of %s: API answered %s; its last outcome %.1f s after the DELETE", s.jobId, s.cancelAnswer,
            job == null || job.outcomes() == 0 || s.cancelledAtMs == 0 ? Double.NaN
                : (job.firstOutcomeMs() - s.cancelledAtMs) / 1000.0);
      }
    }
    say("an invalid request POSTed to the API: %s", doorCheck);
    statuses.listed().keySet().stream().filter(id -> submitted.stream().noneMatch(s -> id.equals(s.jobId)))
        .forEach(id -> bad.add("job-status lists a job nobody submitted: " + id));
    jobs.values().stream().filter(j -> submitted.stream().noneMatch(s -> j.id.equals(s.jobId)))
        .forEach(j -> bad.add("the topics hold a job nobody submitted: " + j.id + " (" + j.outcomeRecords() + ")"));
    ledger.deadLetters().forEach(d -> bad.add("dead-lettered by " + d.service() + " from " + d.sourceTopic()
        + ", key " + d.key() + ": " + d.reason()));
    ledger.undecodable().forEach(u -> bad.add("undecodable record on " + u));
    statuses.problems().forEach(bad::add);
    jobs.values().forEach(j -> j.retries.forEach(r -> say("retry in %s: %s", j.id, r)));
    jobs.values().forEach(j -> j.stops.forEach(r -> say("stop in %s: %s", j.id, r)));

    say("jobs submitted: %d of %d; with an outcome: %d; completed as meant (DONE): %d", submitted.size(), all.size(),
        ended, done);
    say("first submission to last outcome: %.1f s: %.1f jobs/hour (all outcomes), %.1f completed jobs/hour", hours * 3600,
        hours == 0 ? 0 : ended / hours, hours == 0 ? 0 : done / hours);
    jobs.values().stream().filter(j -> j.result != null).findFirst()
        .ifPresent(j -> say("libtorch kernels by stage (%s's result; why: the services' logs): %s", j.id,
            new TreeMap<>(j.result.getStageKernels()).entrySet().stream()
                .map(e -> e.getKey() + " " + e.getValue().split(" \\(")[0]).collect(Collectors.joining(", "))));
    spread("wait before the first progress event", waits);
    spread("completed jobs, submission to result", doneTotals);
    spread("completed jobs, time in their stages (the result's stage seconds)", doneInStages);
    byStage.forEach((stage, seconds) -> spread("completed jobs, " + stage, seconds));
    System.out.println();
    System.out.println("| process | pid | RSS at the end | peak RSS (VmHWM) | Java heap committed |");
    System.out.println("|---|---|---|---|---|");
    memory.forEach(System.out::println);
    System.out.println();
    if (bad.isEmpty()) {
      say("every job ended once, as meant, and job-status shows each once with that state");
    } else {
      say("%d problem(s):", bad.size());
      bad.forEach(b -> say("  %s", b));
    }
    say("burst started %s", Instant.ofEpochMilli(burstStart));
  }

  /** A result's seconds per stage, in pipeline order: "12.0 + 20.1 + 8.3 = 40.4". */
  private static String stageSeconds(Map<String, Double> seconds) {
    List<String> parts = new ArrayList<>();
    for (Stage stage : List.of(Stage.TEACHER_INFERENCE, Stage.DISTILLATION, Stage.TRANSFER, Stage.PRUNING)) {
      Double s = seconds.get(stage.name());
      if (s != null) {
        parts.add(String.format("%.1f", s));
      }
    }
    return String.join(" + ", parts) + String.format(" = %.1f",
        seconds.values().stream().mapToDouble(Double::doubleValue).sum());
  }

  private static void spread(String what, List<Double> seconds) {
    if (seconds.isEmpty()) {
      return;
    }
    List<Double> sorted = seconds.stream().sorted().toList();
    int n = sorted.size();
    say("%s (%d jobs): median %.1f s, min %.1f s, max %.1f s", what, n, (sorted.get((n - 1) / 2) + sorted.get(n / 2)) / 2,
        sorted.get(0), sorted.get(n - 1));
  }

  private static String failureNote(JobLedger.Job job) {
    if (job.failures.isEmpty()) {
      return "";
    }
    JobFailure f = job.failures.get(0);
    return " (" + f.getStage() + (f.getField() == null ? "" : ", " + f.getField()) + ")";
  }

  /** What is wrong with a job: empty when it ended once, as meant, and job-status agrees. */
  private static List<String> verdict(Submission s, JobLedger.Job job, String state, int listed) {
    List<String> wrong = new ArrayList<>();
    if (job.requestsMs.size() != 1) {
      wrong.add(job.requestsMs.size() + " requests on the topic");
    }
    if (job.outcomes() == 0) {
      wrong.add("lost: no outcome on the topics");
    } else if (job.outcomes() > 1) {
      wrong.add("more than one outcome: " + job.outcomeRecords());
    }
    String outcome = job.expectedState();
    if (outcome != null && !outcome.equals(s.kind.state)) {
      wrong.add("ended " + outcome + failureNote(job) + (job.failures.isEmpty() ? "" : ": " + job.failures.get(0).getReason()));
    }
    if (s.kind == Kind.INVALID && !job.failures.isEmpty() && !"student.architecture".equals(job.failures.get(0).getField())) {
      wrong.add("failure names field " + job.failures.get(0).getField() + ", not student.architecture");
    }
    if (s.kind == Kind.DIVERGING && !job.failures.isEmpty()
        && !"distillation.learningRate".equals(job.failures.get(0).getField())) {
      wrong.add("failure names field " + job.failures.get(0).getField() + ", not distillation.learningRate");
    }
    if (outcome != null && !outcome.equals(state)) {
      wrong.add("job-status shows " + state + ", the topics say " + outcome);
    }
    if (listed != 1) {
      wrong.add("listed " + listed + " times by GET /api/jobs");
    }
    if (!job.refusals.isEmpty()) {
      wrong.add(job.refusals.size() + " refusal(s) of its request: " + job.refusals.get(0).getReason());
    }
    return wrong;
  }

  private static Map<String, String> options(String[] args) {
    Map<String, String> options = new TreeMap<>();
    for (int i = 0; i + 1 < args.length; i += 2) {
      if (!args[i].startsWith("--")) {
        throw new IllegalArgumentException("expected --option value, got " + args[i]);
      }
      options.put(args[i].substring(2), args[i + 1]);
    }
    if (args.length % 2 != 0) {
      throw new IllegalArgumentException("expected --option value pairs, got " + List.of(args));
    }
    return options;
  }

  private static void say(String format, Object... args) {
    System.out.printf("[load] " + format + "%n", args);
  }
}
