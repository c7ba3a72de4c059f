package dev.distillery.kafka.embedded;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.Map;
import java.util.Set;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.common.config.ConfigResource;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

class EmbeddedKafkaExtensionPerClassTest {

    @RegisterExtension
    static final EmbeddedKafkaExtension KAFKA = EmbeddedKafkaExtension.perClass(Map.of("log.retention.ms", "60000"));

    private static EmbeddedKafkaBroker fromBeforeAll;

    @BeforeAll
    static void captureBroker(EmbeddedKafkaBroker broker) {
        fromBeforeAll = broker;
    }

    @Test
    void privateBrokerHasTheOverrides(EmbeddedKafkaBroker broker) throws Exception {
        assertThat(broker).isSameAs(fromBeforeAll);
        try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, broker.bootstrapServers()))) {
            ConfigResource node = new ConfigResource(ConfigResource.Type.BROKER, "1");
            Config config = admin.describeConfigs(Set.of(node)).all().get().get(node);
            assertThat(config.get("log.retention.ms").value()).isEqualTo("60000");
        }
    }
}
