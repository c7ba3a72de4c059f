package dev.distillery.common.kafka;

import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterOptions;

/**
 * Whether the broker answers, asked every few seconds on a thread of its own, for readiness where
 * no consumer loop tells it (Kafka Streams stays RUNNING while its broker is away). Describing the
 * cluster needs no ACL.
 */
public final class BrokerProbe implements AutoCloseable {
  private static final Duration EVERY = Duration.ofSeconds(5);

  private final Admin admin;
  private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(runnable -> {
    Thread thread = new Thread(runnable, "distillery-broker-probe");
    thread.setDaemon(true);
    return thread;
  });
  private volatile boolean answers = true;

  /** Probes the cluster that {@code kafka} (client properties, security included) connects to. */
  public BrokerProbe(Map<String, String> kafka, String clientId) {
    Map<String, Object> props = new HashMap<>(kafka);
    props.put(AdminClientConfig.CLIENT_ID_CONFIG, clientId);
    this.admin = Admin.create(props);
    timer.scheduleWithFixedDelay(this::probe, 0, EVERY.toMillis(), TimeUnit.MILLISECONDS);
  }

  private void probe() {
    try {
      admin.describeCluster(new DescribeClusterOptions().timeoutMs((int) EVERY.toMillis()))
          .clusterId().get(EVERY.toMillis() + 1_000, TimeUnit.MILLISECONDS);
      answers = true;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (Exception e) {
      answers = false;
    }
  }

  /**
   * Asks the cluster {@code kafka} connects to for its id once, waiting at most {@code within};
   * throws what went wrong (a timeout when nothing answers) otherwise.
   */
  public static void describe(Map<String, String> kafka, Duration within) throws Exception {
    Map<String, Object> props = new HashMap<>(kafka);
    int millis = Math.toIntExact(within.toMillis());
    props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, millis);
    props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, millis);
    Admin admin = Admin.create(props);
    try {
      admin.describeCluster(new DescribeClusterOptions().timeoutMs(millis)).clusterId()
          .get(millis + 1_000L, TimeUnit.MILLISECONDS);
    } finally {
      admin.close(Duration.ofSeconds(1)); // not Admin's default, which waits out calls still pending
    }
  }

  /** False once a probe found no broker, until one answers again. */
  public boolean answers() {
    return answers;
  }

  @Override
  public void close() {
    timer.shutdownNow();
    admin.close(Duration.ofSeconds(5));
  }
}
