package dev.distillery.schemas.kafka;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.distillery.schemas.CheckpointReady;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.JobCancellation;
import dev.distillery.schemas.JobFailure;
import dev.distillery.schemas.JobProgress;
import dev.distillery.schemas.JobResult;
import dev.distillery.schemas.JobStatus;
import dev.distillery.schemas.SoftLabelBatch;
import dev.distillery.schemas.TeacherShard;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.apache.avro.Schema;
import org.apache.avro.SchemaCompatibility;
import org.apache.avro.SchemaCompatibility.SchemaCompatibilityType;
import org.apache.avro.specific.SpecificData;
import org.apache.avro.specific.SpecificRecord;
import org.apache.kafka.common.errors.SerializationException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Fails the build when a schema changes without a new released version, or when a new version
 * breaks backward (new reader, old data) or forward (old reader, new data) compatibility.
 */
class SchemaCompatibilityTest {

  static Stream<Class<? extends SpecificRecord>> topLevelRecords() {
    return Stream.of(CompressionRequest.class, SoftLabelBatch.class, CheckpointReady.class,
        JobProgress.class, JobResult.class, JobFailure.class, TeacherShard.class, JobStatus.class,
        JobCancellation.class);
  }

  @ParameterizedTest
  @MethodSource("topLevelRecords")
  void currentSchemaIsTheLatestRelease(Class<? extends SpecificRecord> type) {
    Schema current = SpecificData.get().getSchema(type);
    List<Schema> released = ReleasedSchemas.of(current.getName());
    assertThat(released)
        .as("released versions of %s (resource %s)", current.getName(),
            ReleasedSchemas.path(current.getName(), 1))
        .isNotEmpty();
    assertThat(released.get(released.size() - 1))
        .as("%s changed: add it as %s after checking compatibility", current.getName(),
            ReleasedSchemas.path(current.getName(), released.size() + 1))
        .isEqualTo(current);
  }

  @ParameterizedTest
  @MethodSource("topLevelRecords")
  void everyReleaseReadsAndIsReadByEveryOther(Class<? extends SpecificRecord> type) {
    List<Schema> released = ReleasedSchemas.of(SpecificData.get().getSchema(type).getName());
    for (Schema newer : released) {
      assertThat(incompatibilities(newer, released)).isEmpty();
    }
  }

  @Test
  void aDriftedSchemaIsCaught() {
    Schema released = SpecificData.get().getSchema(JobFailure.class);
    // A required field without a default: new readers cannot read old data.
    Schema addedRequired = new Schema.Parser().parse(released.toString()
        .replace("\"fields\":[", "\"fields\":[{\"name\":\"attempt\",\"type\":\"int\"},"));
    // A field whose type changed: neither side can read the other.
    Schema retyped = withFieldType(released, "reason", Schema.create(Schema.Type.INT));
    assertThat(incompatibilities(addedRequired, List.of(released))).anyMatch(p -> p.contains("backward"));
    assertThat(incompatibilities(retyped, List.of(released)))
        .anyMatch(p -> p.contains("backward")).anyMatch(p -> p.contains("forward"));
  }

  @Test
  void oldReaderDecodesNewerWriterWhenItsStoreKnowsTheNewSchema() {
    Schema v1 = SpecificData.get().getSchema(JobFailure.class);
    Schema v2 = new Schema.Parser().parse(v1.toString()
        .replace("\"fields\":[", "\"fields\":[{\"name\":\"attempt\",\"type\":\"int\",\"default\":1},"));
    var v2Record = new org.apache.avro.generic.GenericRecordBuilder(v2)
        .set("jobId", "job-7").set("stage", new org.apache.avro.generic.GenericData.EnumSymbol(
            v2.getField("stage").schema(), "PRUNING"))
        .set("reason", "why").set("timestampMs", 5L).set("attempt", 3).build();
    byte[] bytes;
    try {
      bytes = new org.apache.avro.message.BinaryMessageEncoder<org.apache.avro.generic.GenericRecord>(
          org.apache.avro.generic.GenericData.get(), v2).encode(v2Record).array();
    } catch (java.io.IOException e) {
      throw new AssertionError(e);
    }
    JobFailure decoded = AvroSerde.withKnownSchemas(JobFailure.class, v1, List.of(v1, v2)).decode(bytes);
    assertThat(decoded.getJobId()).isEqualTo("job-7");
    assertThat(decoded.getReason()).isEqualTo("why");
    assertThatThrownBy(() -> AvroSerde.withKnownSchemas(JobFailure.class, v1, List.of(v1)).decode(bytes))
        .isInstanceOf(SerializationException.class);
  }

  @Test
  void garbageIsASerializationExceptionNamingTheType() {
    assertThatThrownBy(() -> Topics.REQUESTS.valueSerde().deserializer().deserialize("t", "{\"jobId\":1}".getBytes()))
        .isInstanceOf(SerializationException.class)
        .hasMessageContaining("CompressionRequest");
  }

  private static Schema withFieldType(Schema record, String name, Schema type) {
    List<Schema.Field> fields = new ArrayList<>();
    for (Schema.Field f : record.getFields()) {
      fields.add(new Schema.Field(f.name(), f.name().equals(name) ? type : f.schema(), f.doc(),
          f.name().equals(name) ? null : f.defaultVal()));
    }
    return Schema.createRecord(record.getName(), record.getDoc(), record.getNamespace(), false, fields);
  }

  /** What stops {@code candidate} from reading, or being read by, each of {@code others}. */
  static List<String> incompatibilities(Schema candidate, List<Schema> others) {
    List<String> problems = new ArrayList<>();
    for (Schema other : others) {
      var backward = SchemaCompatibility.checkReaderWriterCompatibility(candidate, other);
      if (backward.getType() != SchemaCompatibilityType.COMPATIBLE) {
        problems.add("backward: " + backward.getDescription());
      }
      var forward = SchemaCompatibility.checkReaderWriterCompatibility(other, candidate);
      if (forward.getType() != SchemaCompatibilityType.COMPATIBLE) {
        problems.add("forward: " + forward.getDescription());
      }
    }
    return problems;
  }
}
