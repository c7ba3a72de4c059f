package dev.distillery.launcher;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.testcontainers.junit.jupiter.Container;
import org.testcontainers.junit.jupiter.Testcontainers;
import org.testcontainers.kafka.KafkaContainer;

/** The same scenario against the official apache/kafka image; skipped where no Docker engine runs. */
@Testcontainers(disabledWithoutDocker = true)
class CompressionPipelineContainerTest {
  @Container
  static final KafkaContainer KAFKA = new KafkaContainer("apache/kafka:4.1.0");

  @Test
  void aJobTravelsFromRequestToResultPastBadInput(@TempDir Path work) throws Exception {
    PipelineScenario.run(KAFKA.getBootstrapServers(), work);
  }
}
