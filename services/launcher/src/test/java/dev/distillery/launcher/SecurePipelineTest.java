package dev.distillery.launcher;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.distillery.cli.JobWatcher;
import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.kafka.ServiceAcls;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.TrainingLoop;
import dev.distillery.kafka.embedded.EmbeddedKafkaBroker;
import dev.distillery.pruner.PrunerService;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.DatasetSpec;
import dev.distillery.schemas.DistillationSettings;
import dev.distillery.schemas.PruningMethod;
import dev.distillery.schemas.PruningSettings;
import dev.distillery.schemas.TeacherSpec;
import dev.distillery.schemas.kafka.Topics;
import dev.distillery.status.JobStatusService;
import dev.distillery.student.StudentTrainerService;
import dev.distillery.teacher.TeacherInferenceService;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TimeoutException;
import org.apache.kafka.common.errors.SaslAuthenticationException;
import org.apache.kafka.common.errors.TopicAuthorizationException;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The pipeline on a broker that authenticates and authorizes every client (SASL_SSL, SCRAM-SHA-512,
 * KRaft's StandardAuthorizer) and allows exactly {@link ServiceAcls}: each service logs in as its own
 * principal, the submitter sends a small job and follows it to its result, and KEDA's principal can
 * read the labelers' lag. Then a client without credentials gets nothing, and a principal that may
 * not write {@code distillery.requests} is refused.
 */
class SecurePipelineTest {
  private static final Duration REFUSAL_WAIT = Duration.ofSeconds(10);

  @Test
  void eachServiceAsItsOwnPrincipalRunsAJobAndOthersAreRefused(@TempDir Path work) throws Exception {
    // The principals are the services' names: ServiceAcls is in common, which cannot see them.
    assertThat(List.of(ServiceAcls.TEACHER_INFERENCE, ServiceAcls.STUDENT_TRAINER, ServiceAcls.PRUNER,
        ServiceAcls.JOB_STATUS)).containsExactly(TeacherInferenceService.NAME, StudentTrainerService.NAME,
        PrunerService.NAME, JobStatusService.NAME);
    DjlRuntime.start(2);
    ArtifactStore store = new ArtifactStore(work.resolve("artifacts"));
    DatasetSpec data = DatasetSpec.newBuilder().setLocation(PipelineScenario.SUBSET.toString())
        .setTrainLimit(1000).setTestLimit(500).build();
    Datasets.TrainTest sets = Datasets.load(data);
    TeacherTraining.Teacher teacher = TeacherTraining.train("convnet", 0.5, sets.train(), sets.test(),
        TrainingLoop.Plan.adam(2, 64, 0.002, 1), store, "teacher.params", line -> {});
    CompressionRequest demo = DemoMain.request("secure-job", teacher.checkpoint(), data);
    CompressionRequest job = CompressionRequest.newBuilder(demo)
        .setTeacher(TeacherSpec.newBuilder(demo.getTeacher()).setWidth(0.5).build())
        .setDistillation(DistillationSettings.newBuilder(demo.getDistillation()).setEpochs(1)
            .setHardLabelBaseline(false).build())
        .setPruning(PruningSettings.newBuilder().setMethod(PruningMethod.L1_UNSTRUCTURED).setTargetSparsity(0.5)
            .setFineTuneEpochs(1).setLearningRate(0.0005).build())
        .build();

    try (EmbeddedKafkaBroker broker = EmbeddedKafkaBroker.startSecure()) {
      // As an administrator would: topics, then a login and the ACLs of each principal.
      broker.createTopics(Topics.ALL.stream().collect(Collectors.toMap(t -> t.name(), t -> 2)));
      ServiceAcls.principals().forEach(broker::addUser);
      broker.addAcls(ServiceAcls.bindings());

      Map<String, Map<String, String>> keysByService = new TreeMap<>();
      for (String service : List.of(ServiceAcls.TEACHER_INFERENCE, ServiceAcls.STUDENT_TRAINER, ServiceAcls.PRUNER,
          ServiceAcls.JOB_STATUS)) {
        keysByService.put(service, kafkaKeys(broker.clientProperties(service)));
      }
      long started = System.nanoTime();
      try (LocalPipeline pipeline = LocalPipeline.start(LocalPipeline.keys(broker.bootstrapServers(), store.root(), 2,
              List.of(store.root().resolve("teachers")), List.of(PipelineScenario.SUBSET.getParent())),
              keysByService, 0, null);
          JobWatcher watcher = new JobWatcher(broker.clientProperties(ServiceAcls.SUBMITTER));
          KafkaProducer<String, byte[]> submitter = producer(broker.clientProperties(ServiceAcls.SUBMITTER))) {
        PipelineScenario.send(submitter, job);
        JobWatcher.Outcome outcome = watcher.await(job.getJobId(), Duration.ofMinutes(5), p -> {});
        assertThat(outcome.failure()).as("failure of the job").isNull();
        assertThat(outcome.result().getSparsity()).isCloseTo(0.5, org.assertj.core.data.Offset.offset(0.01));
        assertThat(outcome.result().getStudent().getTestAccuracy()).as("chance is 0.1").isGreaterThan(0.3);
        assertThat(Files.isRegularFile(ArtifactStore.open(outcome.result().getFinalCheckpoint()))).isTrue();
        System.out.printf("secure pipeline: services up and the job done in %.1f s%n", (System.nanoTime() - started) / 1e9);
        checkAutoscalerReadsTheLabelersLag(broker);
      }

      Map<String, Object> anonymous = new HashMap<>(broker.clientPropertiesWithoutCredentials());
      anonymous.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 3_000);
      assertThatThrownBy(() -> sendRequest(anonymous, job))
          .as("a client without credentials").hasCauseInstanceOf(TimeoutException.class);
      // A timeout alone could have other causes: the same listener refuses a wrong password by name.
      Map<String, Object> impostor = new HashMap<>(broker.clientProperties(ServiceAcls.SUBMITTER));
      impostor.put("sasl.jaas.config", "org.apache.kafka.common.security.scram.ScramLoginModule required "
          + "username=\"" + ServiceAcls.SUBMITTER + "\" password=\"not-the-password\";");
      impostor.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, (int) REFUSAL_WAIT.toMillis());
      assertThatThrownBy(() -> sendRequest(impostor, job))
          .as("a client with a wrong password").hasRootCauseInstanceOf(SaslAuthenticationException.class);

      // The student trainer reads requests (TRANSFER jobs) and has a producer id, but may not write them.
      Map<String, Object> trainer = new HashMap<>(broker.clientProperties(ServiceAcls.STUDENT_TRAINER));
      trainer.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, (int) REFUSAL_WAIT.toMillis());
      trainer.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, (int) REFUSAL_WAIT.toMillis());
      trainer.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, (int) REFUSAL_WAIT.toMillis() / 2);
      assertThatThrownBy(() -> sendRequest(trainer, job))
          .as("the student trainer writing a request").hasCauseInstanceOf(TopicAuthorizationException.class)
          .cause().hasMessageContaining(Topics.REQUESTS.name());
    }
  }

  /** What KEDA's Kafka scaler reads: the group's committed offsets and the topic's end offsets. */
  private static void checkAutoscalerReadsTheLabelersLag(EmbeddedKafkaBroker broker) throws Exception {
    try (Admin keda = Admin.create(new HashMap<>(broker.clientProperties(ServiceAcls.AUTOSCALER)))) {
      Map<TopicPartition, OffsetAndMetadata> committed = keda.listConsumerGroupOffsets(TeacherInferenceService.NAME)
          .partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
      assertThat(committed.keySet()).extracting(TopicPartition::topic).contains(Topics.TEACHER_SHARDS.name());
      Map<TopicPartition, OffsetSpec> ends = new HashMap<>();
      committed.keySet().forEach(partition -> ends.put(partition, OffsetSpec.latest()));
      assertThat(keda.listOffsets(ends).all().get(30, TimeUnit.SECONDS)).hasSameSizeAs(committed);
    }
  }

  private static Map<String, String> kafkaKeys(Map<String, String> clientProperties) {
    Map<String, String> keys = new TreeMap<>();
    clientProperties.forEach((key, value) -> keys.put("kafka." + key, value));
    return keys;
  }

  private static KafkaProducer<String, byte[]> producer(Map<String, ?> props) {
    return new KafkaProducer<>(new HashMap<>(props), new StringSerializer(), new ByteArraySerializer());
  }

  private static void sendRequest(Map<String, Object> props, CompressionRequest request) throws Exception {
    try (KafkaProducer<String, byte[]> producer = producer(props)) {
      producer.send(new ProducerRecord<>(Topics.REQUESTS.name(), request.getJobId(),
          Topics.REQUESTS.valueSerde().serializer().serialize(Topics.REQUESTS.name(), request))).get();
    }
  }
}
