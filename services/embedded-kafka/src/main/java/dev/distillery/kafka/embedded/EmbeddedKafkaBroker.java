package dev.distillery.kafka.embedded;

import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.net.BindException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Stream;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterOptions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.ScramCredentialInfo;
import org.apache.kafka.clients.admin.ScramMechanism;
import org.apache.kafka.clients.admin.UserScramCredentialUpsertion;
import org.apache.kafka.common.KafkaFuture;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclBindingFilter;
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
 * <h2>Secure mode</h2>
 * {@link #startSecure()} starts a broker whose client listener speaks SASL_SSL with SCRAM-SHA-512,
 * with a TLS certificate made at start, and authorizes every request with KRaft's
 * {@code StandardAuthorizer}: a principal may do only what an ACL allows. Add principals with
 * {@link #addUser(String)}, allow them things with {@link #addAcls(Collection)}, and configure their
 * clients with {@link #clientProperties(String)}.
 *
 * <h2>Outages</h2>
 * {@link #stop()} takes a broker away as a crashed or restarting node would be, keeping its ports
 * and data, and {@link #restart()} brings it back on the same address with everything it held, so
 * tests can check that clients ride out a broker restart or a broker that is away for a while.
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

    // Secure mode (startSecure).
    private static final String SECURE_LISTENER = "CLIENT";
    private static final String SCRAM_MECHANISM = "SCRAM-SHA-512";
    /** Kafka's minimum for SCRAM-SHA-512; more would only slow every login. */
    private static final int SCRAM_ITERATIONS = 4096;
    /** The super user of the client listener: this class's own admin client and the inter-broker client. */
    private static final String ADMIN_USER = "admin";
    /** Subject of the broker's certificate, so the principal it has on the controller listener. */
    private static final String BROKER_DN = "CN=distillery-embedded-broker";

    /** The running server; replaced by {@link #restart()}, null while {@link #stop() stopped}. */
    private KafkaRaftServer server;
    /** What {@link #restart()} starts again: the same node, ports and log directory. */
    private final KafkaConfig config;
    private final Admin admin;
    private final Path logDir;
    private final String bootstrapServers;
    private final String controllerAddress;
    /** Null in the default PLAINTEXT mode. */
    private final Security security;
    private final AtomicBoolean closed = new AtomicBoolean();

    private EmbeddedKafkaBroker(KafkaRaftServer server, KafkaConfig config, Admin admin, Path logDir,
            String bootstrapServers, String controllerAddress, Security security) {
        this.server = server;
        this.config = config;
        this.admin = admin;
        this.logDir = logDir;
        this.bootstrapServers = bootstrapServers;
        this.controllerAddress = controllerAddress;
        this.security = security;
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
        return start(overrides, false);
    }

    /**
     * Starts a broker in secure mode (see the class comment) and returns once it serves requests.
     *
     * @return the running broker; close it to stop it and delete its data and certificates
     * @throws IllegalStateException if the broker does not start or become ready in time
     */
    public static EmbeddedKafkaBroker startSecure() {
        return startSecure(Map.of());
    }

    /**
     * Starts a broker in secure mode with {@code overrides} applied on top of its configuration;
     * the listener, SASL, SSL and authorizer keys are the broker's own bookkeeping: don't override them.
     *
     * @param overrides broker properties (see Kafka's broker configuration reference)
     * @return the running broker; close it to stop it and delete its data and certificates
     * @throws IllegalStateException if the broker does not start or become ready in time
     */
    public static EmbeddedKafkaBroker startSecure(Map<String, String> overrides) {
        return start(overrides, true);
    }

    private static EmbeddedKafkaBroker start(Map<String, String> overrides, boolean secure) {
        for (int attempt = 1; ; attempt++) {
            try {
                return startOnce(overrides, secure);
            } catch (RuntimeException e) {
                if (attempt >= START_ATTEMPTS || !causedByBindFailure(e)) {
                    throw e;
                }
                LOG.warn("Kafka broker could not bind its ports (attempt {} of {}); retrying on new ports",
                        attempt, START_ATTEMPTS);
            }
        }
    }

    private static EmbeddedKafkaBroker startOnce(Map<String, String> overrides, boolean secure) {
        long startNanos = System.nanoTime();
        Path logDir = createTempDir("distillery-kafka-");
        Security security = null;
        KafkaRaftServer server = null;
        Admin admin = null;
        try {
            security = secure ? Security.create() : null;
            int[] ports = freePorts(2);
            String bootstrap = HOST + ":" + ports[0];
            Map<String, String> props = defaultConfig(logDir, ports[0], ports[1]);
            if (security != null) {
                props.putAll(security.brokerConfig(ports[0], ports[1]));
            }
            props.putAll(overrides);
            KafkaConfig config = KafkaConfig.fromProps(toProperties(props), false);

            format(config, logDir, security);
            server = new KafkaRaftServer(config, Time.SYSTEM);
            server.startup();

            Map<String, Object> adminConfig = new LinkedHashMap<>();
            adminConfig.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            adminConfig.put(AdminClientConfig.CLIENT_ID_CONFIG, "embedded-kafka-admin");
            if (security != null) {
                adminConfig.putAll(security.clientConfig(ADMIN_USER, security.adminPassword));
            }
            admin = Admin.create(adminConfig);
            awaitClusterReady(admin);

            EmbeddedKafkaBroker broker = new EmbeddedKafkaBroker(server, config, admin, logDir, bootstrap,
                    HOST + ":" + ports[1], security);
            LOG.info("Kafka broker started at {}{} in {} ms (log dir {})", bootstrap, secure ? " (SASL_SSL)" : "",
                    TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - startNanos), logDir);
            return broker;
        } catch (RuntimeException | Error e) {
            shutdownQuietly(server, admin, logDir, security);
            throw e;
        } catch (Exception e) {
            shutdownQuietly(server, admin, logDir, security);
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

    private static void format(KafkaConfig config, Path logDir, Security security) throws Exception {
        Formatter formatter = new Formatter()
                .setNodeId(NODE_ID)
                .setClusterId(Uuid.randomUuid().toString())
                .setDirectories(List.of(logDir.toString()))
                .setMetadataLogDirectory(config.metadataLogDir())
                .setControllerListenerName(CONTROLLER_LISTENER)
                .setReleaseVersion(MetadataVersion.LATEST_PRODUCTION)
                // The formatter narrates to stdout; our own start log line says what matters.
                .setPrintStream(new PrintStream(OutputStream.nullOutputStream()));
        if (security != null) {
            // The admin's credential must be in the first metadata: the broker's own inter-broker
            // client and our admin client authenticate with it before anyone could add it.
            formatter.setScramArguments(List.of(
                    SCRAM_MECHANISM + "=[name=" + ADMIN_USER + ",password=" + security.adminPassword + "]"));
        }
        formatter.run();
    }

    /**
     * {@link KafkaRaftServer#startup()} can return before the broker is unfenced and answers
     * metadata requests; clients started in that window would fail or stall.
     */
    private static void awaitClusterReady(Admin admin) {
        awaitCondition(() -> !admin.describeCluster(new DescribeClusterOptions().timeoutMs(2_000)).nodes().get().isEmpty(),
                "the Kafka broker to serve requests");
    }

    /** @return the {@code host:port} list for a client's {@code bootstrap.servers} */
    public String bootstrapServers() {
        return bootstrapServers;
    }

    /** The broker's data directory, deleted on {@link #close()}. */
    Path logDir() {
        return logDir;
    }

    /** {@code host:port} of the controller listener, which clients have no business with. */
    String controllerAddress() {
        return controllerAddress;
    }

    /**
     * Gives {@code user} a SCRAM-SHA-512 credential with a fresh random password (secure mode only)
     * and returns once the broker accepts it. The user may do nothing until ACLs allow it.
     *
     * @param user the user name; its principal is {@code User:<user>}
     * @throws IllegalStateException in PLAINTEXT mode, or if the credential is not accepted in time
     */
    public void addUser(String user) {
        Security security = requireSecure();
        String password = Security.randomSecret();
        await(admin.alterUserScramCredentials(List.of(new UserScramCredentialUpsertion(user,
                new ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS), password))).all(),
                "adding user " + user);
        security.passwords.put(user, password);
        // The controller acknowledges the credential once committed; the broker's credential
        // cache learns it from the metadata log a moment later. Only a login proves it has.
        Map<String, Object> probeConfig = new LinkedHashMap<>(clientProperties(user));
        probeConfig.put(AdminClientConfig.CLIENT_ID_CONFIG, "embedded-kafka-login-probe");
        try (Admin probe = Admin.create(probeConfig)) {
            awaitCondition(() -> probe.describeCluster(new DescribeClusterOptions().timeoutMs(2_000)).clusterId().get() != null,
                    "user " + user + " to authenticate");
        }
    }

    /**
     * Creates the ACL bindings (secure mode only) and returns once the broker authorizes with them.
     *
     * @throws IllegalStateException in PLAINTEXT mode, or if the bindings are not in force in time
     */
    public void addAcls(Collection<AclBinding> bindings) {
        requireSecure();
        await(admin.createAcls(bindings).all(), "creating ACLs " + bindings);
        // As with credentials: committed by the controller first, applied by the broker's authorizer after.
        awaitCondition(() -> new HashSet<>(admin.describeAcls(AclBindingFilter.ANY).values().get()).containsAll(bindings),
                "ACLs to be in force");
    }

    /**
     * Client properties that connect as {@code user} (secure mode only): {@code bootstrap.servers},
     * {@code security.protocol}, {@code sasl.mechanism}, {@code sasl.jaas.config} and the trust store
     * holding the broker's certificate.
     *
     * @param user a user added with {@link #addUser(String)}
     * @throws IllegalArgumentException if no such user was added
     */
    public Map<String, String> clientProperties(String user) {
        Security security = requireSecure();
        String password = security.passwords.get(user);
        if (password == null) {
            throw new IllegalArgumentException("No user " + user + " was added to this broker");
        }
        Map<String, String> props = new LinkedHashMap<>();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers);
        props.putAll(security.clientConfig(user, password));
        return props;
    }

    /**
     * Client properties with TLS (the broker's certificate is trusted) but no credentials (secure
     * mode only): what an unauthenticated client would use, for tests that it is refused.
     */
    public Map<String, String> clientPropertiesWithoutCredentials() {
        Security security = requireSecure();
        Map<String, String> props = new LinkedHashMap<>();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers);
        props.put("security.protocol", "SSL");
        props.putAll(security.truststoreConfig());
        return props;
    }

    private Security requireSecure() {
        if (security == null) {
            throw new IllegalStateException("Users and ACLs exist only on a broker started with startSecure()");
        }
        return security;
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
        awaitCondition(() -> admin.describeTopics(topics).allTopicNames().get().values().stream()
                .flatMap(d -> d.partitions().stream())
                .allMatch(p -> p.leader() != null && !p.leader().isEmpty()), "leaders for topics " + topics);
    }

    /**
     * Stops the broker as an outage would, keeping its ports, log directory and data: clients see
     * it gone until {@link #restart()}. Stopping a stopped broker does nothing. For a test's own
     * broker (not the one {@link EmbeddedKafkaExtension} shares between classes: every other class
     * would lose it too).
     *
     * @throws IllegalStateException if the broker was closed
     */
    public synchronized void stop() {
        requireOpen();
        if (server == null) {
            return;
        }
        long startNanos = System.nanoTime();
        try {
            server.shutdown();
            server.awaitShutdown();
        } finally {
            server = null;
        }
        LOG.info("Kafka broker at {} stopped for a restart in {} ms (log dir {} kept)", bootstrapServers,
                TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - startNanos), logDir);
    }

    /**
     * Starts the broker again on the same ports with the same log directory (stopping it first if it
     * runs), as a restarted node would come back: topics, records, committed offsets and groups are
     * as they were, and clients reconnect by themselves. Returns once it serves requests.
     *
     * @throws IllegalStateException if the broker was closed, or does not start or become ready in time
     *     (another process may have taken one of its ports while it was stopped)
     */
    public synchronized void restart() {
        stop();
        long startNanos = System.nanoTime();
        long deadline = startNanos + READY_TIMEOUT.toNanos();
        while (server == null) {
            KafkaRaftServer restarted = new KafkaRaftServer(config, Time.SYSTEM);
            try {
                restarted.startup();
                server = restarted;
            } catch (RuntimeException e) {
                shutdownQuietly(restarted, null, null, null);
                // A port of the stopped broker may still be held a moment (or taken by someone else).
                if (!causedByBindFailure(e) || System.nanoTime() > deadline) {
                    throw new IllegalStateException("Kafka broker at " + bootstrapServers + " could not start again", e);
                }
                LOG.warn("Kafka broker at {} cannot bind its ports yet; trying again", bootstrapServers);
                sleepBriefly();
            }
        }
        awaitClusterReady(admin);
        LOG.info("Kafka broker at {} started again in {} ms", bootstrapServers,
                TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - startNanos));
    }

    /** False between {@link #stop()} and {@link #restart()}, and after {@link #close()}. */
    public synchronized boolean running() {
        return server != null && !closed.get();
    }

    private void requireOpen() {
        if (closed.get()) {
            throw new IllegalStateException("Kafka broker at " + bootstrapServers + " was closed");
        }
    }

    private static void sleepBriefly() {
        try {
            Thread.sleep(200);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("Interrupted while restarting the Kafka broker", e);
        }
    }

    /**
     * Stops the broker (if it runs), waits until it has shut down and deletes its log directory.
     * Calling it again does nothing.
     */
    @Override
    public void close() {
        if (closed.compareAndSet(false, true)) {
            long startNanos = System.nanoTime();
            KafkaRaftServer running;
            synchronized (this) {
                running = server;
                server = null;
            }
            shutdownQuietly(running, admin, logDir, security);
            LOG.info("Kafka broker at {} stopped in {} ms", bootstrapServers,
                    TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - startNanos));
        }
    }

    /** Best effort: on close or a failed start there is nobody left to handle a failure but the log. */
    private static void shutdownQuietly(KafkaRaftServer server, Admin admin, Path logDir, Security security) {
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
        if (logDir == null) {
            return;
        }
        for (Path dir : security == null ? List.of(logDir) : List.of(logDir, security.dir)) {
            try {
                deleteRecursively(dir);
            } catch (IOException | UncheckedIOException e) {
                LOG.warn("Could not delete the embedded Kafka directory {}", dir, e);
            }
        }
    }

    /** A check against the broker; a failed request ({@link ExecutionException}) means "not yet". */
    @FunctionalInterface
    private interface Probe {
        boolean holds() throws ExecutionException, InterruptedException;
    }

    private static void awaitCondition(Probe condition, String what) {
        long deadline = System.nanoTime() + READY_TIMEOUT.toNanos();
        try {
            while (!holds(condition)) {
                if (System.nanoTime() > deadline) {
                    throw new IllegalStateException("Timed out after " + READY_TIMEOUT.toSeconds() + " s waiting for " + what);
                }
                // Each probe is a network round trip to the broker; a short pause keeps it from spinning.
                Thread.sleep(20);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("Interrupted while waiting for " + what, e);
        }
    }

    private static boolean holds(Probe condition) throws InterruptedException {
        try {
            return condition.holds();
        } catch (ExecutionException e) {
            return false;
        }
    }

    /** Waits for an admin operation the broker must complete. */
    private static void await(KafkaFuture<?> operation, String what) {
        try {
            operation.get(READY_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("Interrupted while " + what, e);
        } catch (ExecutionException | TimeoutException e) {
            throw new IllegalStateException("Failed " + what, e);
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

    private static Path createTempDir(String prefix) {
        try {
            return Files.createTempDirectory(prefix);
        } catch (IOException e) {
            throw new UncheckedIOException("Could not create a directory for the embedded Kafka broker", e);
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

    /**
     * What secure mode adds: a self-signed certificate for 127.0.0.1 and localhost, made at start
     * with the JDK's keytool, in a PKCS12 keystore (broker only) and truststore (for every client);
     * the stores' password, the admin's password, and the password of every user added since.
     */
    private static final class Security {
        private static final SecureRandom RANDOM = new SecureRandom();

        final Path dir;
        final Path keystore;
        final Path truststore;
        final String storePassword = randomSecret();
        final String adminPassword = randomSecret();
        final Map<String, String> passwords = new ConcurrentHashMap<>();

        private Security(Path dir) {
            this.dir = dir;
            this.keystore = dir.resolve("broker.p12");
            this.truststore = dir.resolve("truststore.p12");
        }

        static Security create() throws IOException, InterruptedException {
            Security security = new Security(createTempDir("distillery-kafka-tls-"));
            try {
                Path certificate = security.dir.resolve("broker.crt");
                security.keytool("-genkeypair", "-alias", "broker", "-keyalg", "EC", "-groupname", "secp256r1",
                        "-dname", BROKER_DN, "-ext", "SAN=ip:" + HOST + ",dns:localhost", "-validity", "30",
                        "-keystore", security.keystore.toString(), "-storetype", "PKCS12",
                        "-storepass:env", "STORE_PASSWORD", "-keypass:env", "STORE_PASSWORD");
                security.keytool("-exportcert", "-alias", "broker", "-rfc", "-file", certificate.toString(),
                        "-keystore", security.keystore.toString(), "-storetype", "PKCS12",
                        "-storepass:env", "STORE_PASSWORD");
                security.keytool("-importcert", "-noprompt", "-alias", "broker", "-file", certificate.toString(),
                        "-keystore", security.truststore.toString(), "-storetype", "PKCS12",
                        "-storepass:env", "STORE_PASSWORD");
                return security;
            } catch (IOException | InterruptedException | RuntimeException e) {
                deleteRecursively(security.dir);
                throw e;
            }
        }

        /** Runs the JDK's keytool; the password goes through the environment, not the command line. */
        private void keytool(String... args) throws IOException, InterruptedException {
            List<String> command = new ArrayList<>();
            command.add(Path.of(System.getProperty("java.home"), "bin", "keytool").toString());
            command.addAll(List.of(args));
            ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true);
            builder.environment().put("STORE_PASSWORD", storePassword);
            Process process = builder.start();
            String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!process.waitFor(1, TimeUnit.MINUTES) || process.exitValue() != 0) {
                process.destroyForcibly();
                throw new IllegalStateException("keytool " + args[0] + " failed: " + output.trim());
            }
        }

        /**
         * Two listeners. CLIENT is the only one clients are told about: SASL_SSL, so every connection
         * is encrypted and logs in with SCRAM, and every request is authorized by ACLs
         * ({@code allow.everyone.if.no.acl.found=false}: no ACL, no access). It is the inter-broker
         * listener too, where the broker's own clients log in as the admin super user.
         * CONTROLLER carries KRaft's own traffic (the broker registering with and heartbeating to the
         * controller, forwarded admin requests). It is TLS and demands a client certificate that the
         * truststore trusts, and the truststore holds only the broker's own: a client without the
         * broker's private key fails the handshake, so no one reaches it unauthenticated (as
         * ANONYMOUS). The broker's certificate subject is a super user so that the broker itself may.
         */
        Map<String, String> brokerConfig(int clientPort, int controllerPort) {
            Map<String, String> p = new LinkedHashMap<>();
            p.put("listeners", SECURE_LISTENER + "://" + HOST + ":" + clientPort + ","
                    + CONTROLLER_LISTENER + "://" + HOST + ":" + controllerPort);
            p.put("advertised.listeners", SECURE_LISTENER + "://" + HOST + ":" + clientPort);
            p.put("listener.security.protocol.map", SECURE_LISTENER + ":SASL_SSL," + CONTROLLER_LISTENER + ":SSL");
            p.put("inter.broker.listener.name", SECURE_LISTENER);
            p.put("sasl.enabled.mechanisms", SCRAM_MECHANISM);
            p.put("sasl.mechanism.inter.broker.protocol", SCRAM_MECHANISM);
            // The inter-broker client's login; the broker's server side needs only the module.
            p.put("listener.name.client.scram-sha-512.sasl.jaas.config", jaas(ADMIN_USER, adminPassword));
            p.put("ssl.keystore.type", "PKCS12");
            p.put("ssl.keystore.location", keystore.toString());
            p.put("ssl.keystore.password", storePassword);
            p.put("ssl.key.password", storePassword);
            p.putAll(truststoreConfig());
            p.put("listener.name.controller.ssl.client.auth", "required");
            p.put("authorizer.class.name", "org.apache.kafka.metadata.authorizer.StandardAuthorizer");
            p.put("allow.everyone.if.no.acl.found", "false");
            p.put("super.users", "User:" + ADMIN_USER + ";User:" + BROKER_DN);
            return p;
        }

        Map<String, String> clientConfig(String user, String password) {
            Map<String, String> p = new LinkedHashMap<>();
            p.put("security.protocol", "SASL_SSL");
            p.put("sasl.mechanism", SCRAM_MECHANISM);
            p.put("sasl.jaas.config", jaas(user, password));
            p.putAll(truststoreConfig());
            return p;
        }

        Map<String, String> truststoreConfig() {
            return Map.of(
                    "ssl.truststore.location", truststore.toString(),
                    "ssl.truststore.type", "PKCS12",
                    "ssl.truststore.password", storePassword);
        }

        private static String jaas(String user, String password) {
            return "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"" + user
                    + "\" password=\"" + password + "\";";
        }

        /** Hex: nothing to escape in JAAS quotes or the formatter's {@code [name=...,password=...]}. */
        static String randomSecret() {
            byte[] bytes = new byte[16];
            RANDOM.nextBytes(bytes);
            return HexFormat.of().formatHex(bytes);
        }
    }

    private static Properties toProperties(Map<String, String> map) {
        Properties properties = new Properties();
        properties.putAll(map);
        return properties;
    }
}
