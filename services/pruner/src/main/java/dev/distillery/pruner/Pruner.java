package dev.distillery.pruner;

import ai.djl.ndarray.types.Shape;
import dev.distillery.common.JobFailedException;
import dev.distillery.common.RequestValidation;
import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.config.AllowedRoots;
import dev.distillery.common.kafka.JobEvents;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.Evaluation;
import dev.distillery.common.ml.InferenceCost;
import dev.distillery.common.ml.ImageDataset;
import dev.distillery.common.ml.JobModel;
import dev.distillery.common.ml.Losses;
import dev.distillery.common.ml.Models;
import dev.distillery.common.ml.TrainingLoop;
import dev.distillery.schemas.ArtifactRef;
import dev.distillery.schemas.CheckpointReady;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.JobContext;
import dev.distillery.schemas.JobResult;
import dev.distillery.schemas.LayerSparsity;
import dev.distillery.schemas.LearningRateSchedule;
import dev.distillery.schemas.OptimizerKind;
import dev.distillery.schemas.ModelMetrics;
import dev.distillery.schemas.PruningMethod;
import dev.distillery.schemas.PruningReport;
import dev.distillery.schemas.PruningSettings;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.kafka.Topics;
import java.io.IOException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/**
 * The last stage: prunes the checkpoint it is handed (by the request's method and schedule),
 * fine-tunes with the masks held, evaluates, stores the pruned checkpoint and publishes the job's
 * result.
 */
final class Pruner {
  private static final Stage STAGE = Stage.PRUNING;

  private final JobEvents events;
  private final ArtifactStore store;
  private final AllowedRoots roots;
  private final RequestValidation validation;

  Pruner(JobEvents events, ArtifactStore store, AllowedRoots roots) {
    this.events = events;
    this.store = store;
    this.roots = roots;
    this.validation = new RequestValidation(roots);
  }

  /** Runs on a worker thread; the future completes when the result event is acknowledged. */
  CompletableFuture<?> prune(CheckpointReady event) throws Exception {
    long start = System.nanoTime();
    JobContext context = event.getContext();
    CompressionRequest request = context.getRequest();
    validation.check(request);
    String jobId = event.getJobId();
    JobResult.Builder result = JobResult.newBuilder().setJobId(jobId)
        .setTeacher(context.getTeacher()).setStudent(context.getStudent()).setBaseline(context.getBaseline());
    if (!request.getStages().contains(STAGE)) {
      return publish(result.setFinalCheckpoint(event.getCheckpoint()).setFinalFormat(event.getFormat()), context, start);
    }
    PruningSettings settings = request.getPruning();
    Datasets.TrainTest data = Datasets.load(request.getDataset());
    try (JobModel model = load(event, data)) {
      // The stage that produced this checkpoint measured it on the same test set: not again here.
      double before = (context.getStudent() != null ? context.getStudent() : context.getTeacher()).getTestAccuracy();
      Shape image = data.train().imageShape();
      InferenceCost.Macs macsBefore = macs(model, image);
      double batch1Before = InferenceCost.latencyMillis(model, image, 1, 50);
      double batch256Before = InferenceCost.latencyMillis(model, image, 256, 20);
      Pruned pruned = pruneGradually(model, data, request, before, jobId);
      List<PruningMasks.LayerCount> layers;
      try (PruningMasks masks = pruned.masks()) {
        layers = masks.counts();
      }
      boolean structured = settings.getMethod() == PruningMethod.LN_STRUCTURED;
      try (JobModel smaller = structured ? JobModel.builtIn(ChannelRemoval.removeZeroChannels(model.model(),
          event.getArchitecture(), data.numClasses(), image), event.getArchitecture(), event.getWidth()) : null) {
        JobModel output = structured ? smaller : model;
        ArtifactStore artifacts = store.forOutput(request.getOutputUri());
        ArtifactRef checkpoint = output.save(artifacts, jobId, "pruned");
        result.setSafetensors(artifacts.write(jobId, "pruned.safetensors", out -> Safetensors.write(output, out)))
            .setSparseCheckpoint(artifacts.write(jobId, "pruned.dspz", out -> SparseCheckpoint.write(output.model(), out)));
        long weights = layers.stream().mapToLong(PruningMasks.LayerCount::weights).sum();
        long zeros = layers.stream().mapToLong(PruningMasks.LayerCount::zeros).sum();
        double after = Evaluation.accuracy(output.model(), data.test(), output.input());
        InferenceCost.Macs macsAfter = macs(output, image);
        long parameters = Models.parameterCount(output.model());
        result.setPruning(PruningReport.newBuilder()
            .setAccuracyBefore(before).setAccuracyPruned(pruned.accuracy()).setAccuracyFineTuned(after)
            .setMacsBefore(macsBefore.dense()).setMacsAfter(macsAfter.dense()).setNonZeroMacsAfter(macsAfter.nonZero())
            .setLatencyMsBatch1Before(batch1Before)
            .setLatencyMsBatch1After(InferenceCost.latencyMillis(output, image, 1, 50))
            .setLatencyMsBatch256Before(batch256Before)
            .setLatencyMsBatch256After(InferenceCost.latencyMillis(output, image, 256, 20))
            .setUnprunedParameters(structured ? 0 : parameters - weights).build());
        result.setPruned(ModelMetrics.newBuilder()
                .setArchitecture(event.getArchitecture()).setWidth(event.getWidth())
                .setHiddenUnits(structured ? Models.hiddenUnits(output.model()) : List.of())
                .setTestAccuracy(after)
                .setParameters(parameters).setNonZeroParameters(Models.nonZeroCount(output.model()))
                .setCheckpointBytes(checkpoint.getSizeBytes()).build())
            .setFinalFormat(output.format())
            .setTargetSparsity(settings.getTargetSparsity())
            .setSparsity(weights == 0 ? 0 : (double) zeros / weights)
            .setLayers(layers.stream().map(l -> new LayerSparsity(l.name(), l.weights(), l.zeros())).toList())
            .setFinalCheckpoint(checkpoint);
        return publish(result, context, start);
      }
    }
  }

  /** The last pruning step's masks and the test accuracy right after it, before its fine-tuning. */
  private record Pruned(PruningMasks masks, double accuracy) {}

  /**
   * Prunes in the request's steps (one step is one-shot pruning), each followed by fine-tuning with
   * the masks re-applied after every optimizer step, then fine-tunes once more with an annealed rate
   * if the request asks for it.
   */
  private Pruned pruneGradually(JobModel model, Datasets.TrainTest data, CompressionRequest request, double before,
      String jobId) throws Exception {
    PruningSettings settings = request.getPruning();
    int steps = settings.getSteps();
    long progressSteps = (long) steps * (1 + settings.getFineTuneEpochs()) + settings.getFinalFineTuneEpochs();
    PruningMasks masks = null;
    double accuracyPruned = Double.NaN;
    try {
      for (int step = 1; step <= steps; step++) {
        if (masks != null) {
          masks.close();
        }
        masks = PruningMasks.compute(model.model(), settings, step);
        double sparsity = SparsitySchedule.at(step, settings, settings.getTargetSparsity());
        accuracyPruned = Evaluation.accuracy(model.model(), data.test(), model.input());
        long progress = (long) (step - 1) * (1 + settings.getFineTuneEpochs()) + 1;
        events.progress(jobId, STAGE, progress, progressSteps,
            "step " + step + "/" + steps + ": pruned to " + sparsity,
            Map.of("accuracyBefore", before, "accuracyPruned", accuracyPruned, "sparsity", sparsity));
        if (settings.getFineTuneEpochs() > 0) {
          fineTune(model, masks, data, request, jobId, progress, progressSteps, "fine-tune",
              fineTunePlan(request, settings.getFineTuneEpochs(), LearningRateSchedule.CONSTANT));
        }
      }
      if (settings.getFinalFineTuneEpochs() > 0) {
        fineTune(model, masks, data, request, jobId, progressSteps - settings.getFinalFineTuneEpochs(), progressSteps,
            "final fine-tune", fineTunePlan(request, settings.getFinalFineTuneEpochs(), LearningRateSchedule.COSINE));
      }
    } catch (Exception | Error e) {
      if (masks != null) {
        masks.close();
      }
      throw e;
    }
    return new Pruned(masks, accuracyPruned);
  }

  private static TrainingLoop.Plan fineTunePlan(CompressionRequest request, int epochs, LearningRateSchedule schedule) {
    return new TrainingLoop.Plan(epochs, request.getDistillation().getBatchSize(), request.getPruning().getLearningRate(),
        OptimizerKind.ADAM, 0, 0, schedule, 1, 1, request.getDistillation().getSeed());
  }

  private void fineTune(JobModel model, PruningMasks masks, Datasets.TrainTest data, CompressionRequest request,
      String jobId, long progressBefore, long progressSteps, String phase, TrainingLoop.Plan plan)
      throws JobFailedException, InterruptedException, IOException {
    ImageDataset train = data.train();
    try {
      new TrainingLoop(model.model(), train, plan,
          (logits, indices, manager) -> Losses.crossEntropy(logits, train.labels(manager, indices)))
          .input(model.input())
          .afterStep(masks::apply)
          .onEpoch(e -> events.progress(jobId, STAGE, progressBefore + e.epoch(), progressSteps,
              phase + " epoch " + e.epoch() + "/" + e.epochs(),
              Map.of("loss", e.meanLoss(), "samplesPerSecond", e.samplesPerSecond(), "learningRate", e.learningRate())))
          .run();
    } catch (TrainingLoop.NonFiniteLossException e) {
      throw new JobFailedException(null, "fine-tuning: " + e.getMessage() + " (pruning.learningRate)", e);
    }
  }

  /**
   * The model to prune, from where a stage wrote it or the request named it: a checkpoint event
   * naming anything else (a forged record) is refused before the file is opened.
   */
  private JobModel load(CheckpointReady event, Datasets.TrainTest data) throws JobFailedException {
    Path path;
    try {
      roots.stageInput("checkpoint", event.getCheckpoint().getUri());
      path = ArtifactStore.open(event.getCheckpoint());
    } catch (AllowedRoots.OutsideRootsException e) {
      throw new JobFailedException(null, "the checkpoint to prune is " + e.getMessage(), e);
    } catch (IOException e) {
      throw new JobFailedException(null, "cannot open the checkpoint to prune: " + e.getMessage(), e);
    }
    try {
      return JobModel.load(JobModel.Source.of(event, path.toUri().toString()), data.numClasses(),
          data.train().imageShape());
    } catch (JobFailedException e) {
      throw new JobFailedException(null, "cannot load the checkpoint to prune: " + e.getMessage(), e);
    }
  }

  /** A TorchScript module's layers are not visible from Java: its MACs are reported as 0. */
  private static InferenceCost.Macs macs(JobModel model, Shape image) {
    return model.isTorchScript() ? new InferenceCost.Macs(0, 0) : InferenceCost.macs(model.model(), image);
  }

  private CompletableFuture<?> publish(JobResult.Builder result, JobContext context, long start) {
    Map<String, Double> seconds = new HashMap<>(context.getStageSeconds());
    seconds.put(STAGE.name(), (System.nanoTime() - start) / 1e9);
    JobResult done = result.setStageSeconds(seconds)
        .setStageKernels(DjlRuntime.withKernelsOf(context.getStageKernels(), STAGE.name()))
        .setCompletedAtMs(System.currentTimeMillis()).build();
    return events.send(Topics.RESULTS, done.getJobId(), done);
  }
}
