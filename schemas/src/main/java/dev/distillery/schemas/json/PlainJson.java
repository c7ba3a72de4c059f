package dev.distillery.schemas.json;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericEnumSymbol;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.specific.SpecificData;
import org.apache.avro.specific.SpecificRecord;

/**
 * Avro records as the JSON people write and read: a union is its value or null, an enum its symbol,
 * an absent field its default. Avro's own JSON encoding wraps every union value in an object named
 * by its type, which no one writes by hand. Non-finite doubles are written as null, which JSON has
 * no other way to say.
 */
public final class PlainJson {
  public static final ObjectMapper MAPPER = new ObjectMapper();
  private static final JsonNodeFactory NODES = JsonNodeFactory.instance;

  private PlainJson() {}

  /** A JSON value that does not fit the schema; {@code field} is its dotted path. */
  public static final class InvalidJsonException extends Exception {
    private final String field;

    InvalidJsonException(String field, String problem) {
      super(field + ": " + problem);
      this.field = field;
    }

    public String field() {
      return field;
    }
  }

  /** The record of {@code type} that {@code json} describes. */
  public static <T extends SpecificRecord> T read(JsonNode json, Class<T> type) throws InvalidJsonException {
    Schema schema = SpecificData.get().getSchema(type);
    Object generic = value(json, schema, "");
    @SuppressWarnings("unchecked")
    T record = (T) SpecificData.get().deepCopy(schema, generic);
    return record;
  }

  /** {@code record} as a JSON tree. */
  public static JsonNode write(SpecificRecord record) {
    return json(record, record.getSchema());
  }

  private static Object value(JsonNode json, Schema schema, String path) throws InvalidJsonException {
    switch (schema.getType()) {
      case RECORD -> {
        if (!json.isObject()) {
          throw new InvalidJsonException(name(path), "must be an object");
        }
        for (Iterator<String> names = json.fieldNames(); names.hasNext(); ) {
          String name = names.next();
          if (schema.getField(name) == null) {
            throw new InvalidJsonException(child(path, name), "unknown field; fields: "
                + schema.getFields().stream().map(Schema.Field::name).toList());
          }
        }
        GenericData.Record record = new GenericData.Record(schema);
        for (Schema.Field field : schema.getFields()) {
          JsonNode given = json.get(field.name());
          if (given != null) {
            record.put(field.pos(), value(given, field.schema(), child(path, field.name())));
          } else if (field.hasDefaultValue()) {
            record.put(field.pos(), GenericData.get().getDefaultValue(field));
          } else {
            throw new InvalidJsonException(child(path, field.name()), "is required");
          }
        }
        return record;
      }
      case UNION -> {
        if (json.isNull() && schema.getTypes().stream().anyMatch(t -> t.getType() == Schema.Type.NULL)) {
          return null;
        }
        InvalidJsonException last = null;
        for (Schema branch : schema.getTypes()) {
          if (branch.getType() != Schema.Type.NULL) {
            try {
              return value(json, branch, path);
            } catch (InvalidJsonException e) {
              last = e;
            }
          }
        }
        throw last != null ? last : new InvalidJsonException(name(path), "must be null");
      }
      case ENUM -> {
        if (!json.isTextual() || !schema.getEnumSymbols().contains(json.asText())) {
          throw new InvalidJsonException(name(path), "must be one of " + schema.getEnumSymbols() + ", was " + json);
        }
        return new GenericData.EnumSymbol(schema, json.asText());
      }
      case ARRAY -> {
        if (!json.isArray()) {
          throw new InvalidJsonException(name(path), "must be an array");
        }
        List<Object> items = new ArrayList<>();
        for (int i = 0; i < json.size(); i++) {
          items.add(value(json.get(i), schema.getElementType(), path + "[" + i + "]"));
        }
        return new GenericData.Array<>(Schema.createArray(schema.getElementType()), items);
      }
      case MAP -> {
        if (!json.isObject()) {
          throw new InvalidJsonException(name(path), "must be an object");
        }
        Map<String, Object> map = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = json.fields(); it.hasNext(); ) {
          Map.Entry<String, JsonNode> entry = it.next();
          map.put(entry.getKey(), value(entry.getValue(), schema.getValueType(), child(path, entry.getKey())));
        }
        return map;
      }
      case STRING -> {
        if (!json.isTextual()) {
          throw new InvalidJsonException(name(path), "must be a string, was " + json);
        }
        return json.asText();
      }
      case INT -> {
        if (!json.isIntegralNumber() || !json.canConvertToInt()) {
          throw new InvalidJsonException(name(path), "must be a whole number, was " + json);
        }
        return json.intValue();
      }
      case LONG -> {
        if (!json.isIntegralNumber() || !json.canConvertToLong()) {
          throw new InvalidJsonException(name(path), "must be a whole number, was " + json);
        }
        return json.longValue();
      }
      case DOUBLE, FLOAT -> {
        if (!json.isNumber()) {
          throw new InvalidJsonException(name(path), "must be a number, was " + json);
        }
        return schema.getType() == Schema.Type.DOUBLE ? json.doubleValue() : (Object) json.floatValue();
      }
      case BOOLEAN -> {
        if (!json.isBoolean()) {
          throw new InvalidJsonException(name(path), "must be true or false, was " + json);
        }
        return json.booleanValue();
      }
      case NULL -> {
        if (!json.isNull()) {
          throw new InvalidJsonException(name(path), "must be null");
        }
        return null;
      }
      default -> throw new InvalidJsonException(name(path), "cannot be given as JSON (" + schema.getType() + ")");
    }
  }

  private static JsonNode json(Object value, Schema schema) {
    if (value == null) {
      return NODES.nullNode();
    }
    return switch (schema.getType()) {
      case RECORD -> {
        ObjectNode object = NODES.objectNode();
        GenericRecord record = (GenericRecord) value;
        for (Schema.Field field : schema.getFields()) {
          object.set(field.name(), json(record.get(field.pos()), field.schema()));
        }
        yield object;
      }
      case UNION -> json(value, schema.getTypes().get(GenericData.get().resolveUnion(schema, value)));
      case ENUM -> NODES.textNode(value instanceof GenericEnumSymbol<?> s ? s.toString() : ((Enum<?>) value).name());
      case ARRAY -> {
        ArrayNode array = NODES.arrayNode();
        for (Object item : (Iterable<?>) value) {
          array.add(json(item, schema.getElementType()));
        }
        yield array;
      }
      case MAP -> {
        ObjectNode object = NODES.objectNode();
        ((Map<?, ?>) value).forEach((k, v) -> object.set(k.toString(), json(v, schema.getValueType())));
        yield object;
      }
      case STRING -> NODES.textNode(value.toString());
      case INT -> NODES.numberNode((Integer) value);
      case LONG -> NODES.numberNode((Long) value);
      case DOUBLE, FLOAT -> {
        double d = ((Number) value).doubleValue();
        yield Double.isFinite(d) ? NODES.numberNode(d) : NODES.nullNode();
      }
      case BOOLEAN -> NODES.booleanNode((Boolean) value);
      case BYTES -> {
        ByteBuffer bytes = ((ByteBuffer) value).duplicate();
        byte[] copy = new byte[bytes.remaining()];
        bytes.get(copy);
        yield NODES.textNode(Base64.getEncoder().encodeToString(copy));
      }
      default -> NODES.nullNode();
    };
  }

  private static String child(String path, String name) {
    return path.isEmpty() ? name : path + "." + name;
  }

  private static String name(String path) {
    return path.isEmpty() ? "(the record)" : path;
  }
}
