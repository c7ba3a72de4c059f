package dev.distillery.schemas.kafka;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.avro.Schema;
import org.apache.avro.SystemLimitException;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.DatumReader;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.EncoderFactory;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.BinaryMessageEncoder;
import org.apache.avro.message.SchemaStore;
import org.apache.avro.specific.SpecificData;
import org.apache.avro.specific.SpecificDatumReader;
import org.apache.avro.specific.SpecificDatumWriter;
import org.apache.avro.specific.SpecificRecord;
import org.apache.avro.util.ClassSecurityValidator;
import org.apache.kafka.common.errors.SerializationException;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serializer;

/**
 * Kafka serde for one generated Avro record type. By default it writes Avro single-object
 * encoding: each value starts with a 10-byte header (marker + schema fingerprint), so a reader can
 * resolve data written with any schema version its store knows. The store holds every released
 * version of the record (see {@link ReleasedSchemas}), which is what lets an older service read a
 * newer writer's records. {@link #withRegistry} makes one that writes Confluent's wire format
 * through a schema registry instead (what Kafka UI, Connect, Flink and confluent-kafka read); every
 * serde with a registry reads both formats, so a topic can move from one to the other.
 */
public final class AvroSerde<T extends SpecificRecord> implements Serde<T> {
  /**
   * The largest record decoded. Kafka's default limit on a record is 1 MB; ours (soft labels of
   * 256 samples x 10 classes) are about 10 KB. A larger value is refused before Avro reads it.
   */
  public static final int MAX_RECORD_BYTES = 16 << 20;

  static {
    // Avro allocates a string, bytes or array of the length a record claims before reading it:
    // without limits, ten crafted bytes ask for gigabytes. Its limits are system properties, read
    // once when Avro first checks one, which may be before this class loads (any Avro decoding
    // does it): Avro's own package-private resetLimits() reads them again. An operator's -D wins.
    limit("org.apache.avro.limits.bytes.maxLength", MAX_RECORD_BYTES);
    limit("org.apache.avro.limits.string.maxLength", 1 << 20);
    limit("org.apache.avro.limits.collectionItems.maxLength", 100_000);
    try {
      java.lang.reflect.Method reset = SystemLimitException.class.getDeclaredMethod("resetLimits");
      reset.setAccessible(true);
      reset.invoke(null);
    } catch (ReflectiveOperationException | RuntimeException e) {
      throw new ExceptionInInitializerError("cannot apply Avro's decoding limits: " + e);
    }

    // Avro 1.12 refuses to instantiate classes outside trusted packages. Its system property
    // (org.apache.avro.SERIALIZABLE_PACKAGES, set by the launch scripts and the build) is read once,
    // at Avro's first use, which may precede this class: the API adds our package regardless.
    ClassSecurityValidator.ClassSecurityPredicate previous = ClassSecurityValidator.getGlobal();
    ClassSecurityValidator.setGlobal(ClassSecurityValidator.composite(previous,
        type -> type.getName().startsWith("dev.distillery.schemas.")));
  }

  private static void limit(String property, int value) {
    if (System.getProperty(property) == null) {
      System.setProperty(property, String.valueOf(value));
    }
  }

  /** The first byte of a value in Confluent's wire format; a single-object value starts with 0xC3 0x01. */
  private static final byte CONFLUENT_MAGIC = 0;
  private static final int CONFLUENT_HEADER = 5;

  private final Class<T> type;
  private final Schema schema;
  private final SpecificData model;
  private final SchemaStore store;
  private final BinaryMessageEncoder<T> encoder;
  private final BinaryMessageDecoder<T> decoder;
  /** Where values are registered and looked up in Confluent's wire format; null: single-object only. */
  private final SchemaRegistry registry;
  private final String subject;
  /** Readers from each registry schema id's writer schema to ours. */
  private final Map<Integer, DatumReader<T>> readers = new ConcurrentHashMap<>();

  private AvroSerde(Class<T> type, Schema schema, SchemaStore store, SchemaRegistry registry, String subject) {
    this.type = type;
    this.schema = schema;
    this.model = new SpecificData(type.getClassLoader());
    this.store = store;
    this.encoder = new BinaryMessageEncoder<>(model, schema);
    this.decoder = new BinaryMessageDecoder<>(model, schema, store);
    this.registry = registry;
    this.subject = subject;
  }

  /**
   * This serde in registry mode: values are written in Confluent's wire format (a zero byte, the
   * 4-byte id {@code registry} gives the schema under {@code subject}, the binary record), and
   * values in either format are read.
   */
  public AvroSerde<T> withRegistry(SchemaRegistry registry, String subject) {
    return new AvroSerde<>(type, schema, store, registry, subject);
  }

  /** Serde for the generated class {@code type}; its store knows every released version. */
  public static <T extends SpecificRecord> AvroSerde<T> of(Class<T> type) {
    Schema schema = SpecificData.get().getSchema(type);
    SchemaStore.Cache store = new SchemaStore.Cache();
    store.addSchema(schema);
    ReleasedSchemas.of(schema.getName()).forEach(store::addSchema);
    return new AvroSerde<>(type, schema, store, null, null);
  }

  /** Serde that resolves only against the given writer schemas, as an old reader would. */
  static <T extends SpecificRecord> AvroSerde<T> withKnownSchemas(
      Class<T> type, Schema readerSchema, Iterable<Schema> writerSchemas) {
    SchemaStore.Cache store = new SchemaStore.Cache();
    writerSchemas.forEach(store::addSchema);
    return new AvroSerde<>(type, readerSchema, store, null, null);
  }

  public byte[] encode(T value) {
    if (registry != null) {
      return confluentEncode(value);
    }
    try {
      ByteBuffer buffer = encoder.encode(value);
      byte[] bytes = new byte[buffer.remaining()];
      buffer.get(bytes);
      return bytes;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Decodes one record; throws {@link SerializationException} saying why when it cannot. */
  public T decode(byte[] bytes) {
    if (bytes == null) {
      throw new SerializationException("null value where a " + type.getSimpleName() + " was expected");
    }
    if (bytes.length > MAX_RECORD_BYTES) {
      throw new SerializationException(bytes.length + " bytes is larger than a " + type.getSimpleName()
          + " may be (" + MAX_RECORD_BYTES + ")");
    }
    if (bytes.length >= CONFLUENT_HEADER && bytes[0] == CONFLUENT_MAGIC) {
      return confluentDecode(bytes);
    }
    try {
      return decoder.decode(bytes);
    } catch (IOException | RuntimeException e) {
      throw new SerializationException(
          "not a " + type.getSimpleName() + " in Avro single-object encoding: " + e.getMessage(), e);
    }
  }

  private byte[] confluentEncode(T value) {
    int id = registry.idOf(subject, schema);
    ByteArrayOutputStream out = new ByteArrayOutputStream(256);
    out.write(CONFLUENT_MAGIC);
    out.writeBytes(ByteBuffer.allocate(4).putInt(id).array());
    try {
      BinaryEncoder body = EncoderFactory.get().directBinaryEncoder(out, null);
      new SpecificDatumWriter<T>(schema, model).write(value, body);
      body.flush();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return out.toByteArray();
  }

  private T confluentDecode(byte[] bytes) {
    int id = ByteBuffer.wrap(bytes, 1, 4).getInt();
    if (registry == null) {
      throw new SerializationException("a value in Confluent's wire format (schema id " + id + ") where a "
          + type.getSimpleName() + " was expected, but no schema registry is configured here"
          + " (DISTILLERY_SCHEMA_REGISTRY_URL)");
    }
    // Registry unavailable: SchemaRegistry.Unavailable, not a SerializationException: retried, not dead-lettered.
    DatumReader<T> reader = readers.computeIfAbsent(id,
        key -> new SpecificDatumReader<>(registry.schemaById(key), schema, model));
    try {
      BinaryDecoder body = DecoderFactory.get().binaryDecoder(bytes, CONFLUENT_HEADER,
          bytes.length - CONFLUENT_HEADER, null);
      T value = reader.read(null, body);
      if (!body.isEnd()) {
        throw new IOException("bytes left after the record");
      }
      return value;
    } catch (IOException | RuntimeException e) {
      throw new SerializationException("not a " + type.getSimpleName() + " written with schema id " + id
          + " of " + registry.url() + ": " + e.getMessage(), e);
    }
  }

  public Class<T> type() {
    return type;
  }

  @Override
  public Serializer<T> serializer() {
    return (topic, value) -> value == null ? null : encode(value);
  }

  @Override
  public Deserializer<T> deserializer() {
    return (topic, bytes) -> bytes == null ? null : decode(bytes);
  }
}
