package dev.distillery.student;

import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.Shape;
import dev.distillery.common.JobFailedException;
import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.kafka.JobEvents;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.Evaluation;
import dev.distillery.common.ml.ImageDataset;
import dev.distillery.common.ml.Models;
import dev.distillery.common.ml.TrainingLoop;
import dev.distillery.schemas.ArtifactRef;
import dev.distillery.schemas.CheckpointReady;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.DistillationSettings;
import dev.distillery.schemas.JobContext;
import dev.distillery.schemas.ModelMetrics;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.StudentSpec;
import dev.distillery.schemas.kafka.Topics;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/** Trains a request's student on the teacher's soft labels and the hard labels, then publishes it. */
final class Distiller {
  private static final Stage STAGE = Stage.DISTILLATION;

  private final JobEvents events;
  private final ArtifactStore store;

  Distiller(JobEvents events, ArtifactStore store) {
    this.events = events;
    this.store = store;
  }

  /** Runs on a worker thread; the future completes when the checkpoint event is acknowledged. */
  CompletableFuture<?> distill(SoftLabels labels) throws Exception {
    long start = System.nanoTime();
    JobContext context = labels.context();
    CompressionRequest request = context.getRequest();
    String jobId = request.getJobId();
    DistillationSettings settings = request.getDistillation();
    Datasets.TrainTest data = Datasets.load(request.getDataset());
    ImageDataset train = data.train();
    if (labels.samples() != train.size() || labels.classes() != data.numClasses()) {
      throw new JobFailedException("dataset.location", "soft labels cover " + labels.samples() + " samples of "
          + labels.classes() + " classes, but the dataset has " + train.size() + " training samples of " + data.numClasses());
    }
    StudentSpec spec = request.getStudent();
    DistillationLoss loss = new DistillationLoss(settings.getTemperature(), settings.getAlpha());
    int classes = labels.classes();
    try (Model student = Models.create(spec.getArchitecture(), spec.getWidth(), classes, train.imageShape(),
        settings.getSeed())) {
      double[] lastAccuracy = {Double.NaN};
      TrainingLoop.fit(student, train,
          new TrainingLoop.Plan(settings.getEpochs(), settings.getBatchSize(), settings.getLearningRate(), settings.getSeed()),
          (logits, indices, manager) -> {
            NDArray teacher = manager.create(labels.rows(indices), new Shape(indices.length, classes));
            return loss.compute(logits, teacher, train.labels(manager, indices));
          },
          () -> {},
          (epoch, epochs, meanLoss, samplesPerSecond) -> {
            double accuracy = evaluate(student, data.test());
            lastAccuracy[0] = accuracy;
            events.progress(jobId, STAGE, epoch, epochs, "epoch " + epoch + "/" + epochs,
                Map.of("loss", meanLoss, "testAccuracy", accuracy, "samplesPerSecond", samplesPerSecond));
          });
      ArtifactRef checkpoint = Models.save(student, store.forOutput(request.getOutputUri()), jobId, "student.params");
      ModelMetrics metrics = ModelMetrics.newBuilder()
          .setArchitecture(spec.getArchitecture()).setWidth(spec.getWidth())
          .setTestAccuracy(lastAccuracy[0]) // measured after the last epoch, on these weights
          .setParameters(Models.parameterCount(student)).setNonZeroParameters(Models.nonZeroCount(student))
          .setCheckpointBytes(checkpoint.getSizeBytes()).build();
      Map<String, Double> seconds = new HashMap<>(context.getStageSeconds());
      seconds.put(STAGE.name(), (System.nanoTime() - start) / 1e9);
      // The planner timed its part; labelling ran on the replicas while batches arrived here.
      seconds.merge(Stage.TEACHER_INFERENCE.name(), labels.arrivalSeconds(), Double::sum);
      JobContext next = JobContext.newBuilder(context).setStudent(metrics).setStageSeconds(seconds).build();
      return events.send(Topics.CHECKPOINTS, jobId, CheckpointReady.newBuilder()
          .setJobId(jobId).setProducedBy(STAGE).setContext(next)
          .setArchitecture(spec.getArchitecture()).setWidth(spec.getWidth()).setCheckpoint(checkpoint).build());
    } catch (TrainingLoop.NonFiniteLossException e) {
      throw new JobFailedException(null, e.getMessage() + " (distillation.learningRate, distillation.temperature)", e);
    }
  }

  private static double evaluate(Model model, ImageDataset test) {
    try {
      return Evaluation.accuracy(model, test);
    } catch (Exception e) {
      throw new IllegalStateException("evaluation failed: " + e.getMessage(), e);
    }
  }
}
