package dev.distillery.common.testing;

import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

/**
 * A service started in a JVM of its own, configured through its environment as a deployment
 * would configure it, so a test can kill it the hard way (SIGKILL: no commit, no leaving the
 * group, no cleanup).
 */
public final class ServiceProcess implements AutoCloseable {
  private final Process process;
  private final int managementPort;

  private ServiceProcess(Process process, int managementPort) {
    this.process = process;
    this.managementPort = managementPort;
  }

  /**
   * Starts {@code mainClass} from this test's classpath with the {@code env} added to this JVM's
   * environment and a free management port, logging to {@code log}.
   */
  public static ServiceProcess start(Class<?> mainClass, Map<String, String> env, Path log) throws Exception {
    int port = freePort();
    ProcessBuilder builder = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-cp", System.getProperty("java.class.path"), mainClass.getName())
        .redirectErrorStream(true)
        .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()));
    builder.environment().putAll(env);
    builder.environment().put("DISTILLERY_MANAGEMENT_PORT", String.valueOf(port));
    return new ServiceProcess(builder.start(), port);
  }

  /** Waits until the service's /ready answers 200; fails at once if the process exits. */
  public ServiceProcess awaitReady(Duration timeout) throws InterruptedException {
    HttpClient client = HttpClient.newHttpClient();
    HttpRequest ready = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + managementPort + "/ready")).build();
    await(() -> {
      if (!process.isAlive()) {
        throw new AssertionError("service process exited with " + process.exitValue());
      }
      try {
        return client.send(ready, HttpResponse.BodyHandlers.discarding()).statusCode() == 200;
      } catch (Exception e) {
        return false;
      }
    }, "service process ready", timeout);
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
