package dev.distillery.launcher;

import dev.distillery.common.config.ServiceConfig;
import dev.distillery.common.service.ManagementServer;
import dev.distillery.common.service.ProcessMetrics;
import dev.distillery.common.service.StageService;
import dev.distillery.pruner.PrunerService;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.status.JobStatusService;
import dev.distillery.student.StudentTrainerService;
import dev.distillery.teacher.TeacherInferenceService;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import io.vertx.core.Vertx;
import java.nio.file.Path;
import java.util.ArrayList;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Collectors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * All the stages of all services and the job-status service in one JVM and one Vert.x instance,
 * pointed at one broker: the demo's and the end-to-end tests' pipeline. In production each service
 * runs as its own process.
 */
public final class LocalPipeline implements AutoCloseable {
  private final Vertx vertx;
  private final List<StageService<?>> services;
  private int managementPort;
  private JobStatusService jobStatus;

  private LocalPipeline(Vertx vertx, List<StageService<?>> services) {
    this.vertx = vertx;
    this.services = services;
  }

  /**
   * The configuration keys of every service ({@link ServiceConfig#fromKeys}): the broker, the
   * artifact store, libtorch's threads, and the roots requests may name models and datasets under.
   */
  public static Map<String, String> keys(String bootstrapServers, Path artifactsDir, int torchThreads,
      List<Path> modelRoots, List<Path> datasetRoots) {
    Map<String, String> keys = new TreeMap<>();
    keys.put("kafka.bootstrap.servers", bootstrapServers);
    keys.put("artifacts.dir", artifactsDir.toString());
    keys.put("torch.threads", String.valueOf(torchThreads));
    keys.put("model.roots", modelRoots.stream().map(Path::toString).collect(Collectors.joining(",")));
    keys.put("dataset.roots", datasetRoots.stream().map(Path::toString).collect(Collectors.joining(",")));
    return keys;
  }

  /** Deploys the services and returns once every consumer has its partitions; the dashboard on a free port. */
  public static LocalPipeline start(Map<String, String> keys) throws Exception {
    return start(keys, 0, null);
  }

  /**
   * Deploys the services, configured by {@code keys} ({@link #keys}), and returns once every
   * consumer has its partitions. The job-status service (API and dashboard) listens on
   * {@code httpPort} (0: a free one), its form starting with {@code exampleRequest} (or empty).
   */
  public static LocalPipeline start(Map<String, String> keys, int httpPort, CompressionRequest exampleRequest)
      throws Exception {
    return start(keys, Map.of(), httpPort, exampleRequest);
  }

  /**
   * As {@link #start(Map, int, CompressionRequest)}, each service's keys being {@code keys} with
   * {@code keysByService.get(name)} on top, by service name: its own Kafka credentials, say.
   */
  public static LocalPipeline start(Map<String, String> keys, Map<String, Map<String, String>> keysByService,
      int httpPort, CompressionRequest exampleRequest) throws Exception {
    List<StageService<?>> services = new ArrayList<>();
    services.addAll(TeacherInferenceService.stages(
        ServiceConfig.fromKeys(TeacherInferenceService.NAME, keysOf(TeacherInferenceService.NAME, keys, keysByService))));
    services.addAll(StudentTrainerService.stages(
        ServiceConfig.fromKeys(StudentTrainerService.NAME, keysOf(StudentTrainerService.NAME, keys, keysByService))));
    services.addAll(PrunerService.stages(
        ServiceConfig.fromKeys(PrunerService.NAME, keysOf(PrunerService.NAME, keys, keysByService))));
    Vertx vertx = ProcessMetrics.vertx();
    LocalPipeline pipeline = new LocalPipeline(vertx, services);
    try {
      for (StageService<?> service : services) {
        vertx.deployVerticle(service).await(1, TimeUnit.MINUTES);
      }
      pipeline.managementPort = new ManagementServer(vertx, 0).start(services).await(1, TimeUnit.MINUTES);
      Map<String, String> jobStatusKeys = keysOf(JobStatusService.NAME, keys, keysByService);
      jobStatusKeys.put("management.port", String.valueOf(httpPort));
      pipeline.jobStatus = JobStatusService.start(ServiceConfig.fromKeys(JobStatusService.NAME, jobStatusKeys),
          vertx, exampleRequest);
      pipeline.awaitReady(Duration.ofMinutes(1));
      return pipeline;
    } catch (Exception e) {
      pipeline.close();
      throw e;
    }
  }

  private static Map<String, String> keysOf(String service, Map<String, String> keys,
      Map<String, Map<String, String>> keysByService) {
    Map<String, String> own = new TreeMap<>(keys);
    own.putAll(keysByService.getOrDefault(service, Map.of()));
    return own;
  }

  private void awaitReady(Duration timeout) throws Exception {
    Promise<Void> ready = Promise.promise();
    long deadline = System.nanoTime() + timeout.toNanos();
    vertx.setPeriodic(50, timer -> {
      if (services.stream().allMatch(StageService::ready) && jobStatus.running()) {
        vertx.cancelTimer(timer);
        ready.tryComplete();
      } else if (System.nanoTime() > deadline) {
        vertx.cancelTimer(timer);
        ready.tryFail(new TimeoutException("services not ready after " + timeout));
      }
    });
    ready.future().await(timeout.toMillis() + 1000, TimeUnit.MILLISECONDS);
  }

  /** The port of /health, /ready and /metrics for all the stages. */
  public int managementPort() {
    return managementPort;
  }

  /** The port of the job-status API and dashboard. */
  public int dashboardPort() {
    return jobStatus.port();
  }

  /** A token the job-status API accepts ({@link JobStatusService#token()}). */
  public String dashboardToken() {
    return jobStatus.token();
  }

  @Override
  public void close() throws Exception {
    if (jobStatus != null) {
      jobStatus.close();
    }
    Future<Void> closed = vertx.close();
    closed.await(1, TimeUnit.MINUTES);
  }
}
