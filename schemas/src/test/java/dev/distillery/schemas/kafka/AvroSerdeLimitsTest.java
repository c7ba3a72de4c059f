package dev.distillery.schemas.kafka;

import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.distillery.schemas.CompressionRequest;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.EncoderFactory;
import org.apache.kafka.common.errors.SerializationException;
import org.junit.jupiter.api.Test;

/** Crafted records that claim more than they hold are refused before Avro allocates the claim. */
class AvroSerdeLimitsTest {
  /** Avro's single-object header of the current CompressionRequest (marker, fingerprint), then {@code body}. */
  private static byte[] request(byte[] body) {
    ByteBuffer bytes = ByteBuffer.allocate(10 + body.length).order(ByteOrder.LITTLE_ENDIAN);
    bytes.put((byte) 0xC3).put((byte) 0x01)
        .putLong(SchemaNormalization.parsingFingerprint64(CompressionRequest.getClassSchema())).put(body);
    return bytes.array();
  }

  private static byte[] longs(long... values) throws Exception {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    BinaryEncoder encoder = EncoderFactory.get().binaryEncoder(out, null);
    for (long value : values) {
      encoder.writeLong(value);
    }
    encoder.flush();
    return out.toByteArray();
  }

  @Test
  void aStringClaimingAGigabyteIsRefused() throws Exception {
    // jobId, the first field, claims 2^30 characters in a 15-byte record.
    assertThatThrownBy(() -> AvroSerde.of(CompressionRequest.class).decode(request(longs(1L << 30))))
        .isInstanceOf(SerializationException.class).hasMessageContaining("String length 1073741824 exceeds maximum");
  }

  @Test
  void aRecordLargerThanTheBoundIsRefusedUnread() {
    assertThatThrownBy(() -> AvroSerde.of(CompressionRequest.class).decode(new byte[AvroSerde.MAX_RECORD_BYTES + 1]))
        .isInstanceOf(SerializationException.class).hasMessageContaining("larger than a CompressionRequest may be");
  }

  @Test
  void aValueInConfluentsWireFormatWithoutARegistryIsRefusedSayingWhy() {
    byte[] confluent = {0, 0, 0, 0, 7, 2, 'x'};
    assertThatThrownBy(() -> AvroSerde.of(CompressionRequest.class).decode(confluent))
        .isInstanceOf(SerializationException.class)
        .hasMessageContaining("Confluent's wire format (schema id 7)")
        .hasMessageContaining("no schema registry is configured");
  }
}
