package dev.distillery.kafka.embedded;

import java.util.Map;

import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.ParameterContext;
import org.junit.jupiter.api.extension.ParameterResolver;

/**
 * JUnit 5 extension that provides a running {@link EmbeddedKafkaBroker} and injects it into
 * test constructors, test methods and lifecycle methods ({@code @BeforeAll}, {@code @BeforeEach},
 * ...) that declare a parameter of that type.
 *
 * <h2>One broker per JVM (default)</h2>
 * <pre>{@code
 * @ExtendWith(EmbeddedKafkaExtension.class)
 * class MyTest {
 *     @Test
 *     void test(EmbeddedKafkaBroker kafka) { ... }
 * }
 * }</pre>
 * Registered like this, every test class in the JVM (a Surefire fork) shares one broker: it is
 * started before the first such class runs and closed when the whole test run ends. Starting a
 * broker takes seconds, so sharing is much faster than one broker per class; the price is that
 * tests see each other's topics and groups, so give them distinct names.
 * {@link EmbeddedKafkaBroker#createTopics(Map)} tolerates existing topics for this reason.
 *
 * <h2>One broker per test class</h2>
 * <pre>{@code
 * @RegisterExtension
 * static final EmbeddedKafkaExtension KAFKA = EmbeddedKafkaExtension.perClass(Map.of("log.retention.ms", "1000"));
 * }</pre>
 * gives the class (and its {@code @Nested} classes) a private broker with the given configuration
 * overrides, closed after the class's last test.
 *
 * <p>The broker lives in an {@link ExtensionContext.Store}, which closes {@link AutoCloseable}
 * values when its context ends (JUnit 5.13 and later), so no {@code AfterAllCallback} is needed.
 */
public final class EmbeddedKafkaExtension implements BeforeAllCallback, ParameterResolver {

    private static final ExtensionContext.Namespace NAMESPACE =
            ExtensionContext.Namespace.create(EmbeddedKafkaExtension.class);
    private static final String SHARED_KEY = "shared-broker";
    private static final String PER_CLASS_KEY = "per-class-broker";

    private final boolean shared;
    private final Map<String, String> overrides;

    /** Uses one broker, with the default configuration, for all test classes in the JVM. */
    public EmbeddedKafkaExtension() {
        this(true, Map.of());
    }

    private EmbeddedKafkaExtension(boolean shared, Map<String, String> overrides) {
        this.shared = shared;
        this.overrides = Map.copyOf(overrides);
    }

    /**
     * An extension that starts a private broker for each test class that registers it.
     *
     * @param overrides broker properties applied on top of the defaults, see
     *                  {@link EmbeddedKafkaBroker#start(Map)}
     * @return the extension, to be registered with {@code @RegisterExtension} on a static field
     */
    public static EmbeddedKafkaExtension perClass(Map<String, String> overrides) {
        return new EmbeddedKafkaExtension(false, overrides);
    }

    /** Starts the broker before the class, so its start-up time isn't charged to the first test. */
    @Override
    public void beforeAll(ExtensionContext context) {
        broker(context);
    }

    @Override
    public boolean supportsParameter(ParameterContext parameterContext, ExtensionContext extensionContext) {
        return parameterContext.getParameter().getType() == EmbeddedKafkaBroker.class;
    }

    @Override
    public Object resolveParameter(ParameterContext parameterContext, ExtensionContext extensionContext) {
        // Constructors of PER_CLASS test instances are resolved before beforeAll runs, hence lazy.
        return broker(extensionContext);
    }

    private EmbeddedKafkaBroker broker(ExtensionContext context) {
        // Store lookups fall through to parent contexts, so @Nested classes and test methods
        // find the broker of their enclosing class (or of the root) instead of starting another.
        ExtensionContext owner = shared ? context.getRoot() : context;
        String key = shared ? SHARED_KEY : PER_CLASS_KEY;
        return owner.getStore(NAMESPACE).getOrComputeIfAbsent(
                key, k -> EmbeddedKafkaBroker.start(overrides), EmbeddedKafkaBroker.class);
    }
}
