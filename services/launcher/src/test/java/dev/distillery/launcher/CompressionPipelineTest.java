package dev.distillery.launcher;

import dev.distillery.kafka.embedded.EmbeddedKafkaBroker;
import dev.distillery.kafka.embedded.EmbeddedKafkaExtension;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/** The whole pipeline on the in-process KRaft broker. */
@ExtendWith(EmbeddedKafkaExtension.class)
class CompressionPipelineTest {
  @Test
  void aJobTravelsFromRequestToResultPastBadInput(EmbeddedKafkaBroker broker, @TempDir Path work) throws Exception {
    PipelineScenario.run(broker.bootstrapServers(), work);
  }
}
