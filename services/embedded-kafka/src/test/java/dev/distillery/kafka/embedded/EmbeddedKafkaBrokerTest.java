package dev.distillery.kafka.embedded;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

@ExtendWith(EmbeddedKafkaExtension.class)
class EmbeddedKafkaBrokerTest {

    private static final Duration TIMEOUT = Duration.ofSeconds(30);

    private final EmbeddedKafkaBroker constructorBroker;

    EmbeddedKafkaBrokerTest(EmbeddedKafkaBroker broker) {
        this.constructorBroker = broker;
    }

    @Test
    void injectsTheSameSharedBrokerEverywhere(EmbeddedKafkaBroker broker) {
        assertThat(broker).isSameAs(constructorBroker);
        assertThat(broker.bootstrapServers()).startsWith("127.0.0.1:");
    }

    @Test
    void recordRoundTripsThroughAThreePartitionTopic(EmbeddedKafkaBroker broker) throws Exception {
        String topic = "round-trip";
        broker.createTopics(Map.of(topic, 3));
        broker.createTopics(Map.of(topic, 3)); // idempotent: a shared broker sees repeats

        try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, broker.bootstrapServers()))) {
            assertThat(admin.describeTopics(Set.of(topic)).allTopicNames().get().get(topic).partitions()).hasSize(3);
        }

        RecordMetadata sent;
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(Map.of(
                ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, broker.bootstrapServers(),
                ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class,
                ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class))) {
            sent = producer.send(new ProducerRecord<>(topic, "key", "hello, kafka")).get();
        }

        // A subscribed group, not assign(): it proves the group coordinator and offsets topic work.
        List<ConsumerRecord<String, String>> received = new ArrayList<>();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(Map.of(
                ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, broker.bootstrapServers(),
                ConsumerConfig.GROUP_ID_CONFIG, "round-trip-test",
                ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest",
                ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class,
                ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class))) {
            consumer.subscribe(List.of(topic));
            long deadline = System.nanoTime() + TIMEOUT.toNanos();
            while (received.isEmpty() && System.nanoTime() < deadline) {
                consumer.poll(Duration.ofMillis(200)).forEach(received::add);
            }
        }

        assertThat(received).singleElement().satisfies(record -> {
            assertThat(record.key()).isEqualTo("key");
            assertThat(record.value()).isEqualTo("hello, kafka");
            assertThat(record.partition()).isEqualTo(sent.partition());
        });
    }

    @Test
    void closeStopsTheBrokerAndDeletesItsData() {
        EmbeddedKafkaBroker own = EmbeddedKafkaBroker.start();
        Path logDir = own.logDir();
        try {
            assertThat(own.bootstrapServers()).isNotEqualTo(constructorBroker.bootstrapServers());
            assertThat(logDir).isDirectory();
        } finally {
            own.close();
        }
        own.close(); // a second close must be harmless: extensions and try-with-resources may both close
        assertThat(Files.exists(logDir)).isFalse();
    }
}
