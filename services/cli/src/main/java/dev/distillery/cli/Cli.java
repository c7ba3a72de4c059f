package dev.distillery.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import dev.distillery.common.RequestValidation;
import dev.distillery.common.config.AllowedRoots;
import dev.distillery.common.config.ServiceConfig;
import dev.distillery.common.kafka.BrokerProbe;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.JobCancellation;
import dev.distillery.schemas.JobState;
import dev.distillery.schemas.JobStatus;
import dev.distillery.schemas.StageStatus;
import dev.distillery.schemas.json.PlainJson;
import dev.distillery.schemas.kafka.Topic;
import dev.distillery.schemas.kafka.Topics;
import dev.distillery.schemas.kafka.WireFormat;
import dev.distillery.status.JobStatusFold;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneId;
import java.time.format.DateTimeFormatter;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringSerializer;
import picocli.AutoComplete;
import picocli.CommandLine;

/**
 * Distillery's command line (picocli: per-command {@code --help}, {@code generate-completion} for
 * bash and zsh). It talks to Kafka directly, so it works in a pipeline without the job-status
 * service:
 *
 * <pre>
 * distillery submit FILE.json|FILE.yaml [--watch]   validate and publish a request; print its job id
 * distillery watch JOB                               follow a job's progress until it ends
 * distillery list                                     every job and its state
 * distillery result JOB                               a finished job's results
 * distillery cancel JOB [--reason TEXT] [--watch]    ask every stage to stop a job
 * options: --bootstrap-servers HOST:PORT (default $KAFKA_BOOTSTRAP_SERVERS, else localhost:9092),
 *          --output text|json (list, result, submit)
 * </pre>
 *
 * Other Kafka client settings come from the environment as for the services ({@code KAFKA_*},
 * e.g. {@code KAFKA_SECURITY_PROTOCOL}, {@code KAFKA_SASL_JAAS_CONFIG}).
 *
 * Exit status: 0 done (for {@code cancel}: the cancellation was published, or the job was cancelled
 * already), 1 the job failed, 2 bad usage or an invalid request, 3 no such job (or no result yet),
 * 4 the job was cancelled, 5 nothing to cancel: the job had already ended (DONE or FAILED), 6 the
 * Kafka broker did not answer within {@link #BROKER_WAIT}.
 */
public final class Cli {
  /** Exit statuses beyond 0 (done), 1 (failed), 2 (bad usage) and 3 (no such job). */
  static final int CANCELLED = 4;
  static final int ALREADY_ENDED = 5;
  static final int NO_BROKER = 6;
  /** How long a command waits for the broker to answer before it gives up with {@link #NO_BROKER}. */
  static final Duration BROKER_WAIT = Duration.ofSeconds(5);
  private static final DateTimeFormatter TIME =
      DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss").withZone(ZoneId.systemDefault());

  /** How list, result and submit print: for people, or one JSON document for scripts. */
  enum Output { text, json }

  private final Map<String, String> kafka;
  private final WireFormat wire;
  private final RequestValidation validation;
  private final PrintStream out;
  private Output output = Output.text;

  /**
   * {@code kafka}: the Kafka client properties, {@code bootstrap.servers} among them; {@code roots}:
   * where requests may name files, as the services are configured ({@code DISTILLERY_*_ROOTS}).
   */
  public Cli(Map<String, String> kafka, AllowedRoots roots, PrintStream out) {
    this(kafka, WireFormat.SINGLE_OBJECT, roots, out);
  }

  /** As {@link #Cli(Map, AllowedRoots, PrintStream)}, writing and reading the topics as {@code wire} says. */
  public Cli(Map<String, String> kafka, WireFormat wire, AllowedRoots roots, PrintStream out) {
    this.kafka = new HashMap<>(kafka);
    this.wire = wire;
    this.validation = new RequestValidation(roots);
    this.out = out;
  }

  public static void main(String[] args) {
    if (System.getProperty("org.apache.avro.SERIALIZABLE_PACKAGES") == null) {
      System.setProperty("org.apache.avro.SERIALIZABLE_PACKAGES", "dev.distillery.schemas");
    }
    ServiceConfig config = ServiceConfig.load("distillery-cli");
    System.exit(new Cli(config.kafka(), config.wire(), config.roots(), System.out).run(List.of(args)));
  }

  /** Runs one command line; returns the exit status. */
  public int run(List<String> words) {
    PrintWriter writer = new PrintWriter(out, true);
    return new CommandLine(new Commands.Root(this))
        .addSubcommand("generate-completion", new AutoComplete.GenerateCompletion())
        .setOut(writer).setErr(writer)
        .setExecutionExceptionHandler((e, command, parsed) -> {
          out.println("error: " + e.getMessage());
          return 2;
        })
        .execute(words.toArray(String[]::new));
  }

  PrintStream out() {
    return out;
  }

  void bootstrapServers(String servers) {
    kafka.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, servers);
  }

  void output(Output output) {
    this.output = output;
  }

  /**
   * Whether the broker answers within {@link #BROKER_WAIT}; if not, says so (instead of the Kafka
   * client's "Timeout expired while fetching topic metadata" a minute later).
   */
  boolean brokerAnswers() {
    try {
      BrokerProbe.describe(kafka, BROKER_WAIT);
      return true;
    } catch (Exception e) {
      out.printf("error: no Kafka broker answered at %s within %d s (%s); start one, or pass "
              + "--bootstrap-servers HOST:PORT or set KAFKA_BOOTSTRAP_SERVERS%n",
          kafka.get(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG), BROKER_WAIT.toSeconds(), rootCause(e));
      return false;
    }
  }

  private static String rootCause(Throwable e) {
    Throwable cause = e;
    while (cause.getCause() != null && cause.getCause() != cause) {
      cause = cause.getCause();
    }
    return cause.getClass().getSimpleName() + (cause.getMessage() == null ? "" : ": " + cause.getMessage());
  }

  int submit(Path file, boolean watch) throws Exception {
    String text = Files.readString(file);
    String name = file.getFileName().toString();
    JsonNode json = name.endsWith(".yaml") || name.endsWith(".yml")
        ? new YAMLMapper().readTree(text) : PlainJson.MAPPER.readTree(text);
    if (json == null || !json.isObject()) {
      out.println(file + ": not a request (expected an object)");
      return 2;
    }
    ObjectNode object = (ObjectNode) json;
    boolean idGiven = object.hasNonNull("jobId");
    if (!idGiven) {
      object.put("jobId", RequestValidation.newJobId());
    }
    if (!object.hasNonNull("submittedAtMs")) {
      object.put("submittedAtMs", System.currentTimeMillis());
    }
    CompressionRequest request;
    try {
      request = PlainJson.read(object, CompressionRequest.class);
    } catch (PlainJson.InvalidJsonException e) {
      out.println("invalid request: " + e.getMessage());
      return 2;
    }
    List<RequestValidation.Violation> problems = validation.validate(request);
    if (!problems.isEmpty()) {
      out.println("invalid request:");
      problems.forEach(p -> out.println("  " + p));
      return 2;
    }
    // The services would refuse it, and the earlier job's outcome is not this request's answer.
    if (idGiven && JobSnapshot.of(kafka, wire, request.getJobId()).isPresent()) {
      out.println("invalid request:\n  jobId: '" + request.getJobId() + "' is already used by another job; "
          + "choose another, or leave it out and one is made");
      return 2;
    }
    long sentAtMs = System.currentTimeMillis();
    publish(Topics.REQUESTS, request.getJobId(), request);
    out.println(output == Output.json ? PlainJson.MAPPER.createObjectNode().put("jobId", request.getJobId())
        : "submitted " + request.getJobId());
    return watch ? watch(request.getJobId(), sentAtMs) : 0;
  }

  int watch(String jobId) throws Exception {
    return watch(jobId, Long.MAX_VALUE);
  }

  /** Follows a job; a refusal from {@code sentAtMs} on is the answer to a request sent then. */
  private int watch(String jobId, long sentAtMs) throws Exception {
    try (JobWatcher watcher = JobWatcher.forJob(kafka, wire, jobId)) {
      JobWatcher.Outcome outcome = watcher.awaitSubmitted(jobId, sentAtMs, Duration.ofDays(7),
          p -> out.println(ProgressLine.format(p)));
      if (outcome.cancellation() != null) {
        out.printf("job %s CANCELLED %s%n", jobId, describe(outcome.cancellation()));
        return CANCELLED;
      }
      if (outcome.failure() != null) {
        out.printf("job %s FAILED in %s%s: %s%n", jobId, outcome.failure().getStage(),
            outcome.failure().getField() == null ? "" : " (field " + outcome.failure().getField() + ")",
            outcome.failure().getReason());
        return 1;
      }
      out.print(ResultsTable.render(outcome.result()));
      return 0;
    }
  }

  /**
   * {@code cancel JOB [--reason TEXT] [--watch]}: publishes a cancellation of a job that has not
   * ended; with {@code --watch}, then reads the job's outcome from the topics (its cancellation, or
   * the result or failure that came first).
   */
  int cancel(String jobId, String reason, boolean watch) throws Exception {
    Optional<JobStatus> job = JobSnapshot.of(kafka, wire, jobId);
    if (job.isEmpty()) {
      out.println("no job " + jobId);
      return 3;
    }
    JobState state = job.get().getState();
    if (state == JobState.CANCELLED) {
      out.printf("job %s was already CANCELLED %s%n", jobId, describe(job.get().getCancellation()));
      return 0;
    }
    if (JobStatusFold.ended(state)) {
      out.printf("job %s has already ended (%s): nothing to cancel%n", jobId, state);
      return ALREADY_ENDED;
    }
    publish(Topics.CANCELLATIONS, jobId, JobCancellation.newBuilder().setJobId(jobId).setReason(reason)
        .setRequestedBy("cli").setTimestampMs(System.currentTimeMillis()).build());
    out.println("cancellation of " + jobId + " sent");
    if (!watch) {
      return 0;
    }
    try (JobWatcher watcher = JobWatcher.forJob(kafka, wire, jobId)) {
      JobWatcher.Outcome outcome = watcher.await(jobId, Duration.ofMinutes(5), p -> {});
      if (outcome.cancellation() != null) {
        out.printf("job %s CANCELLED %s%n", jobId, describe(outcome.cancellation()));
        return 0;
      }
      out.printf("job %s ended %s before it could be cancelled%n", jobId, outcome.result() != null ? "DONE" : "FAILED");
      return ALREADY_ENDED;
    }
  }

  /** Who cancelled and why, as one line's end. */
  private static String describe(JobCancellation c) {
    if (c == null) {
      return "";
    }
    return "by " + (c.getRequestedBy().isEmpty() ? "a client" : c.getRequestedBy())
        + (c.getReason().isEmpty() ? " (no reason given)" : ": " + c.getReason());
  }

  /** Publishes {@code value} keyed by its job id and waits until the broker has it. */
  private <V> void publish(Topic<V> topic, String jobId, V value) throws Exception {
    Map<String, Object> props = new HashMap<>(kafka);
    props.put(ProducerConfig.ACKS_CONFIG, "all");
    try (KafkaProducer<String, byte[]> producer =
        new KafkaProducer<>(props, new StringSerializer(), new ByteArraySerializer())) {
      byte[] bytes = wire.of(topic).valueSerde().serializer().serialize(topic.name(), value);
      producer.send(new ProducerRecord<>(topic.name(), jobId, bytes)).get(30, TimeUnit.SECONDS);
    }
  }

  int list() {
    Map<String, JobStatus> jobs = JobSnapshot.summaries(kafka, wire);
    if (output == Output.json) {
      out.println(jobs.values().stream().map(job -> PlainJson.write(job).toString())
          .collect(Collectors.joining(",\n  ", "[\n  ", "\n]")));
      return 0;
    }
    out.printf("%-28s %-9s %-19s %s%n", "job", "state", "submitted", "stages");
    jobs.values().forEach(job -> out.printf("%-28s %-9s %-19s %s%n", job.getJobId(), job.getState(),
        job.getSubmittedAtMs() == 0 ? "" : TIME.format(Instant.ofEpochMilli(job.getSubmittedAtMs())),
        job.getStages().stream().map(Cli::stage).collect(Collectors.joining(", "))));
    return 0;
  }

  int result(String jobId) {
    JobStatus job = JobSnapshot.of(kafka, wire, jobId).orElse(null);
    if (job == null) {
      out.println("no job " + jobId);
      return 3;
    }
    if (job.getState() == JobState.CANCELLED) {
      out.printf("job %s was CANCELLED %s; no result%n", jobId, describe(job.getCancellation()));
      return CANCELLED;
    }
    if (job.getFailure() != null && job.getResult() == null) {
      out.printf("job %s FAILED in %s: %s%n", jobId, job.getFailure().getStage(), job.getFailure().getReason());
      return 1;
    }
    if (job.getResult() == null) {
      out.printf("job %s is %s; no result yet%n", jobId, job.getState());
      return 3;
    }
    out.print(output == Output.json ? PlainJson.write(job.getResult()).toString() + "\n" : ResultsTable.render(job.getResult()));
    return 0;
  }

  private static String stage(StageStatus s) {
    if (s.getDone()) {
      return s.getStage() + " done";
    }
    return s.getLatest() == null ? s.getStage().toString()
        : s.getStage() + " " + s.getLatest().getStep() + "/" + s.getLatest().getTotalSteps();
  }
}
