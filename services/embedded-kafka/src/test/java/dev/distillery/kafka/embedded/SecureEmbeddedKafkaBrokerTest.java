package dev.distillery.kafka.embedded;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.errors.ClusterAuthorizationException;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.apache.kafka.common.errors.SslAuthenticationException;
import org.apache.kafka.common.errors.TopicAuthorizationException;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The secure mode against real clients: a user whose ACLs allow it produces and consumes; a
 * client without credentials, one with a wrong password, one without WRITE, and one on the
 * controller listener without the broker's certificate are each refused, and say so.
 */
class SecureEmbeddedKafkaBrokerTest {
    private static final String TOPIC = "secure-round-trip";
    /** Long enough for a login round trip on a busy machine; short enough that a hang fails fast. */
    private static final Duration REFUSAL_WAIT = Duration.ofSeconds(10);
    /** How long a client without credentials is given to get anything at all. */
    private static final Duration NO_ANSWER_WAIT = Duration.ofSeconds(3);

    private static EmbeddedKafkaBroker broker;

    @BeforeAll
    static void startBroker() {
        broker = EmbeddedKafkaBroker.startSecure();
        broker.createTopics(Map.of(TOPIC, 1));
        broker.addUser("writer");
        broker.addUser("reader");
        broker.addUser("writes-elsewhere");
        broker.addAcls(List.of(
                allow("writer", ResourceType.TOPIC, TOPIC, AclOperation.WRITE),
                allow("writer", ResourceType.TOPIC, TOPIC, AclOperation.READ),
                allow("writer", ResourceType.GROUP, "secure-test", AclOperation.READ),
                allow("reader", ResourceType.TOPIC, TOPIC, AclOperation.READ),
                allow("writes-elsewhere", ResourceType.TOPIC, TOPIC, AclOperation.READ),
                allow("writes-elsewhere", ResourceType.TOPIC, "secure-elsewhere", AclOperation.WRITE)));
    }

    @AfterAll
    static void stopBroker() {
        broker.close();
    }

    @Test
    void aUserWithAclsProducesAndConsumes() throws Exception {
        assertThat(broker.clientProperties("writer"))
                .containsEntry("security.protocol", "SASL_SSL")
                .containsEntry("sasl.mechanism", "SCRAM-SHA-512")
                .containsEntry("ssl.truststore.type", "PKCS12")
                .containsKeys("sasl.jaas.config", "ssl.truststore.location", "ssl.truststore.password");
        try (KafkaProducer<String, String> producer = producer(broker.clientProperties("writer"))) {
            producer.send(new ProducerRecord<>(TOPIC, "key", "over TLS")).get(30, TimeUnit.SECONDS);
        }

        Map<String, Object> props = new HashMap<>(broker.clientProperties("writer"));
        props.put(ConsumerConfig.GROUP_ID_CONFIG, "secure-test");
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        List<ConsumerRecord<String, String>> received = new ArrayList<>();
        try (KafkaConsumer<String, String> consumer =
                new KafkaConsumer<>(props, new StringDeserializer(), new StringDeserializer())) {
            consumer.subscribe(List.of(TOPIC));
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (received.isEmpty() && System.nanoTime() < deadline) {
                consumer.poll(Duration.ofMillis(200)).forEach(received::add);
            }
        }
        assertThat(received).extracting(ConsumerRecord::value).contains("over TLS");
    }

    /** TLS but no SASL login: the broker closes every connection before any request is served. */
    @Test
    void aClientWithoutCredentialsGetsNothing() {
        Map<String, Object> props = new HashMap<>(broker.clientPropertiesWithoutCredentials());
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, (int) NO_ANSWER_WAIT.toMillis());
        try (KafkaProducer<String, String> producer = producer(props)) {
            assertThatThrownBy(() -> producer.send(new ProducerRecord<>(TOPIC, "key", "anonymous")).get())
                    .hasCauseInstanceOf(org.apache.kafka.common.errors.TimeoutException.class)
                    .hasMessageContaining("not present in metadata");
        }
    }

    @Test
    void aWrongPasswordIsRefusedAtLogin() {
        Map<String, Object> props = new HashMap<>(broker.clientProperties("writer"));
        props.put("sasl.jaas.config", String.valueOf(props.get("sasl.jaas.config"))
                .replaceFirst("password=\"[^\"]*\"", "password=\"guessed\""));
        try (Admin admin = Admin.create(props)) {
            assertThatThrownBy(() -> admin.listTopics().names().get(REFUSAL_WAIT.toMillis(), TimeUnit.MILLISECONDS))
                    .isInstanceOf(ExecutionException.class)
                    .hasCauseInstanceOf(SaslAuthenticationException.class);
        }
    }

    /**
     * A producer is idempotent by default, and its producer id is granted to whoever may write some
     * topic (KIP-679): this user gets one, and the topic itself refuses the write.
     */
    @Test
    void aUserWithoutWriteOnTheTopicIsNotAuthorized() {
        assertThatThrownBy(() -> sendAs("writes-elsewhere"))
                .hasCauseInstanceOf(TopicAuthorizationException.class)
                .cause().hasMessageContaining(TOPIC);
    }

    /** A user who may write nothing at all is refused earlier, the idempotent producer's id. */
    @Test
    void aUserWhoMayWriteNothingGetsNoProducerId() {
        assertThatThrownBy(() -> sendAs("reader")).hasCauseInstanceOf(ClusterAuthorizationException.class);
    }

    private static void sendAs(String user) throws Exception {
        Map<String, Object> props = new HashMap<>(broker.clientProperties(user));
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, (int) REFUSAL_WAIT.toMillis());
        props.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, (int) REFUSAL_WAIT.toMillis());
        props.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, (int) REFUSAL_WAIT.toMillis() / 2);
        try (KafkaProducer<String, String> producer = producer(props)) {
            producer.send(new ProducerRecord<>(TOPIC, "key", "not mine to write")).get();
        }
    }

    /** The controller listener wants the broker's own certificate; a client with only the truststore has none. */
    @Test
    void theControllerListenerRefusesClientsWithoutTheBrokersCertificate() {
        Map<String, Object> props = new HashMap<>(broker.clientPropertiesWithoutCredentials());
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, broker.controllerAddress());
        try (Admin admin = Admin.create(props)) {
            assertThatThrownBy(() -> admin.listTopics().names().get(REFUSAL_WAIT.toMillis(), TimeUnit.MILLISECONDS))
                    .isInstanceOf(ExecutionException.class)
                    .hasCauseInstanceOf(SslAuthenticationException.class);
        }
    }

    @Test
    void usersAndAclsNeedSecureMode() {
        try (EmbeddedKafkaBroker plaintext = EmbeddedKafkaBroker.start()) {
            assertThatThrownBy(() -> plaintext.addUser("someone")).isInstanceOf(IllegalStateException.class);
        }
        assertThatThrownBy(() -> broker.clientProperties("nobody")).isInstanceOf(IllegalArgumentException.class);
    }

    private static AclBinding allow(String user, ResourceType type, String name, AclOperation operation) {
        return new AclBinding(new ResourcePattern(type, name, PatternType.LITERAL),
                new AccessControlEntry("User:" + user, "*", operation, AclPermissionType.ALLOW));
    }

    private static KafkaProducer<String, String> producer(Map<String, ?> props) {
        return new KafkaProducer<>(new HashMap<>(props), new StringSerializer(), new StringSerializer());
    }
}
