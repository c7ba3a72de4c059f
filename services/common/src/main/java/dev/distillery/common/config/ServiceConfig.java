package dev.distillery.common.config;

import dev.distillery.schemas.kafka.SchemaRegistry;
import dev.distillery.schemas.kafka.WireFormat;
import java.io.IOException;
import java.io.Reader;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Stream;

/**
 * Typed configuration of one service, read from defaults, then an optional properties file
 * ({@code DISTILLERY_CONFIG}), then environment variables, later sources winning.
 *
 * <p>Environment names map to keys mechanically: {@code DISTILLERY_WORKER_THREADS} is
 * {@code worker.threads}, and every {@code KAFKA_*} variable is passed to the Kafka clients, so
 * {@code KAFKA_BOOTSTRAP_SERVERS} becomes {@code bootstrap.servers}.
 *
 * @param service the service's name, also its consumer group and client id prefix
 * @param kafka properties passed through to every Kafka client
 * @param wire how topic values are written: single-object encoding, or Confluent's wire format
 *     through the schema registry at {@code schema.registry.url} (its {@code schema.registry.user.info},
 *     {@code user:password}, and the {@code schema.registry.compatibility} rule set on each subject)
 * @param artifactsDir where checkpoints are written unless a request names another place
 * @param roots the directories requests may name, by kind ({@code model.roots}, {@code dataset.roots},
 *     {@code artifact.roots}, comma-separated; {@code artifactsDir} is always an artifact root)
 * @param api who may use the HTTP API of job-status ({@code api.*})
 * @param workerThreads size of the bounded pool that runs DJL work
 * @param torchThreads intra-op threads libtorch may use
 * @param managementPort HTTP port of /health, /ready and /metrics; 0 picks a free port
 * @param shardSize training samples per teacher-inference shard (rounded up to whole batches)
 * @param labelBatchSize samples per soft-label record
 * @param maxPendingJobs jobs whose soft labels a trainer assembles at once; more are failed
 * @param reliability attempts, back-off, job leases and status retention ({@link Reliability})
 */
public record ServiceConfig(
    String service,
    Map<String, String> kafka,
    WireFormat wire,
    Path artifactsDir,
    AllowedRoots roots,
    ApiAccess api,
    int workerThreads,
    int torchThreads,
    int managementPort,
    int shardSize,
    int labelBatchSize,
    int maxPendingJobs,
    Reliability reliability) {

  /**
   * How a stage rides out faults.
   *
   * @param maxAttempts attempts of one job in one stage, counting in-process retries of a retryable
   *     error and processes that died while working on it ({@code max.attempts})
   * @param retryBackoff the wait before the first retry, doubled for each next one up to a minute
   *     ({@code retry.backoff.ms})
   * @param lease how long a job's lease outlives its holder's last renewal, before another process may
   *     take the job over ({@code lease.ms})
   * @param statusRetention how long job-status keeps a job after it ended ({@code status.retention.ms})
   */
  public record Reliability(int maxAttempts, Duration retryBackoff, Duration lease, Duration statusRetention) {}

  private static final String KAFKA_PREFIX = "kafka.";
  private static final Path HOME = Path.of(System.getProperty("user.home"), ".distillery");
  private static final Map<String, String> DEFAULTS = Map.ofEntries(
      Map.entry("kafka.bootstrap.servers", "localhost:9092"),
      Map.entry("artifacts.dir", HOME.resolve("artifacts").toString()),
      Map.entry("model.roots", HOME.resolve("models").toString()),
      Map.entry("dataset.roots", HOME.resolve("datasets") + ",/usr/share/datasets"),
      Map.entry("artifact.roots", ""),
      Map.entry("schema.registry.url", ""),
      Map.entry("schema.registry.user.info", ""),
      // Each released schema reads, and is read by, every earlier one (SchemaCompatibilityTest).
      Map.entry("schema.registry.compatibility", "FULL_TRANSITIVE"),
      Map.entry("api.tokens", ""),
      Map.entry("api.tokens.file", ""),
      Map.entry("api.allowed.origins", ""),
      Map.entry("metrics.require.token", "false"),
      Map.entry("max.pending.jobs", "32"),
      Map.entry("worker.threads", "1"),
      Map.entry("torch.threads", String.valueOf(Math.max(1, Runtime.getRuntime().availableProcessors()))),
      Map.entry("management.port", "0"),
      Map.entry("shard.size", "4096"),
      Map.entry("label.batch.size", "256"),
      Map.entry("max.attempts", "3"),
      Map.entry("retry.backoff.ms", "2000"),
      Map.entry("lease.ms", "30000"),
      Map.entry("status.retention.ms", String.valueOf(Duration.ofDays(7).toMillis())));

  /**
   * Whether a service reads environment variable {@code name}: {@code DISTILLERY_CONFIG}, a
   * {@code DISTILLERY_*} variable of a known key, or a {@code KAFKA_*} variable (whose key the
   * Kafka clients must know: see {@link #kafkaKey}).
   */
  public static boolean readsVariable(String name) {
    if (name.equals("DISTILLERY_CONFIG")) {
      return true;
    }
    if (name.startsWith("DISTILLERY_")) {
      return DEFAULTS.containsKey(toKey(name.substring("DISTILLERY_".length())));
    }
    return name.startsWith("KAFKA_");
  }

  /** The Kafka client property a {@code KAFKA_*} variable sets, e.g. {@code bootstrap.servers}. */
  public static String kafkaKey(String variable) {
    return toKey(variable.substring("KAFKA_".length()));
  }

  /** Reads the configuration of {@code service} from the process environment. */
  public static ServiceConfig load(String service) {
    return from(service, System.getenv());
  }

  /** Reads the configuration of {@code service} from the given environment. */
  public static ServiceConfig from(String service, Map<String, String> env) {
    Map<String, String> keys = new TreeMap<>(DEFAULTS);
    String file = env.get("DISTILLERY_CONFIG");
    if (file != null && !file.isBlank()) {
      keys.putAll(readProperties(Path.of(file)));
    }
    env.forEach((name, value) -> {
      if (name.startsWith("KAFKA_")) {
        keys.put(KAFKA_PREFIX + toKey(name.substring("KAFKA_".length())), value);
      } else if (name.startsWith("DISTILLERY_") && !name.equals("DISTILLERY_CONFIG")) {
        keys.put(toKey(name.substring("DISTILLERY_".length())), value);
      }
    });
    return fromAllKeys(service, keys);
  }

  /** Builds the configuration from flat keys ({@code kafka.*} go to the clients); absent keys take defaults. */
  public static ServiceConfig fromKeys(String service, Map<String, String> keys) {
    Map<String, String> all = new TreeMap<>(DEFAULTS);
    all.putAll(keys);
    return fromAllKeys(service, all);
  }

  private static ServiceConfig fromAllKeys(String service, Map<String, String> keys) {
    Map<String, String> kafka = new TreeMap<>();
    keys.forEach((k, v) -> {
      if (k.startsWith(KAFKA_PREFIX)) {
        kafka.put(k.substring(KAFKA_PREFIX.length()), v);
      }
    });
    String artifacts = required(keys, "artifacts.dir");
    return new ServiceConfig(
        service,
        Map.copyOf(kafka),
        wire(keys),
        Path.of(artifacts),
        new AllowedRoots(paths(keys.get("model.roots")), paths(keys.get("dataset.roots")),
            paths(artifacts + "," + keys.get("artifact.roots"))),
        new ApiAccess(tokens(keys), list(keys.get("api.allowed.origins")),
            Boolean.parseBoolean(keys.get("metrics.require.token").trim())),
        positive(keys, "worker.threads"),
        positive(keys, "torch.threads"),
        Integer.parseInt(required(keys, "management.port")),
        positive(keys, "shard.size"),
        positive(keys, "label.batch.size"),
        positive(keys, "max.pending.jobs"),
        new Reliability(positive(keys, "max.attempts"), millis(keys, "retry.backoff.ms"), millis(keys, "lease.ms"),
            millis(keys, "status.retention.ms")));
  }

  /** The same configuration for another stage of the process, with its own consumer group. */
  public ServiceConfig withService(String name) {
    return new ServiceConfig(name, kafka, wire, artifactsDir, roots, api, workerThreads, torchThreads, managementPort,
        shardSize, labelBatchSize, maxPendingJobs, reliability);
  }

  private static WireFormat wire(Map<String, String> keys) {
    String url = keys.get("schema.registry.url").trim();
    return url.isEmpty() ? WireFormat.SINGLE_OBJECT : WireFormat.registry(new SchemaRegistry(url,
        keys.get("schema.registry.user.info"), keys.get("schema.registry.compatibility")));
  }

  private static Set<String> tokens(Map<String, String> keys) {
    Set<String> tokens = new TreeSet<>(list(keys.get("api.tokens")));
    String file = keys.get("api.tokens.file");
    if (!file.isBlank()) {
      try {
        Files.readAllLines(Path.of(file.trim())).stream().map(String::trim).filter(t -> !t.isEmpty())
            .forEach(tokens::add);
      } catch (IOException e) {
        throw new UncheckedIOException("cannot read api.tokens.file " + file, e);
      }
      // A token file named but empty is a Secret nobody filled in: making one and logging it would
      // put a working token in the pod's logs, and change it at every restart.
      if (tokens.isEmpty()) {
        throw new IllegalArgumentException("api.tokens.file " + file + " holds no token: put one per line");
      }
    }
    return tokens;
  }

  private static List<Path> paths(String commaSeparated) {
    return list(commaSeparated).stream().map(Path::of).toList();
  }

  private static List<String> list(String commaSeparated) {
    return Stream.of(commaSeparated.split(",")).map(String::trim).filter(s -> !s.isEmpty()).toList();
  }

  private static String toKey(String envSuffix) {
    return envSuffix.toLowerCase(Locale.ROOT).replace('_', '.');
  }

  private static String required(Map<String, String> keys, String key) {
    String value = keys.get(key);
    if (value == null || value.isBlank()) {
      throw new IllegalArgumentException("configuration key '" + key + "' is missing");
    }
    return value;
  }

  private static int positive(Map<String, String> keys, String key) {
    String raw = required(keys, key);
    try {
      int value = Integer.parseInt(raw.trim());
      if (value < 1) {
        throw new IllegalArgumentException("configuration key '" + key + "' must be at least 1, was " + raw);
      }
      return value;
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("configuration key '" + key + "' must be an integer, was " + raw, e);
    }
  }

  private static Duration millis(Map<String, String> keys, String key) {
    String raw = required(keys, key);
    try {
      long value = Long.parseLong(raw.trim());
      if (value < 1) {
        throw new IllegalArgumentException("configuration key '" + key + "' must be at least 1 (ms), was " + raw);
      }
      return Duration.ofMillis(value);
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("configuration key '" + key + "' must be milliseconds, was " + raw, e);
    }
  }

  private static Map<String, String> readProperties(Path file) {
    Properties properties = new Properties();
    try (Reader reader = Files.newBufferedReader(file)) {
      properties.load(reader);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot read configuration file " + file, e);
    }
    Map<String, String> keys = new TreeMap<>();
    properties.stringPropertyNames().forEach(name -> keys.put(name, properties.getProperty(name)));
    return keys;
  }
}
