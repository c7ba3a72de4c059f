package dev.distillery.launcher;

import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A real schema registry for the tests: Apicurio Registry 2.6's in-memory app, unpacked from Maven
 * Central by the build (launcher's pom, {@code target/apicurio}), in a JVM of its own on a free
 * port. Its Confluent-compatible API is at {@link #url()}.
 */
final class ApicurioRegistry implements AutoCloseable {
  private static final Path APP = Path.of("target/apicurio/apicurio-registry-app-2.6.13.Final-runner.jar");
  private static final Duration START = Duration.ofMinutes(2);

  private final Process process;
  private final int port;

  private ApicurioRegistry(Process process, int port) {
    this.process = process;
    this.port = port;
  }

  /** Starts the registry and returns once it answers {@code /health/ready}. */
  static ApicurioRegistry start(Path log) throws Exception {
    if (!Files.exists(APP)) {
      throw new IllegalStateException(APP.toAbsolutePath() + " is missing: the build unpacks it at"
          + " generate-test-resources (./mvnw verify does)");
    }
    int port;
    try (ServerSocket socket = new ServerSocket(0)) {
      port = socket.getLocalPort();
    }
    Process process = new ProcessBuilder(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-Xmx384m", "-XX:TieredStopAtLevel=1", "-Dquarkus.http.host=127.0.0.1", "-Dquarkus.http.port=" + port,
        "-jar", APP.toString()))
        .redirectErrorStream(true).redirectOutput(log.toFile()).start();
    ApicurioRegistry registry = new ApicurioRegistry(process, port);
    HttpClient http = HttpClient.newHttpClient();
    long deadline = System.nanoTime() + START.toNanos();
    while (System.nanoTime() < deadline) {
      if (!process.isAlive()) {
        throw new IllegalStateException("the registry exited (" + process.exitValue() + "); see " + log);
      }
      try {
        HttpResponse<Void> ready = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port
            + "/health/ready")).timeout(Duration.ofSeconds(2)).build(), HttpResponse.BodyHandlers.discarding());
        if (ready.statusCode() == 200) {
          return registry;
        }
      } catch (java.io.IOException notYet) {
        // not listening yet
      }
      process.waitFor(250, TimeUnit.MILLISECONDS);
    }
    registry.close();
    throw new IllegalStateException("the registry was not ready within " + START + "; see " + log);
  }

  /** The base of its Confluent-compatible API, as DISTILLERY_SCHEMA_REGISTRY_URL takes it. */
  String url() {
    return "http://127.0.0.1:" + port + "/apis/ccompat/v7";
  }

  /** GET of a path under {@link #url()}: status and body. */
  HttpResponse<String> get(String path) throws Exception {
    return HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(url() + "/" + path)).build(),
        HttpResponse.BodyHandlers.ofString());
  }

  @Override
  public void close() throws InterruptedException {
    process.destroy();
    if (!process.waitFor(20, TimeUnit.SECONDS)) {
      process.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
    }
  }
}
