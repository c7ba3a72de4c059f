package dev.distillery.deployment;

import dev.distillery.common.config.ServiceConfig;
import dev.distillery.common.ml.DjlRuntime;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.streams.StreamsConfig;
import org.yaml.snakeyaml.Yaml;

/**
 * What the deployment files say, read back, and what of it the code does not match. Each check
 * takes the files' text, so a test can feed it a drifted copy and see it complain.
 */
final class DeploymentChecks {
  /** Read by the JVM itself, not by a service's code. */
  private static final Set<String> JVM_VARIABLES = Set.of("JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS");
  private static final Pattern TOPIC = Pattern.compile("distillery\\.[a-z][a-z-]*");
  private static final Pattern MAIN_CLASS = Pattern.compile("dev\\.distillery(?:\\.[a-z]+)+\\.[A-Z][A-Za-z]+");

  private DeploymentChecks() {}

  /** Every document of a multi-document YAML text. */
  static List<Map<String, Object>> documents(String yaml) {
    List<Map<String, Object>> docs = new ArrayList<>();
    for (Object doc : new Yaml().loadAll(yaml)) {
      if (doc instanceof Map<?, ?> map) {
        docs.add(cast(map));
      }
    }
    return docs;
  }

  /** The topic names of the {@code KafkaTopic} resources ({@code spec.topicName}, else the resource name). */
  static Set<String> kafkaTopics(List<Map<String, Object>> resources) {
    Set<String> topics = new TreeSet<>();
    for (Map<String, Object> resource : resources) {
      if ("KafkaTopic".equals(resource.get("kind"))) {
        Map<String, Object> spec = cast(resource.getOrDefault("spec", Map.of()));
        topics.add((String) spec.getOrDefault("topicName", cast(resource.get("metadata")).get("name")));
      }
    }
    return topics;
  }

  /** The topics the compose file's {@code topics} service creates. */
  static Set<String> composeTopics(String compose) {
    Map<String, Object> services = cast(new Yaml().<Map<String, Object>>load(compose).get("services"));
    Object command = cast(services.get("topics")).get("command");
    Set<String> topics = new TreeSet<>();
    Matcher m = TOPIC.matcher(String.valueOf(command));
    while (m.find()) {
      topics.add(m.group());
    }
    return topics;
  }

  /**
   * Environment variables the rendered resources set for the services: keys of their ConfigMaps
   * and Secrets, and containers' {@code env} names.
   */
  static Map<String, String> kubernetesVariables(List<Map<String, Object>> resources) {
    Map<String, String> variables = new LinkedHashMap<>();
    for (Map<String, Object> resource : resources) {
      String where = resource.get("kind") + " " + cast(resource.get("metadata")).get("name");
      if ("ConfigMap".equals(resource.get("kind")) || "Secret".equals(resource.get("kind"))) {
        for (String field : List.of("data", "stringData")) {
          cast(resource.getOrDefault(field, Map.of())).keySet().forEach(k -> variables.put(k, where));
        }
      }
      if ("Deployment".equals(resource.get("kind"))) {
        Map<String, Object> pod = cast(cast(cast(resource.get("spec")).get("template")).get("spec"));
        for (Object container : (List<?>) pod.get("containers")) {
          for (Object env : (List<?>) cast(container).getOrDefault("env", List.of())) {
            variables.put((String) cast(env).get("name"), where);
          }
        }
      }
    }
    return variables;
  }

  /** Environment variables the compose file sets on the services built from docker/Dockerfile. */
  static Map<String, String> composeVariables(String compose) {
    Map<String, String> variables = new LinkedHashMap<>();
    Map<String, Object> services = cast(new Yaml().<Map<String, Object>>load(compose).get("services"));
    services.forEach((name, body) -> {
      Map<String, Object> service = cast(body);
      if (service.containsKey("build")) {
        cast(service.getOrDefault("environment", Map.of())).keySet()
            .forEach(k -> variables.put(k, "compose service " + name));
      }
    });
    return variables;
  }

  /** Variables a Dockerfile's {@code ENV} instructions set. */
  static Map<String, String> dockerfileVariables(String dockerfile) {
    Map<String, String> variables = new LinkedHashMap<>();
    for (String instruction : instructions(dockerfile)) {
      if (instruction.startsWith("ENV ")) {
        // Names start the instruction or follow a space; quoted values are not searched.
        String assignments = instruction.substring(4).replaceAll("\"[^\"]*\"", "\"\"");
        Matcher m = Pattern.compile("(?:^|\\s)([A-Z_][A-Z0-9_]*)=").matcher(assignments);
        while (m.find()) {
          variables.put(m.group(1), "Dockerfile ENV");
        }
      }
    }
    return variables;
  }

  /** The variables no Distillery process reads, with where each is set. */
  static List<String> unreadVariables(Map<String, String> variables) {
    Set<String> kafkaKeys = new TreeSet<>();
    kafkaKeys.addAll(ProducerConfig.configNames());
    kafkaKeys.addAll(ConsumerConfig.configNames());
    kafkaKeys.addAll(AdminClientConfig.configNames());
    kafkaKeys.addAll(StreamsConfig.configDef().names());
    List<String> unread = new ArrayList<>();
    variables.forEach((name, where) -> {
      boolean read = JVM_VARIABLES.contains(name) || DjlRuntime.ENVIRONMENT.contains(name)
          || (ServiceConfig.readsVariable(name)
              && (!name.startsWith("KAFKA_") || kafkaKeys.contains(ServiceConfig.kafkaKey(name))));
      if (!read) {
        unread.add(name + " (" + where + ")");
      }
    });
    return unread;
  }

  /**
   * What the rendered Deployments and topics get wrong against the Dockerfile and each other: an
   * image that is no Dockerfile target, a probe on a port other than the service's management
   * port, or topics labelled for a Strimzi cluster other than the one the services connect to.
   */
  static List<String> wiringProblems(List<Map<String, Object>> resources, String dockerfile) {
    Set<String> targets = new TreeSet<>();
    Matcher target = Pattern.compile("(?m)^FROM \\S+ AS (\\S+)").matcher(dockerfile);
    while (target.find()) {
      targets.add(target.group(1));
    }
    Map<String, Object> config = Map.of();
    for (Map<String, Object> resource : resources) {
      if ("ConfigMap".equals(resource.get("kind"))
          && String.valueOf(cast(resource.get("metadata")).get("name")).startsWith("distillery-config")) {
        config = cast(resource.get("data"));
      }
    }
    List<String> problems = new ArrayList<>();
    for (Map<String, Object> resource : resources) {
      String name = String.valueOf(cast(resource.get("metadata")).get("name"));
      if ("Deployment".equals(resource.get("kind"))) {
        Map<String, Object> pod = cast(cast(cast(resource.get("spec")).get("template")).get("spec"));
        for (Object item : (List<?>) pod.get("containers")) {
          Map<String, Object> container = cast(item);
          String image = String.valueOf(container.get("image"));
          String imageTarget = image.replaceFirst("^distillery/", "").replaceFirst(":.*$", "");
          if (!image.startsWith("distillery/") || !targets.contains(imageTarget)) {
            problems.add(name + ": image " + image + " is no target of docker/Dockerfile " + targets);
          }
          Object port = config.get("DISTILLERY_MANAGEMENT_PORT");
          for (Object env : (List<?>) container.getOrDefault("env", List.of())) {
            if ("DISTILLERY_MANAGEMENT_PORT".equals(cast(env).get("name"))) {
              port = cast(env).get("value");
            }
          }
          for (String probe : List.of("readinessProbe", "livenessProbe")) {
            Object probePort = container.containsKey(probe)
                ? cast(cast(container.get(probe)).get("httpGet")).get("port") : null;
            Object number = probePort;
            for (Object declared : (List<?>) container.getOrDefault("ports", List.of())) {
              if (cast(declared).get("name").equals(probePort)) {
                number = cast(declared).get("containerPort");
              }
            }
            if (number == null || !String.valueOf(number).equals(String.valueOf(port))) {
              problems.add(name + ": " + probe + " on port " + number + ", management port " + port);
            }
          }
        }
      }
      if ("KafkaTopic".equals(resource.get("kind"))) {
        Object cluster = cast(cast(resource.get("metadata")).getOrDefault("labels", Map.of())).get("strimzi.io/cluster");
        String bootstrap = String.valueOf(config.get("KAFKA_BOOTSTRAP_SERVERS"));
        if (!bootstrap.startsWith(cluster + "-kafka-bootstrap")) {
          problems.add(name + ": labelled for Strimzi cluster " + cluster + ", services connect to " + bootstrap);
        }
      }
    }
    return problems;
  }

  /** Sources of the Dockerfile's {@code COPY} instructions (not from other stages) missing under {@code root}. */
  static List<String> missingCopySources(String dockerfile, Path root) {
    List<String> missing = new ArrayList<>();
    for (String instruction : instructions(dockerfile)) {
      if (instruction.startsWith("COPY ") && !instruction.contains("--from=")) {
        List<String> words = new ArrayList<>(List.of(instruction.substring(5).trim().split("\\s+")));
        words.removeIf(w -> w.startsWith("--"));
        for (String source : words.subList(0, words.size() - 1)) {
          if (!Files.exists(root.resolve(source))) {
            missing.add(source);
          }
        }
      }
    }
    return missing;
  }

  /**
   * The files (by name) that set ONEDNN_MAX_CPU_ISA (as {@code X=v}, {@code X: v}, {@code <X>v},
   * {@code ENV X v} or a Kubernetes {@code name: X}): it would override DjlRuntime's probed choice.
   */
  static List<String> oneDnnCaps(Map<String, String> files) {
    Pattern cap = Pattern.compile("ONEDNN_MAX_CPU_ISA\\s*[=:>]|ENV\\s+ONEDNN_MAX_CPU_ISA\\s|name:\\s*ONEDNN_MAX_CPU_ISA");
    return files.entrySet().stream().filter(f -> cap.matcher(f.getValue()).find()).map(Map.Entry::getKey).toList();
  }

  /** The {@code dev.distillery} classes the text names that are not on the classpath. */
  static List<String> missingClasses(String text) {
    List<String> missing = new ArrayList<>();
    Matcher m = MAIN_CLASS.matcher(text);
    while (m.find()) {
      try {
        Class.forName(m.group(), false, DeploymentChecks.class.getClassLoader());
      } catch (ClassNotFoundException e) {
        missing.add(m.group());
      }
    }
    return missing;
  }

  /** A Dockerfile's instructions, continuation lines joined and comments dropped. */
  private static List<String> instructions(String dockerfile) {
    List<String> instructions = new ArrayList<>();
    StringBuilder current = new StringBuilder();
    for (String line : dockerfile.split("\n")) {
      if (line.trim().startsWith("#")) {
        continue;
      }
      boolean continues = line.endsWith("\\");
      current.append(continues ? line.substring(0, line.length() - 1) : line).append(' ');
      if (!continues) {
        if (!current.toString().isBlank()) {
          instructions.add(current.toString().trim());
        }
        current.setLength(0);
      }
    }
    return instructions;
  }

  @SuppressWarnings("unchecked")
  private static Map<String, Object> cast(Object map) {
    return (Map<String, Object>) map;
  }
}
