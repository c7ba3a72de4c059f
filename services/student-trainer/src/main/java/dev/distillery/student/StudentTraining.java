package dev.distillery.student;

import dev.distillery.common.JobFailedException;
import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.kafka.JobEvents;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.Evaluation;
import dev.distillery.common.ml.ImageDataset;
import dev.distillery.common.ml.JobModel;
import dev.distillery.common.ml.Models;
import dev.distillery.common.ml.TrainingCheckpoint;
import dev.distillery.common.ml.TrainingLoop;
import dev.distillery.schemas.ArtifactRef;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.DistillationSettings;
import dev.distillery.schemas.ModelMetrics;
import dev.distillery.schemas.Stage;
import java.io.IOException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The training runs of one job (the student, and the baseline it is compared with), sharing the
 * request's plan, its validation split and one progress count. Each run keeps its state under
 * {@code <stateRoot>/<jobId>/<run>} after every epoch, so a restarted trainer resumes it.
 */
final class StudentTraining {
  private static final Logger LOG = LoggerFactory.getLogger(StudentTraining.class);

  private final JobEvents events;
  private final Stage stage;
  private final CompressionRequest request;
  private final Datasets.TrainTest data;
  private final ArtifactStore output;
  private final Path stateDir;
  private final int runs;
  private final int[] trainSamples;
  private final ImageDataset validation;
  private int runsDone;

  /**
   * @param runs how many runs this job trains, for the progress count
   */
  StudentTraining(JobEvents events, Stage stage, CompressionRequest request, Datasets.TrainTest data,
      ArtifactStore store, Path stateRoot, int runs) throws JobFailedException {
    this.events = events;
    this.stage = stage;
    this.request = request;
    this.data = data;
    this.output = store.forOutput(request.getOutputUri());
    this.stateDir = stateRoot.resolve(request.getJobId());
    this.runs = runs;
    DistillationSettings settings = request.getDistillation();
    Datasets.Split split = Datasets.split(data.train(), settings.getValidationSplit(), settings.getSeed());
    this.validation = split.validation().length == 0 ? null : data.train().subset(split.validation());
    this.trainSamples = split.training();
    if (trainSamples.length == 0) {
      throw new JobFailedException("dataset", "no training samples left: " + data.train().size()
          + " selected (dataset.classes, dataset.trainLimit), " + split.validation().length
          + " held out (distillation.validationSplit)");
    }
  }

  /** A trained model's metrics and stored checkpoint. */
  record Trained(ModelMetrics metrics, ArtifactRef checkpoint) {}

  /**
   * Trains {@code model} as run {@code run} (its name in progress and on disk), keeps its best
   * epoch, measures it on the test set and stores it in the model's own format.
   *
   * @param learningRateFactors step-size factors by parameter name
   * @param frozen names of the parameters left untrained
   */
  Trained train(String run, JobModel model, TrainingLoop.BatchLoss loss, Map<String, Float> learningRateFactors,
      Set<String> frozen) throws Exception {
    DistillationSettings settings = request.getDistillation();
    int epochs = settings.getEpochs();
    int stepsBefore = runsDone * epochs;
    TrainingLoop loop = new TrainingLoop(model.model(), data.train(), TrainingLoop.Plan.of(settings), loss)
        .input(model.input())
        .augmentation(settings.getAugmentation())
        .samples(trainSamples)
        .learningRateFactors(learningRateFactors)
        .frozen(frozen)
        .checkpoint(new TrainingCheckpoint(stateDir.resolve(run), fingerprint(run)))
        .onEpoch(e -> {
          Map<String, Double> figures = new HashMap<>(Map.of("loss", e.meanLoss(),
              "samplesPerSecond", e.samplesPerSecond(), "learningRate", e.learningRate()));
          if (!Double.isNaN(e.validationAccuracy())) {
            figures.put("validationAccuracy", e.validationAccuracy());
          }
          if (e.resumedAfter() > 0) {
            figures.put("resumedAfterEpoch", (double) e.resumedAfter());
          }
          events.progress(request.getJobId(), stage, stepsBefore + e.epoch(), (long) runs * epochs,
              run + " epoch " + e.epoch() + "/" + e.epochs() + (e.resumedAfter() > 0 ? " (resumed)" : ""), figures);
        });
    if (validation != null) {
      loop.validation(trained -> Evaluation.accuracy(trained, validation, model.input()));
    }
    TrainingLoop.Outcome outcome;
    try {
      outcome = loop.run();
    } catch (TrainingLoop.NonFiniteLossException e) {
      throw new JobFailedException("distillation.learningRate", run + ": " + e.getMessage(), e);
    }
    runsDone++;
    ArtifactRef checkpoint = model.save(output, request.getJobId(), run);
    ModelMetrics.Builder metrics = ModelMetrics.newBuilder()
        .setArchitecture(model.architecture()).setWidth(model.width())
        .setTestAccuracy(Evaluation.accuracy(model.model(), data.test(), model.input()))
        .setParameters(Models.parameterCount(model.model())).setNonZeroParameters(Models.nonZeroCount(model.model()))
        .setCheckpointBytes(checkpoint.getSizeBytes())
        .setBestEpoch(outcome.bestEpoch());
    if (!Double.isNaN(outcome.validationAccuracy())) {
      metrics.setValidationAccuracy(outcome.validationAccuracy());
    }
    return new Trained(metrics.build(), checkpoint);
  }

  /** The same job id with another request must not continue this one's runs. */
  private String fingerprint(String run) {
    return run + " " + Integer.toHexString(request.toString().hashCode());
  }

  /**
   * Runs the job's {@code runs} and returns the future of the event that hands their result on.
   * The training state is removed once that event is acknowledged, so a redelivery does not resume
   * it. When the job ends otherwise, its stage's {@code JobRunner} decides: removed after a final
   * failure, the last attempt or a cancellation; kept for the next attempt after a retryable error
   * or when another process took the job over.
   */
  CompletableFuture<?> handOn(Callable<CompletableFuture<?>> runs) throws Exception {
    return runs.call().thenRun(this::removeState);
  }

  /** A leftover state is harmless (its fingerprint ties it to this request), so failing to remove it only warns. */
  private void removeState() {
    try {
      TrainingCheckpoint.deleteAll(stateDir);
    } catch (IOException e) {
      LOG.warn("cannot remove the training state of job {}: {}", request.getJobId(), e.toString());
    }
  }
}
