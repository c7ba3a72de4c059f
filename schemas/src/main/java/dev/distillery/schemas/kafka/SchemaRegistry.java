package dev.distillery.schemas.kafka;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Base64;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.kafka.common.errors.RetriableException;
import org.apache.kafka.common.errors.SerializationException;

/**
 * The part of a Confluent-compatible schema registry's REST API that the serdes use: register a
 * schema under a subject (setting the subject's compatibility rule first), and find a schema by
 * its id. Confluent Schema Registry, Apicurio Registry ({@code .../apis/ccompat/v7}), Karapace and
 * Redpanda answer it. Confluent's own Java client is not on Maven Central, and Apicurio's speaks
 * Apicurio's API; this is the few calls we need, with their answers cached: a schema's id never
 * changes, so each is asked once per process.
 */
public final class SchemaRegistry {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final String CONTENT_TYPE = "application/vnd.schemaregistry.v1+json";

  private final URI base;
  private final String authorization;
  private final String compatibility;
  private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
  private final Map<Integer, Schema> byId = new ConcurrentHashMap<>();
  private final Map<String, Integer> ids = new ConcurrentHashMap<>();
  private final Set<String> configured = ConcurrentHashMap.newKeySet();

  /**
   * @param url the API's base, e.g. {@code http://registry:8081} (Confluent) or
   *     {@code http://registry:8080/apis/ccompat/v7} (Apicurio)
   * @param userInfo {@code user:password} for HTTP basic authentication, or blank
   * @param compatibility the rule set on each subject this process registers under, e.g.
   *     {@code FULL_TRANSITIVE}; blank leaves the registry's rule alone
   */
  public SchemaRegistry(String url, String userInfo, String compatibility) {
    this.base = URI.create(url.endsWith("/") ? url : url + "/");
    if (base.getScheme() == null || !base.getScheme().startsWith("http")) {
      throw new IllegalArgumentException("schema registry URL must be http(s)://..., was " + url);
    }
    this.authorization = userInfo == null || userInfo.isBlank() ? null
        : "Basic " + Base64.getEncoder().encodeToString(userInfo.getBytes(StandardCharsets.UTF_8));
    this.compatibility = compatibility == null ? "" : compatibility.trim();
  }

  public String url() {
    return base.toString();
  }

  /** The id of {@code schema} under {@code subject}, registering it there if it is new. */
  public int idOf(String subject, Schema schema) {
    String key = subject + '\n' + SchemaNormalization.parsingFingerprint64(schema);
    Integer known = ids.get(key);
    if (known != null) {
      return known;
    }
    if (!compatibility.isEmpty() && configured.add(subject)) {
      call("PUT", "config/" + encode(subject), JSON.createObjectNode().put("compatibility", compatibility), subject);
    }
    JsonNode answer = call("POST", "subjects/" + encode(subject) + "/versions",
        JSON.createObjectNode().put("schema", schema.toString()), subject);
    int id = answer.path("id").asInt(-1);
    if (id < 0) {
      throw new SerializationException("schema registry " + base + " registered under " + subject + " but gave no id: "
          + answer);
    }
    ids.put(key, id);
    byId.putIfAbsent(id, schema);
    return id;
  }

  /** The schema the registry holds as {@code id}. */
  public Schema schemaById(int id) {
    Schema known = byId.get(id);
    if (known != null) {
      return known;
    }
    JsonNode answer = call("GET", "schemas/ids/" + id, null, "schema id " + id);
    String type = answer.path("schemaType").asText("AVRO");
    if (!type.equals("AVRO")) {
      throw new SerializationException("schema id " + id + " is a " + type + " schema, not Avro");
    }
    Schema schema;
    try {
      schema = new Schema.Parser().parse(answer.path("schema").asText());
    } catch (RuntimeException e) {
      throw new SerializationException("schema id " + id + " is not an Avro schema: " + e.getMessage(), e);
    }
    byId.putIfAbsent(id, schema);
    return schema;
  }

  /**
   * One call: a 4xx answer (an unknown id, an incompatible schema) is a {@link SerializationException}
   * about the record; no answer or a 5xx is a {@link RetriableException}: the record waits for the
   * registry rather than being dead-lettered.
   */
  private JsonNode call(String method, String path, JsonNode body, String what) {
    HttpRequest.Builder request = HttpRequest.newBuilder(base.resolve(path)).timeout(Duration.ofSeconds(10))
        .header("Accept", CONTENT_TYPE + ", application/json")
        .method(method, body == null ? HttpRequest.BodyPublishers.noBody()
            : HttpRequest.BodyPublishers.ofString(body.toString()));
    if (body != null) {
      request.header("Content-Type", CONTENT_TYPE);
    }
    if (authorization != null) {
      request.header("Authorization", authorization);
    }
    HttpResponse<String> response;
    try {
      response = http.send(request.build(), HttpResponse.BodyHandlers.ofString());
    } catch (IOException e) {
      throw new Unavailable("schema registry " + base + " did not answer (" + what + "): " + e, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new Unavailable("interrupted while asking schema registry " + base + " (" + what + ")", e);
    }
    int status = response.statusCode();
    if (status >= 500) {
      throw new Unavailable("schema registry " + base + " failed (" + what + "): HTTP " + status + " "
          + response.body(), null);
    }
    if (status >= 300) {
      throw new SerializationException("schema registry " + base + " refused " + method + " " + path + " ("
          + what + "): HTTP " + status + " " + response.body());
    }
    try {
      return JSON.readTree(response.body());
    } catch (IOException e) {
      throw new SerializationException("schema registry " + base + " answered " + path + " with no JSON: "
          + response.body(), e);
    }
  }

  private static String encode(String subject) {
    return URLEncoder.encode(subject, StandardCharsets.UTF_8).replace("+", "%20");
  }

  /** The registry cannot be reached or failed: try the record again later. */
  public static final class Unavailable extends RetriableException {
    Unavailable(String message, Throwable cause) {
      super(message, cause);
    }
  }
}
