package dev.distillery.common.config;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ServiceConfigTest {
  @Test
  void environmentOverridesFileAndKafkaVariablesReachTheClients(@TempDir Path dir) throws Exception {
    Path file = dir.resolve("pruner.properties");
    Files.writeString(file, "worker.threads=3\nartifacts.dir=/from/file\nkafka.linger.ms=7\n");
    ServiceConfig config = ServiceConfig.from("pruner", Map.of(
        "DISTILLERY_CONFIG", file.toString(),
        "DISTILLERY_ARTIFACTS_DIR", "/from/env",
        "KAFKA_BOOTSTRAP_SERVERS", "broker:9092",
        "KAFKA_SECURITY_PROTOCOL", "SSL",
        "HOME", "/ignored"));
    assertThat(config.service()).isEqualTo("pruner");
    assertThat(config.workerThreads()).isEqualTo(3);
    assertThat(config.artifactsDir()).isEqualTo(Path.of("/from/env"));
    assertThat(config.kafka()).containsEntry("bootstrap.servers", "broker:9092")
        .containsEntry("security.protocol", "SSL").containsEntry("linger.ms", "7");
  }

  /** A Secret's file of tokens is read; one named but empty stops the service rather than leaving it open. */
  @Test
  void apiTokensComeFromAFileThatMustHoldOne(@TempDir Path dir) throws Exception {
    Path tokens = Files.writeString(dir.resolve("tokens"), "first-token\n\n  second-token  \n");
    assertThat(ServiceConfig.from("job-status", Map.of("DISTILLERY_API_TOKENS_FILE", tokens.toString(),
        "DISTILLERY_API_TOKENS", "third-token")).api().tokens())
        .containsExactlyInAnyOrder("first-token", "second-token", "third-token");
    Path empty = Files.writeString(dir.resolve("empty"), "\n");
    assertThatThrownBy(() -> ServiceConfig.from("job-status", Map.of("DISTILLERY_API_TOKENS_FILE", empty.toString())))
        .hasMessageContaining("holds no token");
  }

  @Test
  void aBadValueIsNamed() {
    assertThatThrownBy(() -> ServiceConfig.from("x", Map.of("DISTILLERY_WORKER_THREADS", "0")))
        .hasMessageContaining("worker.threads");
    assertThatThrownBy(() -> ServiceConfig.from("x", Map.of("DISTILLERY_TORCH_THREADS", "many")))
        .hasMessageContaining("torch.threads");
  }
}
