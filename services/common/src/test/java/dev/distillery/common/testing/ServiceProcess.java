package dev.distillery.common.testing;

import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

/**
 * A service started in a JVM of its own, configured through its environment as a deployment
 * would configure it, so a test can kill it the hard way (SIGKILL: no commit, no leaving the
 * group, no cleanup).
 */
public final class ServiceProcess implements AutoCloseable {
  private static final Duration HTTP_TIMEOUT = Duration.ofSeconds(10);
  private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(HTTP_TIMEOUT).build();

  private final Process process;
  private final int managementPort;
  private final Class<?> mainClass;
  private final Map<String, String> env;
  private final Path log;

  private final List<String> jvmOptions;

  private ServiceProcess(Process process, int managementPort, Class<?> mainClass, Map<String, String> env, Path log,
      List<String> jvmOptions) {
    this.process = process;
    this.managementPort = managementPort;
    this.mainClass = mainClass;
    this.env = Map.copyOf(env);
    this.log = log;
    this.jvmOptions = List.copyOf(jvmOptions);
  }

  /**
   * Starts {@code mainClass} from this test's classpath with the {@code env} added to this JVM's
   * environment and a free management port, logging to {@code log}.
   */
  public static ServiceProcess start(Class<?> mainClass, Map<String, String> env, Path log) throws Exception {
    return start(mainClass, env, log, List.of());
  }

  /**
   * As {@link #start(Class, Map, Path)}, with options for the JVM (a test that starts many
   * processes on few cores may trade peak speed for a faster start, say).
   */
  public static ServiceProcess start(Class<?> mainClass, Map<String, String> env, Path log, List<String> jvmOptions)
      throws Exception {
    int port = freePort();
    List<String> command = new ArrayList<>();
    command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    command.addAll(jvmOptions);
    command.addAll(List.of("-cp", System.getProperty("java.class.path"), mainClass.getName()));
    ProcessBuilder builder = new ProcessBuilder(command)
        .redirectErrorStream(true)
        .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()));
    builder.environment().putAll(env);
    builder.environment().put("DISTILLERY_MANAGEMENT_PORT", String.valueOf(port));
    return new ServiceProcess(builder.start(), port, mainClass, env, log, jvmOptions);
  }

  /**
   * A new process of the same service with the same environment, JVM options and log (a replacement, as a
   * deployment would start after a crash), on a free management port. This one is left as it is:
   * kill it first to replace it.
   */
  public ServiceProcess startAnother() throws Exception {
    return start(mainClass, env, log, jvmOptions);
  }

  /** The port of /health, /ready and /metrics (and of job-status's API). */
  public int managementPort() {
    return managementPort;
  }

  /** The operating system's id of the process, as the service names itself (in its leases, say). */
  public long pid() {
    return process.pid();
  }

  public boolean alive() {
    return process.isAlive();
  }

  /** GET {@code path} of the management port with the given headers; the status and body. */
  public HttpResponse<String> get(String path, Map<String, String> headers) throws Exception {
    HttpRequest.Builder request = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + managementPort + path))
        .timeout(HTTP_TIMEOUT);
    headers.forEach(request::header);
    return HTTP.send(request.build(), HttpResponse.BodyHandlers.ofString());
  }

  /** The HTTP status of GET {@code path}, or -1 when the service does not answer. */
  public int status(String path) {
    try {
      return get(path, Map.of()).statusCode();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return -1;
    } catch (Exception e) {
      return -1;
    }
  }

  /** Waits until the service's /ready answers 200; fails at once if the process exits. */
  public ServiceProcess awaitReady(Duration timeout) throws InterruptedException {
    await(() -> {
      if (!process.isAlive()) {
        throw new AssertionError(mainClass.getSimpleName() + " process exited with " + process.exitValue()
            + " (its log: " + log + ")");
      }
      return status("/ready") == 200;
    }, mainClass.getSimpleName() + " process ready", timeout);
    return this;
  }

  /** SIGKILL, and wait until the process is gone. */
  public void kill() throws InterruptedException {
    process.destroyForcibly();
    if (!process.waitFor(30, TimeUnit.SECONDS)) {
      throw new AssertionError("killed service process still running");
    }
  }

  @Override
  public void close() throws InterruptedException {
    kill();
  }

  /** Polls {@code condition} until it holds, failing after {@code timeout}. */
  public static void await(BooleanSupplier condition, String what, Duration timeout) throws InterruptedException {
    long deadline = System.nanoTime() + timeout.toNanos();
    while (!condition.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("timed out waiting for: " + what);
      }
      TimeUnit.MILLISECONDS.sleep(20); // polling a condition, not waiting for time to pass
    }
  }

  private static int freePort() throws Exception {
    try (ServerSocket socket = new ServerSocket(0)) {
      return socket.getLocalPort();
    }
  }
}
