package dev.distillery.schemas.kafka;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;
import org.apache.avro.Schema;

/**
 * Every released version of each record's schema, kept as resources under
 * {@code dev/distillery/schemas/released/<Record>/v<N>.avsc}. A release is never edited: a changed
 * schema is added as the next version, and {@code SchemaCompatibilityTest} checks that each new
 * version can read and be read by every earlier one.
 */
public final class ReleasedSchemas {
  private static final String ROOT = "/dev/distillery/schemas/released/";

  private ReleasedSchemas() {}

  /** Released versions of the record named {@code recordName}, oldest first. */
  public static List<Schema> of(String recordName) {
    List<Schema> versions = new ArrayList<>();
    for (int version = 1; ; version++) {
      try (InputStream in = ReleasedSchemas.class.getResourceAsStream(path(recordName, version))) {
        if (in == null) {
          return versions;
        }
        versions.add(new Schema.Parser().parse(in));
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
  }

  static String path(String recordName, int version) {
    return ROOT + recordName + "/v" + version + ".avsc";
  }
}
