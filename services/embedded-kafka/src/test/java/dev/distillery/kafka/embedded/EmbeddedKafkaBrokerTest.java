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

    /**
     * A broker stopped and started again is the same broker to its clients: same address, its
     * records and a group's committed offset kept, and a producer and consumer created before the
     * outage carry on after it without being recreated.
     */
    @Test
    void aRestartedBrokerKeepsItsAddressRecordsAndOffsets() throws Exception {
        String topic = "restarted";
        try (EmbeddedKafkaBroker own = EmbeddedKafkaBroker.start();
                KafkaProducer<String, String> producer = new KafkaProducer<>(Map.of(
                        ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, own.bootstrapServers(),
                        ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class,
                        ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class));
                KafkaConsumer<String, String> consumer = new KafkaConsumer<>(Map.of(
                        ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, own.bootstrapServers(),
                        ConsumerConfig.GROUP_ID_CONFIG, "restart-test",
                        ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest",
                        ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false,
                        ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class,
                        ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class))) {
            own.createTopics(Map.of(topic, 1));
            String address = own.bootstrapServers();
            Path logDir = own.logDir();
            producer.send(new ProducerRecord<>(topic, "k", "before")).get();
            consumer.subscribe(List.of(topic));
            assertThat(pollValues(consumer, 1)).containsExactly("before");
            consumer.commitSync();

            own.stop();
            assertThat(own.running()).isFalse();
            own.stop(); // stopping a stopped broker is harmless
            assertThat(logDir).isDirectory();
            // (Not sent while it is away: a Kafka 4 client that lost every broker re-bootstraps and
            // forgets the topic's metadata, so send() itself blocks up to max.block.ms.)
            own.restart();

            assertThat(own.running()).isTrue();
            assertThat(own.bootstrapServers()).isEqualTo(address);
            assertThat(producer.send(new ProducerRecord<>(topic, "k", "after")).get(TIMEOUT.toMillis(),
                    java.util.concurrent.TimeUnit.MILLISECONDS).offset()).isEqualTo(1);
            assertThat(pollValues(consumer, 1)).containsExactly("after");
            consumer.commitSync();
            own.restart(); // a running broker restarts too
            try (KafkaConsumer<String, String> fresh = new KafkaConsumer<>(Map.of(
                    ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, address,
                    ConsumerConfig.GROUP_ID_CONFIG, "restart-test-reader",
                    ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest",
                    ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class,
                    ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class))) {
                fresh.subscribe(List.of(topic));
                assertThat(pollValues(fresh, 2)).containsExactly("before", "after");
            }
            try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, address))) {
                assertThat(admin.listConsumerGroupOffsets("restart-test").partitionsToOffsetAndMetadata().get())
                        .hasEntrySatisfying(new org.apache.kafka.common.TopicPartition(topic, 0),
                                offset -> assertThat(offset.offset()).isEqualTo(2));
            }
        }
    }

    private static List<String> pollValues(KafkaConsumer<String, String> consumer, int count) {
        List<String> values = new ArrayList<>();
        long deadline = System.nanoTime() + TIMEOUT.toNanos();
        while (values.size() < count && System.nanoTime() < deadline) {
            consumer.poll(Duration.ofMillis(200)).forEach(record -> values.add(record.value()));
        }
        return values;
    }
}
