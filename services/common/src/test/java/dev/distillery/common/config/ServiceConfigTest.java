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

  @Test
  void aBadValueIsNamed() {
    assertThatThrownBy(() -> ServiceConfig.from("x", Map.of("DISTILLERY_WORKER_THREADS", "0")))
        .hasMessageContaining("worker.threads");
    assertThatThrownBy(() -> ServiceConfig.from("x", Map.of("DISTILLERY_TORCH_THREADS", "many")))
        .hasMessageContaining("torch.threads");
  }
}
