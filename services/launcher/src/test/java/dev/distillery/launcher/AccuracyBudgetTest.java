package dev.distillery.launcher;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.distillery.cli.JobWatcher;
import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.config.ServiceConfig;
import dev.distillery.common.kafka.JobEvents;
import dev.distillery.common.kafka.KafkaClients;
import dev.distillery.common.kafka.KafkaTopics;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.TrainingLoop;
import dev.distillery.kafka.embedded.EmbeddedKafkaBroker;
import dev.distillery.kafka.embedded.EmbeddedKafkaExtension;
import dev.distillery.schemas.BudgetStep;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.DatasetSpec;
import dev.distillery.schemas.DistillationSettings;
import dev.distillery.schemas.JobProgress;
import dev.distillery.schemas.JobResult;
import dev.distillery.schemas.PruningMethod;
import dev.distillery.schemas.PruningSettings;
import dev.distillery.schemas.SoftLabelSource;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.TeacherSpec;
import dev.distillery.schemas.kafka.Topics;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code pruning.maxAccuracyLoss} through the real broker and services: the pruner climbs the
 * gradual schedule's sparsities, judging each step on the validation split, publishes the
 * sparsest step within the budget and never one beyond it; with no step within, the job fails
 * naming the field. Fine-tuning distils from the unpruned model meanwhile.
 */
@ExtendWith(EmbeddedKafkaExtension.class)
class AccuracyBudgetTest {
  private static final Duration WAIT = Duration.ofMinutes(5);

  @Test
  void publishesTheSparsestStepWithinTheBudgetAndFailsWhenNoneIs(EmbeddedKafkaBroker broker, @TempDir Path work)
      throws Exception {
    DjlRuntime.start(2);
    String bootstrap = broker.bootstrapServers();
    KafkaTopics.ensure(bootstrap, 2);
    ArtifactStore store = new ArtifactStore(work.resolve("artifacts"));
    DatasetSpec data = DatasetSpec.newBuilder().setLocation(PipelineScenario.SUBSET.toString()).build();
    Datasets.TrainTest sets = Datasets.load(data);
    TeacherTraining.Teacher lenet = TeacherTraining.train("lenet5", 1.0, sets.train(), sets.test(),
        TrainingLoop.Plan.adam(3, 64, 0.002, 1), store, "lenet5.params", line -> {});
    String suffix = UUID.randomUUID().toString().substring(0, 8);
    // The model pruned is the trained LeNet-5 itself. Four steps to 99%: 57.2%, 86.6%, 97.5%, 99%;
    // at 99% (617 of 61,706 weights) two epochs of fine-tuning cannot keep it within 5 points.
    CompressionRequest climbing = CompressionRequest.newBuilder(DemoMain.request("budget-" + suffix, lenet.checkpoint(), data))
        .setTeacher(TeacherSpec.newBuilder().setArchitecture("lenet5").setCheckpointUri(lenet.checkpoint().toUri().toString())
            .build())
        .setDistillation(DistillationSettings.newBuilder().setTemperature(4.0).setAlpha(0.7).setBatchSize(64)
            .setValidationSplit(0.2).setSeed(3L).build())
        .setPruning(PruningSettings.newBuilder().setMethod(PruningMethod.L1_UNSTRUCTURED).setTargetSparsity(0.99)
            .setSteps(4).setFineTuneEpochs(2).setFinalFineTuneEpochs(1).setLearningRate(0.001)
            .setDistillFrom(SoftLabelSource.UNPRUNED).setMaxAccuracyLoss(5.0).build())
        .setStages(List.of(Stage.PRUNING))
        .build();
    // One step straight to 99% without fine-tuning, and no loss allowed: nothing may be published.
    CompressionRequest impossible = CompressionRequest.newBuilder(climbing).setJobId("budget-none-" + suffix)
        .setPruning(PruningSettings.newBuilder(climbing.getPruning()).setSteps(1).setFineTuneEpochs(0)
            .setFinalFineTuneEpochs(0).setMaxAccuracyLoss(0.0).build())
        .build();

    try (LocalPipeline pipeline = LocalPipeline.start(LocalPipeline.keys(bootstrap, store.root(), 2,
            List.of(store.root().resolve("teachers")), List.of(PipelineScenario.SUBSET.getParent())));
        JobWatcher watcher = new JobWatcher(bootstrap);
        KafkaProducer<String, byte[]> producer = KafkaClients.producer(ServiceConfig.fromKeys("test",
            Map.of("kafka.bootstrap.servers", bootstrap)))) {
      JobEvents events = new JobEvents(producer);
      events.send(Topics.REQUESTS, climbing.getJobId(), climbing).get(30, TimeUnit.SECONDS);
      events.send(Topics.REQUESTS, impossible.getJobId(), impossible).get(30, TimeUnit.SECONDS);

      List<JobProgress> judged = new ArrayList<>();
      JobWatcher.Outcome outcome = watcher.await(climbing.getJobId(), WAIT, p -> {
        if (p.getMetrics().containsKey("withinBudget")) {
          judged.add(p);
        }
      });
      assertThat(outcome.failure()).as("failure of the budget job").isNull();
      JobResult result = outcome.result();
      List<BudgetStep> explored = result.getPruning().getExplored();
      System.out.printf("budget 5 points: validation before %.4f, explored %s, published sparsity %.4f, test %.4f -> %.4f%n",
          result.getPruning().getValidationAccuracyBefore(), explored, result.getSparsity(),
          result.getPruning().getAccuracyBefore(), result.getPruning().getAccuracyFineTuned());
      assertThat(result.getPruning().getMaxAccuracyLoss()).isEqualTo(5.0);
      assertThat(explored).as("steps tried").isNotEmpty().hasSameSizeAs(judged);
      BudgetStep last = explored.get(explored.size() - 1);
      assertThat(last.getWithinBudget()).as("the climb stops at the first step beyond the budget: " + explored).isFalse();
      assertThat(last.getPointsLost()).isGreaterThan(5.0);
      List<BudgetStep> within = explored.subList(0, explored.size() - 1);
      assertThat(within).as("a step within the budget, before the one beyond").isNotEmpty()
          .allMatch(BudgetStep::getWithinBudget).allMatch(s -> s.getPointsLost() <= 5.0);
      double published = within.get(within.size() - 1).getSparsity();
      assertThat(result.getSparsity()).as("the sparsest step within the budget is published")
          .isCloseTo(published, within(0.001)).isLessThan(last.getSparsity());
      for (BudgetStep step : explored) {
        assertThat(step.getPointsLost()).isCloseTo(
            (result.getPruning().getValidationAccuracyBefore() - step.getValidationAccuracy()) * 100, within(1e-9));
      }

      JobWatcher.Outcome refused = watcher.await(impossible.getJobId(), WAIT, p -> {});
      assertThat(refused.result()).as("nothing beyond the budget is published").isNull();
      assertThat(refused.failure()).isNotNull();
      assertThat(refused.failure().getStage()).isEqualTo(Stage.PRUNING);
      assertThat(refused.failure().getField()).isEqualTo("pruning.maxAccuracyLoss");
      assertThat(refused.failure().getReason()).contains("no pruning step stays within 0.0 points");
    }
  }
}
