package dev.distillery.common.service;

import io.micrometer.core.instrument.binder.jvm.ClassLoaderMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmGcMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmMemoryMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmThreadMetrics;
import io.micrometer.core.instrument.binder.kafka.KafkaClientMetrics;
import io.micrometer.core.instrument.binder.system.ProcessorMetrics;
import io.micrometer.core.instrument.binder.system.UptimeMetrics;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.vertx.core.Vertx;
import io.vertx.core.VertxOptions;
import io.vertx.core.shareddata.Shareable;
import io.vertx.micrometer.MicrometerMetricsFactory;
import io.vertx.micrometer.MicrometerMetricsOptions;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.kafka.clients.consumer.Consumer;
import org.apache.kafka.clients.producer.Producer;

/**
 * A process's meters: one Micrometer registry in Prometheus's format, what {@code /metrics}
 * serves. It holds the JVM's meters (memory, GC, threads, class loading, CPU, uptime) under
 * Micrometer's standard names, Vert.x's HTTP server and client meters ({@code vertx_http_*}) when
 * the Vert.x instance came from {@link #vertx()}, the Kafka clients' ({@code kafka_consumer_*},
 * {@code kafka_producer_*}, {@code kafka_stream_*}) and the stages' ({@link StageMetrics}).
 *
 * <p>The registry belongs to a Vert.x instance, not to the JVM: a test that runs several
 * pipelines in one JVM sees each pipeline's own counts.
 */
public final class ProcessMetrics {
  private static final String KEY = "distillery.metrics";
  /** Vert.x keeps its metrics backends JVM-wide by name; each instance gets its own. */
  private static final AtomicInteger INSTANCES = new AtomicInteger();

  private ProcessMetrics() {}

  /** The registry, held in Vert.x's local shared data so that it lives and dies with its instance. */
  private record Holder(PrometheusMeterRegistry registry) implements Shareable {}

  /** A Vert.x instance whose HTTP servers, clients and pools report to its registry ({@link #of}). */
  public static Vertx vertx() {
    PrometheusMeterRegistry registry = jvmRegistry();
    MicrometerMetricsOptions options = new MicrometerMetricsOptions().setEnabled(true)
        .setRegistryName("distillery-" + INSTANCES.incrementAndGet());
    Vertx vertx = Vertx.builder().with(new VertxOptions().setMetricsOptions(options))
        .withMetrics(new MicrometerMetricsFactory(registry)).build();
    vertx.sharedData().<String, Holder>getLocalMap(KEY).put(KEY, new Holder(registry));
    return vertx;
  }

  /** The registry of {@code vertx}'s process; one is made on first use if it did not come from {@link #vertx()}. */
  public static PrometheusMeterRegistry of(Vertx vertx) {
    return vertx.sharedData().<String, Holder>getLocalMap(KEY).computeIfAbsent(KEY, key -> new Holder(jvmRegistry()))
        .registry();
  }

  @SuppressWarnings("resource") // JvmGcMetrics listens to the JVM's collectors for as long as the process runs
  private static PrometheusMeterRegistry jvmRegistry() {
    PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    new ClassLoaderMetrics().bindTo(registry);
    new JvmMemoryMetrics().bindTo(registry);
    new JvmGcMetrics().bindTo(registry);
    new JvmThreadMetrics().bindTo(registry);
    new ProcessorMetrics().bindTo(registry);
    new UptimeMetrics().bindTo(registry);
    return registry;
  }

  /** Reports {@code producer}'s own metrics to {@code vertx}'s registry; close the result with the producer. */
  public static KafkaClientMetrics bind(Vertx vertx, Producer<?, ?> producer) {
    KafkaClientMetrics metrics = new KafkaClientMetrics(producer);
    metrics.bindTo(of(vertx));
    return metrics;
  }

  /** Reports {@code consumer}'s own metrics to {@code vertx}'s registry; close the result with the consumer. */
  public static KafkaClientMetrics bind(Vertx vertx, Consumer<?, ?> consumer) {
    KafkaClientMetrics metrics = new KafkaClientMetrics(consumer);
    metrics.bindTo(of(vertx));
    return metrics;
  }
}
