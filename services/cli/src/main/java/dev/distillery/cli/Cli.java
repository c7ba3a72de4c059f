package dev.distillery.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import dev.distillery.common.RequestValidation;
import dev.distillery.common.config.AllowedRoots;
import dev.distillery.common.config.ServiceConfig;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.JobStatus;
import dev.distillery.schemas.StageStatus;
import dev.distillery.schemas.json.PlainJson;
import dev.distillery.schemas.kafka.Topics;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneId;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Distillery's command line. It talks to Kafka directly, so it works in a pipeline without the
 * job-status service:
 *
 * <pre>
 * distillery submit FILE.json|FILE.yaml [--watch]   validate and publish a request; print its job id
 * distillery watch JOB                               follow a job's progress until it ends
 * distillery list                                     every job and its state
 * distillery result JOB                               a finished job's results
 * options: --bootstrap-servers HOST:PORT (default $KAFKA_BOOTSTRAP_SERVERS, else localhost:9092)
 * </pre>
 *
 * Other Kafka client settings come from the environment as for the services ({@code KAFKA_*},
 * e.g. {@code KAFKA_SECURITY_PROTOCOL}, {@code KAFKA_SASL_JAAS_CONFIG}).
 *
 * Exit status: 0 done, 1 the job failed, 2 bad usage or an invalid request, 3 no such job.
 */
public final class Cli {
  private static final DateTimeFormatter TIME =
      DateTimeFormatter.ofPattern("yyyy-MM-dd HH:mm:ss").withZone(ZoneId.systemDefault());

  private final Map<String, String> kafka;
  private final RequestValidation validation;
  private final PrintStream out;

  /**
   * {@code kafka}: the Kafka client properties, {@code bootstrap.servers} among them; {@code roots}:
   * where requests may name files, as the services are configured ({@code DISTILLERY_*_ROOTS}).
   */
  public Cli(Map<String, String> kafka, AllowedRoots roots, PrintStream out) {
    this.kafka = Map.copyOf(kafka);
    this.validation = new RequestValidation(roots);
    this.out = out;
  }

  public static void main(String[] args) {
    if (System.getProperty("org.apache.avro.SERIALIZABLE_PACKAGES") == null) {
      System.setProperty("org.apache.avro.SERIALIZABLE_PACKAGES", "dev.distillery.schemas");
    }
    List<String> words = new ArrayList<>(List.of(args));
    ServiceConfig config = ServiceConfig.load("distillery-cli");
    Map<String, String> kafka = new HashMap<>(config.kafka());
    int option = words.indexOf("--bootstrap-servers");
    if (option >= 0 && option + 1 < words.size()) {
      kafka.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, words.remove(option + 1));
      words.remove(option);
    }
    System.exit(new Cli(kafka, config.roots(), System.out).run(words));
  }

  /** Runs one command; returns the exit status. */
  public int run(List<String> words) {
    try {
      String command = words.isEmpty() ? "" : words.get(0);
      return switch (command) {
        case "submit" -> words.size() >= 2 ? submit(Path.of(words.get(1)), words.contains("--watch")) : usage();
        case "watch" -> words.size() == 2 ? watch(words.get(1)) : usage();
        case "list" -> list();
        case "result" -> words.size() == 2 ? result(words.get(1)) : usage();
        default -> usage();
      };
    } catch (Exception e) {
      out.println("error: " + e.getMessage());
      return 2;
    }
  }

  private int usage() {
    out.println("""
        usage: distillery submit FILE.json|FILE.yaml [--watch]
               distillery watch JOB
               distillery list
               distillery result JOB
        options: --bootstrap-servers HOST:PORT (default $KAFKA_BOOTSTRAP_SERVERS, else localhost:9092)""");
    return 2;
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
    if (idGiven) {
      // The services would refuse it, and the earlier job's outcome is not this request's answer.
      try (JobWatcher watcher = new JobWatcher(kafka)) {
        if (watcher.seen(request.getJobId(), Duration.ofSeconds(30))) {
          out.println("invalid request:\n  jobId: '" + request.getJobId() + "' is already used by another job; "
              + "choose another, or leave it out and one is made");
          return 2;
        }
      }
    }
    Map<String, Object> props = new HashMap<>(kafka);
    props.put(ProducerConfig.ACKS_CONFIG, "all");
    long sentAtMs = System.currentTimeMillis();
    try (KafkaProducer<String, byte[]> producer =
        new KafkaProducer<>(props, new StringSerializer(), new ByteArraySerializer())) {
      producer.send(new ProducerRecord<>(Topics.REQUESTS.name(), request.getJobId(),
          Topics.REQUESTS.valueSerde().serializer().serialize(Topics.REQUESTS.name(), request))).get(30, TimeUnit.SECONDS);
    }
    out.println("submitted " + request.getJobId());
    return watch ? watch(request.getJobId(), sentAtMs) : 0;
  }

  int watch(String jobId) throws Exception {
    return watch(jobId, Long.MAX_VALUE);
  }

  /** Follows a job; a refusal from {@code sentAtMs} on is the answer to a request sent then. */
  private int watch(String jobId, long sentAtMs) throws Exception {
    try (JobWatcher watcher = new JobWatcher(kafka)) {
      JobWatcher.Outcome outcome = watcher.awaitSubmitted(jobId, sentAtMs, Duration.ofDays(7),
          p -> out.println(ProgressLine.format(p)));
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

  int list() {
    Map<String, JobStatus> jobs = JobSnapshot.read(kafka);
    out.printf("%-28s %-9s %-19s %s%n", "job", "state", "submitted", "stages");
    jobs.values().forEach(job -> out.printf("%-28s %-9s %-19s %s%n", job.getJobId(), job.getState(),
        job.getSubmittedAtMs() == 0 ? "" : TIME.format(Instant.ofEpochMilli(job.getSubmittedAtMs())),
        job.getStages().stream().map(Cli::stage).collect(Collectors.joining(", "))));
    return 0;
  }

  int result(String jobId) {
    JobStatus job = JobSnapshot.read(kafka).get(jobId);
    if (job == null) {
      out.println("no job " + jobId);
      return 3;
    }
    if (job.getFailure() != null && job.getResult() == null) {
      out.printf("job %s FAILED in %s: %s%n", jobId, job.getFailure().getStage(), job.getFailure().getReason());
      return 1;
    }
    if (job.getResult() == null) {
      out.printf("job %s is %s; no result yet%n", jobId, job.getState());
      return 3;
    }
    out.print(ResultsTable.render(job.getResult()));
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
