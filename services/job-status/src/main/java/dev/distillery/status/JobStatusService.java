package dev.distillery.status;

import dev.distillery.common.RequestValidation;
import dev.distillery.common.config.ApiAccess;
import dev.distillery.common.config.ServiceConfig;
import dev.distillery.common.kafka.BrokerProbe;
import dev.distillery.common.kafka.KafkaClients;
import dev.distillery.common.service.ProcessMetrics;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.DatasetSpec;
import dev.distillery.schemas.DistillationSettings;
import dev.distillery.schemas.JobStatus;
import dev.distillery.schemas.PruningSettings;
import dev.distillery.schemas.StudentSpec;
import dev.distillery.schemas.TeacherSpec;
import dev.distillery.schemas.json.PlainJson;
import io.micrometer.core.instrument.binder.kafka.KafkaClientMetrics;
import io.micrometer.core.instrument.binder.kafka.KafkaStreamsMetrics;
import io.vertx.core.Vertx;
import java.io.IOException;
import java.nio.file.Files;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StoreQueryParameters;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.InvalidStateStoreException;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.QueryableStoreTypes;
import org.apache.kafka.streams.state.ReadOnlyKeyValueStore;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The job-status service: the Kafka Streams application that folds every job's events into its
 * status ({@link JobStatusTopology}), and the HTTP API, event stream and dashboard over it ({@link
 * Gateway}), on the service's management port. One replica holds every job: the store is not
 * partitioned across replicas for queries.
 */
public final class JobStatusService implements AutoCloseable {
  public static final String NAME = "job-status";
  private static final Logger LOG = LoggerFactory.getLogger(JobStatusService.class);

  private final Vertx vertx;
  private final KafkaStreams streams;
  private final KafkaProducer<String, byte[]> producer;
  private final ApiAccess access;
  private final BrokerProbe broker;
  private final KafkaStreamsMetrics streamsMetrics;
  private final KafkaClientMetrics producerMetrics;
  private int port;

  private JobStatusService(Vertx vertx, KafkaStreams streams, KafkaProducer<String, byte[]> producer,
      ApiAccess access, BrokerProbe broker) {
    this.vertx = vertx;
    this.streams = streams;
    this.producer = producer;
    this.access = access;
    this.broker = broker;
    this.streamsMetrics = new KafkaStreamsMetrics(streams);
    streamsMetrics.bindTo(ProcessMetrics.of(vertx));
    this.producerMetrics = ProcessMetrics.bind(vertx, producer);
  }

  /**
   * Starts the Streams application and the HTTP server on {@code vertx}; returns once it listens.
   * {@code exampleRequest}, if not null, is the request the dashboard's form starts with.
   */
  public static JobStatusService start(ServiceConfig config, Vertx vertx, CompressionRequest exampleRequest)
      throws Exception {
    // Changes before the gateway listens reach no client; its first event is a full snapshot.
    AtomicReference<Gateway> listening = new AtomicReference<>();
    KafkaStreams streams = new KafkaStreams(JobStatusTopology.build(config.reliability().statusRetention(),
        config.wire(), status -> {
      Gateway gateway = listening.get();
      if (gateway != null) {
        gateway.changed(status);
      }
    }, jobId -> {
      Gateway gateway = listening.get();
      if (gateway != null) {
        gateway.removed(jobId);
      }
    }), streamsProperties(config));
    boolean generated = config.api().tokens().isEmpty();
    ApiAccess access = generated
        ? new ApiAccess(Set.of(newToken()), config.api().allowedOrigins(), config.api().metricsNeedToken())
        : config.api();
    JobStatusService service = new JobStatusService(vertx, streams, KafkaClients.producer(config), access,
        new BrokerProbe(config.kafka(), config.service() + "-probe"));
    try {
      streams.setUncaughtExceptionHandler(SkipUndecodable.REPLACE_THREAD_WHILE_REGISTRY_AWAY);
      streams.start();
      ObjectNode example = exampleRequest == null ? null : (ObjectNode) PlainJson.write(exampleRequest);
      if (example != null) {
        example.remove("jobId");
        example.remove("submittedAtMs");
      }
      // Alive until Streams gave up (ERROR, shutting down): then a restart is what helps.
      Gateway gateway = new Gateway(vertx, service.store(), service.producer,
          () -> streams.state().isRunningOrRebalancing() || streams.state() == KafkaStreams.State.CREATED,
          // Ready: Streams RUNNING (it stays so while the broker is away, hence the probe too).
          () -> streams.state() == KafkaStreams.State.RUNNING && service.broker.answers(), example,
          new RequestValidation(config.roots()),
          access, config.wire());
      service.port = gateway.listen(config.managementPort()).await(1, TimeUnit.MINUTES);
      listening.set(gateway);
      if (generated) {
        LOG.info("api.tokens is not configured, so this run made its own API token. Send 'Authorization: Bearer {}'"
            + " to /api/*; the dashboard asks for it once, or open http://localhost:{}/#token={}",
            service.token(), service.port, service.token());
      }
      return service;
    } catch (Exception e) {
      service.close();
      throw e;
    }
  }

  private static Properties streamsProperties(ServiceConfig config) throws IOException {
    Properties props = new Properties();
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, "distillery-" + config.service());
    props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
    // Every update reaches the event stream at once rather than when a cache flushes.
    props.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
    props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 1000);
    // A record no one can decode is dead-lettered by the stage that consumes it; here it is skipped
    // (but not while the schema registry is away: SkipUndecodable).
    props.put(StreamsConfig.DESERIALIZATION_EXCEPTION_HANDLER_CLASS_CONFIG, SkipUndecodable.class);
    // The store is in memory and rebuilt from its changelog; the directory holds only locks.
    props.put(StreamsConfig.STATE_DIR_CONFIG, Files.createTempDirectory("distillery-job-status").toString());
    props.putAll(config.kafka());
    return props;
  }

  /** 256 random bits, URL-safe: fit for a header and for the dashboard's {@code #token=} link. */
  private static String newToken() {
    byte[] bytes = new byte[32];
    new SecureRandom().nextBytes(bytes);
    return Base64.getUrlEncoder().withoutPadding().encodeToString(bytes);
  }

  /**
   * A token the API accepts: the one made at start when {@code api.tokens} names none, else the
   * first configured one in sort order. For a caller in this process that shows the user how to reach
   * the API.
   */
  public String token() {
    return access.tokens().stream().sorted().findFirst().orElseThrow();
  }

  /** The HTTP port: API, events, dashboard, health, readiness and metrics. */
  public int port() {
    return port;
  }

  public boolean running() {
    return streams.state() == KafkaStreams.State.RUNNING;
  }

  private Gateway.JobStore store() {
    return new Gateway.JobStore() {
      @Override
      public Optional<List<JobStatus>> all() {
        return query(store -> {
          List<JobStatus> all = new ArrayList<>();
          try (KeyValueIterator<String, JobStatus> it = store.all()) {
            it.forEachRemaining(entry -> all.add(entry.value));
          }
          return all;
        });
      }

      @Override
      public Optional<Optional<JobStatus>> get(String jobId) {
        return query(store -> Optional.ofNullable(store.get(jobId)));
      }
    };
  }

  private <T> Optional<T> query(java.util.function.Function<ReadOnlyKeyValueStore<String, JobStatus>, T> read) {
    try {
      return Optional.of(read.apply(streams.store(StoreQueryParameters.fromNameAndType(
          JobStatusTopology.STORE, QueryableStoreTypes.<String, JobStatus>keyValueStore()))));
    } catch (InvalidStateStoreException e) {
      return Optional.empty();
    }
  }

  @Override
  public void close() {
    streamsMetrics.close();
    producerMetrics.close();
    streams.close(Duration.ofSeconds(30));
    producer.close(Duration.ofSeconds(10));
    broker.close();
  }

  public static void main(String[] args) {
    if (System.getProperty("org.apache.avro.SERIALIZABLE_PACKAGES") == null) {
      System.setProperty("org.apache.avro.SERIALIZABLE_PACKAGES", "dev.distillery.schemas");
    }
    Vertx vertx = ProcessMetrics.vertx();
    try {
      CompressionRequest example = CompressionRequest.newBuilder()
          .setJobId("")
          // The images' paths (docker/Dockerfile); the teacher is the user's to name.
          .setTeacher(TeacherSpec.newBuilder().setArchitecture("convnet")
              .setCheckpointUri("file:///var/lib/distillery/artifacts/teachers/teacher.params").build())
          .setDataset(DatasetSpec.newBuilder().setLocation("/var/lib/distillery/datasets/fashion-mnist-subset").build())
          .setStudent(StudentSpec.newBuilder().setArchitecture("lenet5").setWidth(1.0).build())
          .setDistillation(DistillationSettings.newBuilder().build())
          .setPruning(PruningSettings.newBuilder().build())
          .build();
      JobStatusService service = start(ServiceConfig.load(NAME), vertx, example);
      LOG.info("job-status running: dashboard and API on http://localhost:{}/", service.port());
      Runtime.getRuntime().addShutdownHook(new Thread(() -> {
        service.close();
        vertx.close();
      }, NAME + "-shutdown"));
    } catch (Exception e) {
      LOG.error("job-status failed to start", e);
      vertx.close();
      System.exit(1);
    }
  }
}
