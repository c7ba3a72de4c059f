package dev.distillery.deployment;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.distillery.common.kafka.ServiceAcls;
import dev.distillery.schemas.kafka.Topic;
import dev.distillery.schemas.kafka.Topics;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * docker/ and k8s/ against the code, with no cluster and no Docker engine: the overlays render,
 * the topics are exactly the code's, every variable set is one a service reads, every file the
 * Dockerfile copies exists after the build, every class named is real, and in prod each service logs
 * in as its own Strimzi KafkaUser whose ACLs are exactly ServiceAcls'. The drift tests feed the
 * checks drifted copies, to show that they fail.
 */
class DeploymentCheckTest {
  private static final Path ROOT = Path.of("../..").toAbsolutePath().normalize();
  private static final Set<String> CODE_TOPICS =
      Topics.ALL.stream().map(Topic::name).collect(Collectors.toCollection(TreeSet::new));

  @ParameterizedTest
  @ValueSource(strings = {"dev", "prod"})
  void overlayRendersWithEveryTopicAndOnlyVariablesServicesRead(String overlay) throws Exception {
    List<Map<String, Object>> resources = DeploymentChecks.documents(render("k8s/overlays/" + overlay));
    assertThat(resources).extracting(r -> r.get("kind")).contains("Deployment", "KafkaTopic", "ConfigMap",
        "Secret", "PersistentVolumeClaim", "ScaledObject", "Service", "Ingress");
    assertThat(DeploymentChecks.kafkaTopics(resources)).as("KafkaTopics against Topics.ALL").isEqualTo(CODE_TOPICS);
    assertThat(DeploymentChecks.unreadVariables(DeploymentChecks.kubernetesVariables(resources))).isEmpty();
    assertThat(DeploymentChecks.wiringProblems(resources, read("docker/Dockerfile"))).isEmpty();
  }

  @Test
  void composeCreatesEveryTopicAndSetsOnlyVariablesServicesRead() throws Exception {
    String compose = read("docker/docker-compose.yml");
    assertThat(DeploymentChecks.composeTopics(compose)).isEqualTo(CODE_TOPICS);
    assertThat(DeploymentChecks.unreadVariables(DeploymentChecks.composeVariables(compose))).isEmpty();
  }

  @Test
  void dockerfileCopiesWhatTheBuildMadeAndStartsRealClasses() throws Exception {
    String dockerfile = read("docker/Dockerfile");
    assertThat(DeploymentChecks.missingCopySources(dockerfile, ROOT)).isEmpty();
    assertThat(DeploymentChecks.unreadVariables(DeploymentChecks.dockerfileVariables(dockerfile))).isEmpty();
    assertThat(DeploymentChecks.missingClasses(dockerfile)).isEmpty();
    assertThat(dockerfile).contains("dev.distillery.teacher.TeacherInferenceService",
        "dev.distillery.student.StudentTrainerService", "dev.distillery.pruner.PrunerService",
        "dev.distillery.status.JobStatusService");
  }

  /**
   * DjlRuntime chooses libtorch's kernels by probing them on the CPU that runs; a launcher, image
   * or manifest that caps oneDNN's ISA (the old AVX2 workaround) would override that choice.
   */
  @Test
  void noLauncherImageOrManifestCapsOneDnn() throws Exception {
    Map<String, String> files = new java.util.TreeMap<>();
    for (String file : List.of("demo.sh", "distillery", "docker/Dockerfile", "docker/docker-compose.yml", "pom.xml",
        "bench/run.sh", ".ci/run")) {
      files.put(file, read(file));
    }
    files.put("k8s/overlays/dev", render("k8s/overlays/dev"));
    files.put("k8s/overlays/prod", render("k8s/overlays/prod"));
    assertThat(DeploymentChecks.oneDnnCaps(files)).isEmpty();
    assertThat(DeploymentChecks.oneDnnCaps(Map.of("docker/Dockerfile",
        read("docker/Dockerfile").replace("ENV OPT_OUT_TRACKING=true", "ENV ONEDNN_MAX_CPU_ISA=AVX2 OPT_OUT_TRACKING=true"))))
        .containsExactly("docker/Dockerfile");
  }

  @Test
  void prodKafkaUsersHaveServiceAclsAndEachServiceLogsInAsItself() throws Exception {
    List<Map<String, Object>> resources = DeploymentChecks.documents(render("k8s/overlays/prod"));
    assertThat(DeploymentChecks.kafkaUserAcls(resources).keySet()).isEqualTo(ServiceAcls.principals());
    assertThat(DeploymentChecks.aclProblems(resources)).isEmpty();
    assertThat(DeploymentChecks.credentialProblems(resources)).isEmpty();
    // The shared placeholder Secret is gone from prod; only the API tokens' remains.
    assertThat(resources).filteredOn(r -> "Secret".equals(r.get("kind")))
        .extracting(r -> String.valueOf(((Map<?, ?>) r.get("metadata")).get("name")))
        .allMatch(name -> name.startsWith("distillery-api-tokens-"));
  }

  @Test
  void theKafkaChecksFailOnDriftedUsersAndCredentials() throws Exception {
    String users = read("k8s/overlays/prod/kafka-users.yaml");
    List<String> aclProblems = DeploymentChecks.aclProblems(DeploymentChecks.documents(users
        // The pruner may read results, job-status may no longer write its changelog, KEDA's user is
        // misspelt, and teacher-inference logs in by certificate.
        .replace("name: distillery.results, patternType: literal}, operations: [Write]}",
            "name: distillery.results, patternType: literal}, operations: [Write, Read]}")
        .replace("patternType: prefix}, operations: [Create, Read, Write, Delete]", "patternType: prefix}, operations: [Create, Read, Delete]")
        .replace("name: keda\n", "name: kedda\n")
        .replaceFirst("scram-sha-512", "tls")));
    assertThat(aclProblems).containsExactlyInAnyOrder(
        "KafkaUser pruner allows READ on topic distillery.results (ServiceAcls does not)",
        "KafkaUser job-status lacks WRITE on topic distillery-job-status-* (ServiceAcls has it)",
        "no KafkaUser for principal keda of ServiceAcls",
        "KafkaUser kedda is no principal of ServiceAcls",
        "KafkaUser kedda allows DESCRIBE on group teacher-inference (ServiceAcls does not)",
        "KafkaUser kedda allows DESCRIBE on topic distillery.teacher-shards (ServiceAcls does not)",
        "KafkaUser teacher-inference authenticates with tls, not scram-sha-512");

    // The pruner logs in with the trainer's Secret, KEDA with teacher-inference's, and the base's
    // shared credentials come back with a login in them.
    String prod = render("k8s/overlays/prod");
    List<String> credentialProblems = DeploymentChecks.credentialProblems(DeploymentChecks.documents(prod
        .replace("key: sasl.jaas.config\n              name: pruner\n",
            "key: sasl.jaas.config\n              name: student-trainer\n")
        .replace("- key: password\n    name: keda\n", "- key: password\n    name: teacher-inference\n")
        + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: kafka-credentials}\n"
        + "stringData: {KAFKA_SASL_JAAS_CONFIG: shared}\n"
        + "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: submitter}\nspec:\n  template:\n"
        + "    spec:\n      containers:\n        - name: x\n          envFrom: [{secretRef: {name: kafka-credentials}}]\n"));
    assertThat(credentialProblems).containsExactlyInAnyOrder(
        "Deployment pruner uses the Secret of KafkaUser student-trainer",
        "Deployment pruner does not take KAFKA_SASL_JAAS_CONFIG from Secret pruner, key sasl.jaas.config",
        "TriggerAuthentication kafka-credentials-keda uses the Secret of KafkaUser teacher-inference",
        "Deployment submitter takes Kafka credentials from the shared Secret kafka-credentials",
        "Deployment submitter does not take KAFKA_SASL_JAAS_CONFIG from Secret submitter, key sasl.jaas.config");
  }

  @Test
  void theWiringCheckFailsOnADriftedOverlay() throws Exception {
    List<Map<String, Object>> resources = DeploymentChecks.documents(render("k8s/overlays/dev")
        .replace("image: distillery/pruner:dev", "image: distillery/prune:dev")
        .replace("strimzi.io/cluster: distillery\n", "strimzi.io/cluster: distillery-dev\n")
        .replace("DISTILLERY_MANAGEMENT_PORT: \"8081\"", "DISTILLERY_MANAGEMENT_PORT: \"9090\""));
    List<String> problems = DeploymentChecks.wiringProblems(resources, read("docker/Dockerfile"));
    assertThat(problems).anyMatch(p -> p.startsWith("pruner: image distillery/prune:dev is no target"));
    assertThat(problems).anyMatch(p -> p.startsWith("teacher-inference: readinessProbe on port 8081, management port 9090"));
    assertThat(problems).anyMatch(p -> p.contains("labelled for Strimzi cluster distillery-dev"));
  }

  @Test
  void theChecksFailOnDriftedCopies() throws Exception {
    // A renamed topic: one the code uses is missing and one is unused.
    String topics = read("k8s/base/topics.yaml").replace("name: distillery.dlq", "name: distillery.dead-letters");
    Set<String> drifted = DeploymentChecks.kafkaTopics(DeploymentChecks.documents(topics));
    assertThat(drifted).doesNotContain("distillery.dlq").contains("distillery.dead-letters").isNotEqualTo(CODE_TOPICS);
    String compose = read("docker/docker-compose.yml");
    assertThat(DeploymentChecks.composeTopics(compose.replace("distillery.progress:3", "distillery.progres:3")))
        .isNotEqualTo(CODE_TOPICS);

    // A configuration key nobody reads, and a Kafka property that does not exist.
    String config = read("k8s/base/config.env");
    assertThat(DeploymentChecks.unreadVariables(Map.of(
        "DISTILLERY_WORKER_THREAD", "typo", "KAFKA_BOOTSTRAP_SERVER", "typo", "DISTILLERY_SHARD_SIZE", "fine")))
        .containsExactlyInAnyOrder("DISTILLERY_WORKER_THREAD (typo)", "KAFKA_BOOTSTRAP_SERVER (typo)");
    assertThat(DeploymentChecks.unreadVariables(DeploymentChecks.composeVariables(
        compose.replace("DISTILLERY_TORCH_THREADS", "DISTILLERY_TORCH_THREAD")))).isNotEmpty();
    assertThat(config).contains("DISTILLERY_WORKER_THREADS");

    // A jar path that moved, and a main class that was renamed.
    String dockerfile = read("docker/Dockerfile");
    assertThat(DeploymentChecks.missingCopySources(
        dockerfile.replace("services/launcher/target/lib/", "services/launcher/target/libs/"), ROOT))
        .containsExactly("services/launcher/target/libs/");
    assertThat(DeploymentChecks.missingClasses(dockerfile.replace("PrunerService", "PruningService")))
        .containsExactly("dev.distillery.pruner.PruningService");
    assertThat(DeploymentChecks.unreadVariables(DeploymentChecks.dockerfileVariables(
        dockerfile.replace("DISTILLERY_MANAGEMENT_PORT=8081", "DISTILLERY_MGMT_PORT=8081")))).isNotEmpty();
  }

  /** {@code kubectl kustomize DIR}: from Debian's kubernetes-client, which .ci/run installs. */
  private static String render(String directory) throws IOException, InterruptedException {
    assumeTrue(onPath("kubectl"), "kubectl is not installed (.ci/run installs Debian's kubernetes-client)");
    Process kubectl = new ProcessBuilder("kubectl", "kustomize", ROOT.resolve(directory).toString())
        .redirectError(ProcessBuilder.Redirect.DISCARD).start();
    String out = new String(kubectl.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    assertThat(kubectl.waitFor(2, TimeUnit.MINUTES)).isTrue();
    assertThat(kubectl.exitValue()).as("kubectl kustomize %s", directory).isZero();
    return out;
  }

  private static boolean onPath(String command) {
    for (String dir : System.getenv().getOrDefault("PATH", "").split(":")) {
      if (Files.isExecutable(Path.of(dir, command))) {
        return true;
      }
    }
    return false;
  }

  private static String read(String file) throws IOException {
    return Files.readString(ROOT.resolve(file));
  }
}
