package dev.distillery.kafka.embedded;

import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.net.BindException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BooleanSupplier;
import java.util.stream.Stream;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterOptions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.utils.Time;
import org.apache.kafka.metadata.storage.Formatter;
import org.apache.kafka.server.common.MetadataVersion;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import kafka.server.KafkaConfig;
import kafka.server.KafkaRaftServer;

/**
 * A real single-node Kafka KRaft broker (combined broker and controller) running inside the
 * current JVM, for tests and local runs that need Kafka without Docker.
 *
 * <p>Each instance gets its own free loopback ports and its own temporary log directory, so
 * several brokers can coexist in one JVM. The configuration is tuned for fast tests: every
 * internal topic has replication factor 1 and few partitions, group rebalances start without
 * delay, and topics are never auto-created (create them with {@link #createTopics(Map)}).
 *
 * <pre>{@code
 * try (EmbeddedKafkaBroker kafka = EmbeddedKafkaBroker.start()) {
 *     kafka.createTopics(Map.of("events", 3));
 *     // point clients at kafka.bootstrapServers()
 * }
 * }</pre>
 *
 * <p>Instances are thread-safe.
 */
public final class EmbeddedKafkaBroker implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(EmbeddedKafkaBroker.class);

    private static final int NODE_ID = 1;
    private static final String BROKER_LISTENER = "PLAINTEXT";
    private static final String CONTROLLER_LISTENER = "CONTROLLER";
    private static final String HOST = "127.0.0.1";
    private static final Duration READY_TIMEOUT = Duration.ofSeconds(60);
    /** Another process can grab a probed port before Kafka binds it; a fresh pair usually works. */
    private static final int START_ATTEMPTS = 3;

    private final KafkaRaftServer server;
    private final Admin admin;
    private final Path logDir;
    private final String bootstrapServers;
    private final AtomicBoolean closed = new AtomicBoolean();

    private EmbeddedKafkaBroker(KafkaRaftServer server, Admin admin, Path logDir, String bootstrapServers) {
        this.server = server;
        this.admin = admin;
        this.logDir = logDir;
        this.bootstrapServers = bootstrapServers;
    }

    /**
     * Starts a broker with the default test configuration and returns once it serves requests.
     *
     * @return the running broker; close it to stop it and delete its data
     * @throws IllegalStateException if the broker does not start or become ready in time
     */
    public static EmbeddedKafkaBroker start() {
        return start(Map.of());
    }

    /**
     * Starts a broker whose configuration is the default test configuration with
     * {@code overrides} applied on top, and returns once it serves requests.
     *
     * <p>Overriding {@code listeners}, {@code controller.quorum.voters}, {@code node.id},
     * {@code process.roles} or {@code log.dirs} breaks the broker's own bookkeeping: don't.
     *
     * @param overrides broker properties (see Kafka's broker configuration reference)
     * @return the running broker; close it to stop it and delete its data
     * @throws IllegalStateException if the broker does not start or become ready in time
     */
    public static EmbeddedKafkaBroker start(Map<String, String> overrides) {
        for (int attempt = 1; ; attempt++) {
            try {
                return startOnce(overrides);
            } catch (RuntimeException e) {
                if (attempt >= START_ATTEMPTS || !causedByBindFailure(e)) {
                    throw e;
                }
                LOG.warn("Kafka broker could not bind its ports (attempt {} of {}); retrying on new ports",
                        attempt, START_ATTEMPTS);
            }
        }
    }

    private static EmbeddedKafkaBroker startOnce(Map<String, String> overrides) {
        long startNanos = System.nanoTime();
        Path logDir = createTempDir();
        KafkaRaftServer server = null;
        Admin admin = null;
        try {
            int[] ports = freePorts(2);
            String bootstrap = HOST + ":" + ports[0];
            Map<String, String> props = defaultConfig(logDir, ports[0], ports[1]);
            props.putAll(overrides);
            KafkaConfig config = KafkaConfig.fromProps(toProperties(props), false);

            format(config, logDir);
            server = new KafkaRaftServer(config, Time.SYSTEM);
            server.startup();

            admin = Admin.create(Map.of(
                    AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap,
                    AdminClientConfig.CLIENT_ID_CONFIG, "embedded-kafka-admin"));
            awaitClusterReady(admin);

            EmbeddedKafkaBroker broker = new EmbeddedKafkaBroker(server, admin, logDir, bootstrap);
            LOG.info("Kafka broker started at {} in {} ms (log dir {})", bootstrap,
                    TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - startNanos), logDir);
            return broker;
        } catch (RuntimeException | Error e) {
            shutdownQuietly(server, admin, logDir);
            throw e;
        } catch (Exception e) {
            shutdownQuietly(server, admin, logDir);
            throw new IllegalStateException("Kafka broker failed to start", e);
        }
    }

    private static Map<String, String> defaultConfig(Path logDir, int brokerPort, int controllerPort) {
        Map<String, String> p = new LinkedHashMap<>();
        p.put("process.roles", "broker,controller");
        p.put("node.id", String.valueOf(NODE_ID));
        p.put("controller.quorum.voters", NODE_ID + "@" + HOST + ":" + controllerPort);
        p.put("listeners", BROKER_LISTENER + "://" + HOST + ":" + brokerPort + ","
                + CONTROLLER_LISTENER + "://" + HOST + ":" + controllerPort);
        p.put("advertised.listeners", BROKER_LISTENER + "://" + HOST + ":" + brokerPort);
        p.put("listener.security.protocol.map", BROKER_LISTENER + ":PLAINTEXT," + CONTROLLER_LISTENER + ":PLAINTEXT");
        p.put("controller.listener.names", CONTROLLER_LISTENER);
        p.put("inter.broker.listener.name", BROKER_LISTENER);
        p.put("log.dirs", logDir.toString());

        // One node: anything above 1 could never be satisfied.
        p.put("offsets.topic.replication.factor", "1");
        p.put("transaction.state.log.replication.factor", "1");
        p.put("transaction.state.log.min.isr", "1");
        p.put("share.coordinator.state.topic.replication.factor", "1");
        p.put("share.coordinator.state.topic.min.isr", "1");
        p.put("default.replication.factor", "1");
        p.put("min.insync.replicas", "1");

        // Internal topics are created on first use; the defaults (50 partitions) cost seconds.
        p.put("offsets.topic.num.partitions", "1");
        p.put("transaction.state.log.num.partitions", "1");
        p.put("share.coordinator.state.topic.num.partitions", "1");

        // The default delays exist to batch joins of large production groups; in tests they only wait.
        p.put("group.initial.rebalance.delay.ms", "0");
        p.put("group.streams.initial.rebalance.delay.ms", "0");
        p.put("group.streams.min.heartbeat.interval.ms", "500");
        p.put("group.streams.heartbeat.interval.ms", "500");

        // Tests must create what they use, so a typo fails instead of silently creating a topic.
        p.put("auto.create.topics.enable", "false");
        p.put("num.partitions", "1");

        // The log cleaner allocates its 128 MB dedupe buffer up front; tests compact almost nothing.
        p.put("log.cleaner.dedupe.buffer.size", String.valueOf(4 * 1024 * 1024));
        return p;
    }

    private static void format(KafkaConfig config, Path logDir) throws Exception {
        new Formatter()
                .setNodeId(NODE_ID)
                .setClusterId(Uuid.randomUuid().toString())
                .setDirectories(List.of(logDir.toString()))
                .setMetadataLogDirectory(config.metadataLogDir())
                .setControllerListenerName(CONTROLLER_LISTENER)
                .setReleaseVersion(MetadataVersion.LATEST_PRODUCTION)
                // The formatter narrates to stdout; our own start log line says what matters.
                .setPrintStream(new PrintStream(OutputStream.nullOutputStream()))
                .run();
    }

    /**
     * {@link KafkaRaftServer#startup()} can return before the broker is unfenced and answers
     * metadata requests; clients started in that window would fail or stall.
     */
    private static void awaitClusterReady(Admin admin) {
        awaitCondition(() -> {
            try {
                return !admin.describeCluster(new DescribeClusterOptions().timeoutMs(2_000))
                        .nodes().get().isEmpty();
            } catch (ExecutionException e) {
                return false;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("Interrupted while waiting for the Kafka broker", e);
            }
        }, "the Kafka broker to serve requests");
    }

    /** @return the {@code host:port} list for a client's {@code bootstrap.servers} */
    public String bootstrapServers() {
        return bootstrapServers;
    }

    /** The broker's data directory, deleted on {@link #close()}. */
    Path logDir() {
        return logDir;
    }

    /**
     * Creates each topic with the given number of partitions (replication factor 1) and waits
     * until every partition of every listed topic has a leader, so clients can use them at once.
     *
     * <p>Topics that already exist are left as they are, whatever their partition count, which
     * makes this safe to call from every test that shares a broker.
     *
     * @param partitionsByName partition count by topic name
     * @throws IllegalStateException if a topic cannot be created or does not become ready in time
     */
    public void createTopics(Map<String, Integer> partitionsByName) {
        if (partitionsByName.isEmpty()) {
            return;
        }
        List<NewTopic> newTopics = new ArrayList<>();
        partitionsByName.forEach((name, partitions) -> newTopics.add(new NewTopic(name, partitions, (short) 1)));
        try {
            for (Map.Entry<String, KafkaFuture<Void>> created : admin.createTopics(newTopics).values().entrySet()) {
                try {
                    created.getValue().get(READY_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
                } catch (ExecutionException e) {
                    if (!(e.getCause() instanceof TopicExistsException)) {
                        throw new IllegalStateException("Could not create topic " + created.getKey(), e.getCause());
                    }
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("Interrupted while creating topics", e);
        } catch (TimeoutException e) {
            throw new IllegalStateException("Timed out creating topics " + partitionsByName.keySet(), e);
        }
        awaitLeaders(partitionsByName.keySet());
    }

    /**
     * The controller acknowledges a creation once it is committed, but the broker applies the
     * new metadata asynchronously; a producer racing it would see UNKNOWN_TOPIC_OR_PARTITION.
     */
    private void awaitLeaders(Set<String> topics) {
        awaitCondition(() -> {
            try {
                Map<String, TopicDescription> descriptions = admin.describeTopics(topics).allTopicNames().get();
                return descriptions.values().stream()
                        .flatMap(d -> d.partitions().stream())
                        .allMatch(p -> p.leader() != null && !p.leader().isEmpty());
            } catch (ExecutionException e) {
                return false;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("Interrupted while waiting for topics " + topics, e);
            }
        }, "leaders for topics " + topics);
    }

    /**
     * Stops the broker, waits until it has shut down and deletes its log directory.
     * Calling it again does nothing.
     */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            long startNanos = System.nanoTime();
            shutdownQuietly(server, admin, logDir);
            LOG.info("Kafka broker at {} stopped in {} ms", bootstrapServers,
                    TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - startNanos));
        }
    }

    /** Best effort: on close or a failed start there is nobody left to handle a failure but the log. */
    private static void shutdownQuietly(KafkaRaftServer server, Admin admin, Path logDir) {
        if (admin != null) {
            try {
                admin.close(Duration.ofSeconds(5));
            } catch (RuntimeException e) {
                LOG.warn("Closing the embedded Kafka admin client failed", e);
            }
        }
        if (server != null) {
            try {
                server.shutdown();
                server.awaitShutdown();
            } catch (RuntimeException e) {
                LOG.warn("Shutting down the embedded Kafka broker failed", e);
            }
        }
        try {
            deleteRecursively(logDir);
        } catch (IOException | UncheckedIOException e) {
            LOG.warn("Could not delete the embedded Kafka log directory {}", logDir, e);
        }
    }

    private static void awaitCondition(BooleanSupplier condition, String what) {
        long deadline = System.nanoTime() + READY_TIMEOUT.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("Timed out after " + READY_TIMEOUT.toSeconds() + " s waiting for " + what);
            }
            try {
                // Each probe is a network round trip to the broker; a short pause keeps it from spinning.
                Thread.sleep(20);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("Interrupted while waiting for " + what, e);
            }
        }
    }

    /** Holds all sockets open together so that the ports are distinct. */
    private static int[] freePorts(int count) throws IOException {
        List<ServerSocket> sockets = new ArrayList<>();
        try {
            int[] ports = new int[count];
            for (int i = 0; i < count; i++) {
                ServerSocket socket = new ServerSocket(0, 50, InetAddress.getByName(HOST));
                sockets.add(socket);
                ports[i] = socket.getLocalPort();
            }
            return ports;
        } finally {
            for (ServerSocket socket : sockets) {
                socket.close();
            }
        }
    }

    private static boolean causedByBindFailure(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof BindException) {
                return true;
            }
        }
        return false;
    }

    private static Path createTempDir() {
        try {
            return Files.createTempDirectory("distillery-kafka-");
        } catch (IOException e) {
            throw new UncheckedIOException("Could not create a log directory for the embedded Kafka broker", e);
        }
    }

    private static void deleteRecursively(Path dir) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        try (Stream<Path> paths = Files.walk(dir)) {
            for (Path path : paths.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(path);
            }
        }
    }

    private static Properties toProperties(Map<String, String> map) {
        Properties properties = new Properties();
        properties.putAll(map);
        return properties;
    }
}
