package dev.distillery.deployment;

import dev.distillery.common.config.ServiceConfig;
import dev.distillery.common.kafka.ServiceAcls;
import dev.distillery.common.ml.DjlRuntime;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;
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
   * Environment variables the rendered resources set for the services: keys of the ConfigMaps
   * and Secrets that containers take whole ({@code envFrom}), and containers' {@code env} names.
   * A Secret mounted as files (API tokens) sets no variable.
   */
  static Map<String, String> kubernetesVariables(List<Map<String, Object>> resources) {
    Set<String> asEnvironment = new TreeSet<>();
    for (Map<String, Object> container : containers(resources).values().stream().flatMap(List::stream).toList()) {
      for (Object from : (List<?>) container.getOrDefault("envFrom", List.of())) {
        for (String ref : List.of("configMapRef", "secretRef")) {
          if (cast(from).containsKey(ref)) {
            asEnvironment.add(cast(cast(from).get(ref)).get("name").toString());
          }
        }
      }
    }
    Map<String, String> variables = new LinkedHashMap<>();
    for (Map<String, Object> resource : resources) {
      String name = String.valueOf(cast(resource.get("metadata")).get("name"));
      String where = resource.get("kind") + " " + name;
      if (("ConfigMap".equals(resource.get("kind")) || "Secret".equals(resource.get("kind")))
          && asEnvironment.contains(name)) {
        for (String field : List.of("data", "stringData")) {
          cast(resource.getOrDefault(field, Map.of())).keySet().forEach(k -> variables.put(k, where));
        }
      }
    }
    containers(resources).forEach((deployment, containers) -> {
      for (Map<String, Object> container : containers) {
        for (Object env : (List<?>) container.getOrDefault("env", List.of())) {
          variables.put((String) cast(env).get("name"), "Deployment " + deployment);
        }
      }
    });
    return variables;
  }

  /** The ACLs of the {@code KafkaUser} resources as Kafka bindings, by user name: its principal. */
  static Map<String, Set<AclBinding>> kafkaUserAcls(List<Map<String, Object>> resources) {
    Map<String, Set<AclBinding>> acls = new TreeMap<>();
    for (Map<String, Object> resource : resources) {
      if (!"KafkaUser".equals(resource.get("kind"))) {
        continue;
      }
      String user = String.valueOf(cast(resource.get("metadata")).get("name"));
      Set<AclBinding> bindings = new HashSet<>();
      Map<String, Object> authorization = cast(cast(resource.getOrDefault("spec", Map.of()))
          .getOrDefault("authorization", Map.of()));
      for (Object item : (List<?>) authorization.getOrDefault("acls", List.of())) {
        Map<String, Object> acl = cast(item);
        Map<String, Object> target = cast(acl.get("resource"));
        ResourceType type = ResourceType.fromString(kafkaName(String.valueOf(target.get("type"))));
        String name = type == ResourceType.CLUSTER ? "kafka-cluster" : String.valueOf(target.get("name"));
        PatternType pattern = "prefix".equals(target.getOrDefault("patternType", "literal"))
            ? PatternType.PREFIXED : PatternType.LITERAL;
        AclPermissionType permission = "deny".equals(acl.getOrDefault("type", "allow"))
            ? AclPermissionType.DENY : AclPermissionType.ALLOW;
        List<?> operations = acl.containsKey("operations") ? (List<?>) acl.get("operations") : List.of(acl.get("operation"));
        for (Object operation : operations) {
          bindings.add(new AclBinding(new ResourcePattern(type, name, pattern), new AccessControlEntry("User:" + user,
              String.valueOf(acl.getOrDefault("host", "*")), AclOperation.fromString(kafkaName(String.valueOf(operation))),
              permission)));
        }
      }
      acls.put(user, bindings);
    }
    return acls;
  }

  /**
   * How the {@code KafkaUser}s differ from {@link ServiceAcls}: a principal with no user or a user
   * that is no principal, an ACL one side has and the other lacks, a user not on SCRAM-SHA-512.
   */
  static List<String> aclProblems(List<Map<String, Object>> resources) {
    List<String> problems = new ArrayList<>();
    Map<String, Set<AclBinding>> users = kafkaUserAcls(resources);
    for (String principal : ServiceAcls.principals()) {
      if (!users.containsKey(principal)) {
        problems.add("no KafkaUser for principal " + principal + " of ServiceAcls");
      }
    }
    users.forEach((user, bindings) -> {
      Set<AclBinding> code = new HashSet<>(ServiceAcls.bindings(user));
      if (!ServiceAcls.principals().contains(user)) {
        problems.add("KafkaUser " + user + " is no principal of ServiceAcls");
      }
      code.stream().filter(b -> !bindings.contains(b)).map(DeploymentChecks::describe).sorted()
          .forEach(b -> problems.add("KafkaUser " + user + " lacks " + b + " (ServiceAcls has it)"));
      bindings.stream().filter(b -> !code.contains(b)).map(DeploymentChecks::describe).sorted()
          .forEach(b -> problems.add("KafkaUser " + user + " allows " + b + " (ServiceAcls does not)"));
    });
    for (Map<String, Object> resource : resources) {
      if ("KafkaUser".equals(resource.get("kind"))) {
        Object authentication = cast(cast(resource.get("spec")).getOrDefault("authentication", Map.of())).get("type");
        if (!"scram-sha-512".equals(authentication)) {
          problems.add("KafkaUser " + cast(resource.get("metadata")).get("name") + " authenticates with "
              + authentication + ", not scram-sha-512");
        }
      }
    }
    return problems;
  }

  /**
   * Where Kafka credentials go to the wrong place, in resources that have {@code KafkaUser}s: a
   * Deployment (named after its principal) that takes another principal's Secret, that has no
   * KafkaUser, that does not take {@code KAFKA_SASL_JAAS_CONFIG} from its own user's Secret, or that
   * takes a shared Secret carrying Kafka credentials; a KEDA TriggerAuthentication with a Secret
   * other than {@link ServiceAcls#AUTOSCALER}'s.
   */
  static List<String> credentialProblems(List<Map<String, Object>> resources) {
    Set<String> users = kafkaUserAcls(resources).keySet();
    List<String> problems = new ArrayList<>();
    if (users.isEmpty()) {
      return problems;
    }
    Set<String> secretsWithKafkaLogins = new TreeSet<>();
    for (Map<String, Object> resource : resources) {
      if ("Secret".equals(resource.get("kind")) && List.of("data", "stringData").stream()
          .flatMap(field -> cast(resource.getOrDefault(field, Map.of())).keySet().stream())
          .anyMatch(key -> key.startsWith("KAFKA_SASL"))) {
        secretsWithKafkaLogins.add(String.valueOf(cast(resource.get("metadata")).get("name")));
      }
    }
    for (Map<String, Object> resource : resources) {
      String name = String.valueOf(cast(resource.get("metadata")).get("name"));
      if ("Deployment".equals(resource.get("kind"))) {
        if (!users.contains(name)) {
          problems.add("Deployment " + name + " has no KafkaUser of its name");
        }
        Map<String, Object> pod = cast(cast(cast(resource.get("spec")).get("template")).get("spec"));
        Set<String> secrets = new TreeSet<>();
        for (Object volume : (List<?>) pod.getOrDefault("volumes", List.of())) {
          if (cast(volume).containsKey("secret")) {
            secrets.add(String.valueOf(cast(cast(volume).get("secret")).get("secretName")));
          }
        }
        boolean ownLogin = false;
        for (Object container : (List<?>) pod.get("containers")) {
          for (Object from : (List<?>) cast(container).getOrDefault("envFrom", List.of())) {
            if (cast(from).containsKey("secretRef")) {
              secrets.add(String.valueOf(cast(cast(from).get("secretRef")).get("name")));
            }
          }
          for (Object item : (List<?>) cast(container).getOrDefault("env", List.of())) {
            Map<String, Object> env = cast(item);
            Map<String, Object> ref = cast(cast(env.getOrDefault("valueFrom", Map.of())).get("secretKeyRef"));
            if (ref != null) {
              secrets.add(String.valueOf(ref.get("name")));
              ownLogin |= "KAFKA_SASL_JAAS_CONFIG".equals(env.get("name")) && name.equals(ref.get("name"))
                  && "sasl.jaas.config".equals(ref.get("key"));
            }
          }
        }
        for (String secret : secrets) {
          if (users.contains(secret) && !secret.equals(name)) {
            problems.add("Deployment " + name + " uses the Secret of KafkaUser " + secret);
          }
          if (secretsWithKafkaLogins.contains(secret)) {
            problems.add("Deployment " + name + " takes Kafka credentials from the shared Secret " + secret);
          }
        }
        if (users.contains(name) && !ownLogin) {
          problems.add("Deployment " + name + " does not take KAFKA_SASL_JAAS_CONFIG from Secret " + name
              + ", key sasl.jaas.config");
        }
      }
      if ("TriggerAuthentication".equals(resource.get("kind"))) {
        for (Object ref : (List<?>) cast(resource.get("spec")).getOrDefault("secretTargetRef", List.of())) {
          String secret = String.valueOf(cast(ref).get("name"));
          if (users.contains(secret) && !secret.equals(ServiceAcls.AUTOSCALER)) {
            problems.add("TriggerAuthentication " + name + " uses the Secret of KafkaUser " + secret);
          }
        }
      }
    }
    return problems;
  }

  /** Strimzi's {@code DescribeConfigs}, {@code transactionalId}: Kafka's {@code DESCRIBE_CONFIGS}, {@code TRANSACTIONAL_ID}. */
  private static String kafkaName(String strimzi) {
    return strimzi.replaceAll("([a-z])([A-Z])", "$1_$2").toUpperCase(Locale.ROOT);
  }

  private static String describe(AclBinding binding) {
    ResourcePattern pattern = binding.pattern();
    return (binding.entry().permissionType() == AclPermissionType.ALLOW ? "" : binding.entry().permissionType() + " ")
        + binding.entry().operation() + " on "
        + pattern.resourceType().toString().toLowerCase(Locale.ROOT) + " " + pattern.name()
        + (pattern.patternType() == PatternType.PREFIXED ? "*" : "")
        + ("*".equals(binding.entry().host()) ? "" : " from " + binding.entry().host());
  }

  /** The containers of each Deployment, by its name. */
  private static Map<String, List<Map<String, Object>>> containers(List<Map<String, Object>> resources) {
    Map<String, List<Map<String, Object>>> containers = new LinkedHashMap<>();
    for (Map<String, Object> resource : resources) {
      if ("Deployment".equals(resource.get("kind"))) {
        Map<String, Object> pod = cast(cast(cast(resource.get("spec")).get("template")).get("spec"));
        containers.put(String.valueOf(cast(resource.get("metadata")).get("name")),
            ((List<?>) pod.get("containers")).stream().map(DeploymentChecks::cast).toList());
      }
    }
    return containers;
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
