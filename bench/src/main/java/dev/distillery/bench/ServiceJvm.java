package dev.distillery.bench;

import java.io.IOException;
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

/**
 * One Distillery service in a JVM of its own, configured through its environment as a deployment
 * configures it, on a free management port (for job-status, also its API's port), logging to a file.
 */
final class ServiceJvm implements AutoCloseable {
  private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

  private final String name;
  private final Process process;
  private final int port;
  private final Path log;

  private ServiceJvm(String name, Process process, int port, Path log) {
    this.name = name;
    this.process = process;
    this.port = port;
    this.log = log;
  }

  /** Starts {@code mainClass} from this JVM's classpath with {@code env} added to this JVM's environment. */
  static ServiceJvm start(String name, Class<?> mainClass, List<String> jvmOptions, Map<String, String> env, Path log)
      throws IOException {
    int port = freePort();
    List<String> command = new ArrayList<>(List.of(javaBinary()));
    command.addAll(jvmOptions);
    command.addAll(List.of("-cp", System.getProperty("java.class.path"), mainClass.getName()));
    ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true)
        .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()));
    builder.environment().putAll(env);
    builder.environment().put("DISTILLERY_MANAGEMENT_PORT", String.valueOf(port));
    return new ServiceJvm(name, builder.start(), port, log);
  }

  /** Waits until /ready answers 200; fails at once if the process exits. */
  ServiceJvm awaitReady(Duration timeout) throws Exception {
    HttpRequest ready = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/ready"))
        .timeout(Duration.ofSeconds(5)).build();
    long deadline = System.nanoTime() + timeout.toNanos();
    while (true) {
      if (!process.isAlive()) {
        throw new IllegalStateException(name + " exited with " + process.exitValue() + "; its log: " + log);
      }
      try {
        if (HTTP.send(ready, HttpResponse.BodyHandlers.discarding()).statusCode() == 200) {
          return this;
        }
      } catch (IOException e) {
        // not listening yet
      }
      if (System.nanoTime() > deadline) {
        throw new IllegalStateException(name + " not ready after " + timeout + "; its log: " + log);
      }
      TimeUnit.MILLISECONDS.sleep(200);
    }
  }

  String name() {
    return name;
  }

  int port() {
    return port;
  }

  long pid() {
    return process.pid();
  }

  Path log() {
    return log;
  }

  boolean alive() {
    return process.isAlive();
  }

  /** SIGTERM (the services' shutdown hooks close their clients), SIGKILL after 30 s. */
  @Override
  public void close() throws InterruptedException {
    process.destroy();
    if (!process.waitFor(30, TimeUnit.SECONDS)) {
      process.destroyForcibly();
      process.waitFor(30, TimeUnit.SECONDS);
    }
  }

  static String javaBinary() {
    return Path.of(System.getProperty("java.home"), "bin", "java").toString();
  }

  private static int freePort() throws IOException {
    try (ServerSocket socket = new ServerSocket(0)) {
      return socket.getLocalPort();
    }
  }
}
