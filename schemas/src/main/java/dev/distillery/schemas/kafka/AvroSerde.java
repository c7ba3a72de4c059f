package dev.distillery.schemas.kafka;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import org.apache.avro.Schema;
import org.apache.avro.SystemLimitException;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.BinaryMessageEncoder;
import org.apache.avro.message.SchemaStore;
import org.apache.avro.specific.SpecificData;
import org.apache.avro.specific.SpecificRecord;
import org.apache.avro.util.ClassSecurityValidator;
import org.apache.kafka.common.errors.SerializationException;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serializer;

/**
 * Kafka serde for one generated Avro record type, using Avro single-object encoding: each value
 * starts with a 10-byte header (marker + schema fingerprint), so a reader can resolve data written
 * with any schema version its store knows. The store holds every released version of the record
 * (see {@link ReleasedSchemas}), which is what lets an older service read a newer writer's records.
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

  private final Class<T> type;
  private final BinaryMessageEncoder<T> encoder;
  private final BinaryMessageDecoder<T> decoder;

  private AvroSerde(Class<T> type, Schema schema, SchemaStore store) {
    this.type = type;
    SpecificData model = new SpecificData(type.getClassLoader());
    this.encoder = new BinaryMessageEncoder<>(model, schema);
    this.decoder = new BinaryMessageDecoder<>(model, schema, store);
  }

  /** Serde for the generated class {@code type}; its store knows every released version. */
  public static <T extends SpecificRecord> AvroSerde<T> of(Class<T> type) {
    Schema schema = SpecificData.get().getSchema(type);
    SchemaStore.Cache store = new SchemaStore.Cache();
    store.addSchema(schema);
    ReleasedSchemas.of(schema.getName()).forEach(store::addSchema);
    return new AvroSerde<>(type, schema, store);
  }

  /** Serde that resolves only against the given writer schemas, as an old reader would. */
  static <T extends SpecificRecord> AvroSerde<T> withKnownSchemas(
      Class<T> type, Schema readerSchema, Iterable<Schema> writerSchemas) {
    SchemaStore.Cache store = new SchemaStore.Cache();
    writerSchemas.forEach(store::addSchema);
    return new AvroSerde<>(type, readerSchema, store);
  }

  public byte[] encode(T value) {
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
    try {
      return decoder.decode(bytes);
    } catch (IOException | RuntimeException e) {
      throw new SerializationException(
          "not a " + type.getSimpleName() + " in Avro single-object encoding: " + e.getMessage(), e);
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
