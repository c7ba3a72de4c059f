package dev.distillery.common.kafka;

import dev.distillery.schemas.kafka.Topics;
import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

/**
 * Who may do what on Distillery's Kafka cluster: the least-privilege ACLs of each principal, in
 * one place. SecurePipelineTest runs a job on a broker that allows exactly these, and the
 * deployment checks fail the build when the prod overlay's Strimzi {@code KafkaUser}s allow
 * anything else.
 *
 * <p>Read off the code: a stage reads its input topic in its consumer group ({@code StageService},
 * group = the stage's name) and writes its outputs, progress and failures ({@code JobEvents}) and
 * dead letters ({@code DeadLetters}). Kafka's authorizer lets READ and WRITE imply DESCRIBE, and
 * lets a principal that may WRITE some topic have an idempotent producer id (KIP-679), so neither
 * is listed. No principal may create, delete or reconfigure Distillery's topics: an administrator
 * does that ({@code KafkaTopics.ensure}, or Strimzi's {@code KafkaTopic}s).
 */
public final class ServiceAcls {
  /** The planner (group {@value #TEACHER_PLANNER_GROUP}) and the labelers (group {@value #TEACHER_INFERENCE}). */
  public static final String TEACHER_INFERENCE = "teacher-inference";
  /** Distillation (group {@value #STUDENT_TRAINER}) and transfer learning (group {@value #STUDENT_TRANSFER_GROUP}). */
  public static final String STUDENT_TRAINER = "student-trainer";
  public static final String PRUNER = "pruner";
  /** The Kafka Streams application {@value #JOB_STATUS_APPLICATION} and its HTTP API, which submits requests. */
  public static final String JOB_STATUS = "job-status";
  /** Whoever submits jobs straight to Kafka (the CLI, a pipeline) and follows them. */
  public static final String SUBMITTER = "submitter";
  /** KEDA, which scales teacher-inference on the labelers' lag: it reads offsets, never records. */
  public static final String AUTOSCALER = "keda";

  // The names the services give their groups: TeacherInferenceService.PLANNER,
  // StudentTrainerService.TRANSFER, and JobStatusService's application.id "distillery-" + its name.
  static final String TEACHER_PLANNER_GROUP = "teacher-planner";
  static final String STUDENT_TRANSFER_GROUP = "student-transfer";
  static final String JOB_STATUS_APPLICATION = "distillery-job-status";

  /** {@code operations} allowed on one resource, named exactly ({@code LITERAL}) or by a {@code PREFIXED} name. */
  public record Grant(ResourceType resource, String name, PatternType pattern, Set<AclOperation> operations) {
    public Grant {
      operations = Set.copyOf(operations);
    }
  }

  private static final Map<String, List<Grant>> GRANTS = Collections.unmodifiableSortedMap(new TreeMap<>(Map.of(
      TEACHER_INFERENCE, stage(
          group(TEACHER_PLANNER_GROUP, AclOperation.READ),
          group(TEACHER_INFERENCE, AclOperation.READ),
          topic(Topics.REQUESTS.name(), AclOperation.READ),
          // The planner writes shards and the labelers read them: one principal, both ends.
          topic(Topics.TEACHER_SHARDS.name(), AclOperation.READ, AclOperation.WRITE),
          topic(Topics.SOFT_LABELS.name(), AclOperation.WRITE),
          // A job without distillation goes from the planner straight to the pruner.
          topic(Topics.CHECKPOINTS.name(), AclOperation.WRITE)),
      STUDENT_TRAINER, stage(
          group(STUDENT_TRAINER, AclOperation.READ),
          group(STUDENT_TRANSFER_GROUP, AclOperation.READ),
          topic(Topics.SOFT_LABELS.name(), AclOperation.READ),
          topic(Topics.REQUESTS.name(), AclOperation.READ),
          topic(Topics.CHECKPOINTS.name(), AclOperation.WRITE)),
      PRUNER, stage(
          group(PRUNER, AclOperation.READ),
          topic(Topics.CHECKPOINTS.name(), AclOperation.READ),
          topic(Topics.RESULTS.name(), AclOperation.WRITE)),
      JOB_STATUS, List.of(
          group(JOB_STATUS_APPLICATION, AclOperation.READ),
          // The five topics JobStatusTopology folds; requests also written, by the HTTP API.
          topic(Topics.REQUESTS.name(), AclOperation.READ, AclOperation.WRITE),
          topic(Topics.PROGRESS.name(), AclOperation.READ),
          topic(Topics.CHECKPOINTS.name(), AclOperation.READ),
          topic(Topics.RESULTS.name(), AclOperation.READ),
          topic(Topics.FAILURES.name(), AclOperation.READ),
          // Folded into the status too; written by the API's DELETE /api/jobs/{id}.
          topic(Topics.CANCELLATIONS.name(), AclOperation.READ, AclOperation.WRITE),
          // Kafka Streams' internal topics (the store's changelog, the requests re-keyed by job id)
          // are named after the application id: it creates them, writes and reads them, restores
          // from the changelog and purges the repartition topic of what it consumed (DELETE).
          new Grant(ResourceType.TOPIC, JOB_STATUS_APPLICATION + "-", PatternType.PREFIXED, EnumSet.of(
              AclOperation.CREATE, AclOperation.READ, AclOperation.WRITE, AclOperation.DELETE))),
      SUBMITTER, List.of(
          topic(Topics.REQUESTS.name(), AclOperation.WRITE),
          // JobWatcher reads these without a consumer group, so no group ACL.
          topic(Topics.PROGRESS.name(), AclOperation.READ),
          topic(Topics.RESULTS.name(), AclOperation.READ),
          topic(Topics.FAILURES.name(), AclOperation.READ),
          // distillery cancel; read back to tell a cancelled job from a failed one.
          topic(Topics.CANCELLATIONS.name(), AclOperation.READ, AclOperation.WRITE)),
      AUTOSCALER, List.of(
          group(TEACHER_INFERENCE, AclOperation.DESCRIBE),
          topic(Topics.TEACHER_SHARDS.name(), AclOperation.DESCRIBE)))));

  private ServiceAcls() {}

  /**
   * A stage's own grants, and what every stage does: writes progress and failures ({@code
   * JobEvents}) and dead letters, and reads cancellations and failures without a group ({@code
   * JobSignals}) to stop a job's work wherever it runs.
   */
  private static List<Grant> stage(Grant... own) {
    List<Grant> grants = new ArrayList<>(List.of(own));
    grants.add(topic(Topics.PROGRESS.name(), AclOperation.WRITE));
    grants.add(topic(Topics.FAILURES.name(), AclOperation.READ, AclOperation.WRITE));
    grants.add(topic(Topics.DEAD_LETTERS.name(), AclOperation.WRITE));
    grants.add(topic(Topics.CANCELLATIONS.name(), AclOperation.READ));
    return List.copyOf(grants);
  }

  /** Every principal, sorted. */
  public static Set<String> principals() {
    return GRANTS.keySet();
  }

  /** What {@code principal} may do; empty for a principal this class does not know. */
  public static List<Grant> grants(String principal) {
    return GRANTS.getOrDefault(principal, List.of());
  }

  /** The principal's grants as Kafka ACL bindings: principal {@code User:<principal>}, any host, ALLOW. */
  public static List<AclBinding> bindings(String principal) {
    List<AclBinding> bindings = new ArrayList<>();
    for (Grant grant : grants(principal)) {
      for (AclOperation operation : grant.operations()) {
        bindings.add(binding(principal, grant.resource(), grant.name(), grant.pattern(), operation));
      }
    }
    return bindings;
  }

  /** The bindings of every principal. */
  public static List<AclBinding> bindings() {
    return principals().stream().flatMap(p -> bindings(p).stream()).toList();
  }

  /** One allowing binding; what a Strimzi {@code KafkaUser}'s ACL entry comes to, for comparison. */
  public static AclBinding binding(String principal, ResourceType resource, String name, PatternType pattern,
      AclOperation operation) {
    return new AclBinding(new ResourcePattern(resource, name, pattern),
        new AccessControlEntry("User:" + principal, "*", operation, AclPermissionType.ALLOW));
  }

  private static Grant topic(String name, AclOperation... operations) {
    return new Grant(ResourceType.TOPIC, name, PatternType.LITERAL, Set.of(operations));
  }

  private static Grant group(String name, AclOperation... operations) {
    return new Grant(ResourceType.GROUP, name, PatternType.LITERAL, Set.of(operations));
  }
}
