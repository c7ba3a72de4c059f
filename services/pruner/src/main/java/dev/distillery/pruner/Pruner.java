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
import dev.distillery.common.ml.JobModel;
import dev.distillery.common.ml.Models;
import dev.distillery.common.ml.TrainingCheckpoint;
import dev.distillery.common.ml.TrainingLoop;
import dev.distillery.common.ml.Int8Quantization;
import dev.distillery.common.ml.OnnxExport;
import dev.distillery.common.ml.OnnxRuntime;
import dev.distillery.schemas.ArtifactKind;
import dev.distillery.schemas.ArtifactRef;
import dev.distillery.schemas.BudgetStep;
import dev.distillery.schemas.CheckpointReady;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.JobContext;
import dev.distillery.schemas.JobResult;
import dev.distillery.schemas.LayerSparsity;
import dev.distillery.schemas.LearningRateSchedule;
import dev.distillery.schemas.ModelArtifact;
import dev.distillery.schemas.ModelFormat;
import dev.distillery.schemas.ModelMetrics;
import dev.distillery.schemas.PruningMethod;
import dev.distillery.schemas.PruningReport;
import dev.distillery.schemas.PruningSettings;
import dev.distillery.schemas.QuantizationReport;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.kafka.Topics;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/**
 * The last stages: prunes the checkpoint it is handed (by the request's method and schedule),
 * fine-tunes with the masks held, evaluates, stores the pruned checkpoint; exports the final
 * model to ONNX and, with QUANTIZATION, to int8; and publishes the job's result.
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
    boolean pruning = request.getStages().contains(STAGE);
    Map<String, Double> seconds = new HashMap<>(context.getStageSeconds());
    if (!pruning && event.getFormat() == ModelFormat.TORCHSCRIPT) { // nothing to do: QUANTIZATION was refused
      return publish(result.setFinalCheckpoint(event.getCheckpoint()).setFinalFormat(event.getFormat())
          .setArtifacts(List.of(artifact(ArtifactKind.TORCHSCRIPT, event.getCheckpoint(), null, null, null, null))),
          context, seconds);
    }
    Datasets.TrainTest data = Datasets.load(request.getDataset());
    try (JobModel model = load(event, data)) {
      // The stage that produced this checkpoint measured it on the same test set: not again here.
      double before = (context.getStudent() != null ? context.getStudent() : context.getTeacher()).getTestAccuracy();
      Shape image = data.train().imageShape();
      ArtifactStore artifacts = store.forOutput(request.getOutputUri());
      List<ModelArtifact> files = new ArrayList<>();
      if (!pruning) {
        result.setFinalCheckpoint(event.getCheckpoint()).setFinalFormat(event.getFormat());
        files.add(artifact(ArtifactKind.DJL_PARAMETERS, event.getCheckpoint(), DJL, before, null, null));
        return publish(result.setArtifacts(exports(model, request, data, artifacts, jobId, result, files, seconds)),
            context, seconds);
      }
      PruningSettings settings = request.getPruning();
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
        ArtifactRef checkpoint = output.save(artifacts, jobId, "pruned");
        ArtifactRef safetensors = artifacts.write(jobId, "pruned.safetensors", out -> Safetensors.write(output, out));
        ArtifactRef sparse = artifacts.write(jobId, "pruned.dspz", out -> SparseCheckpoint.write(output.model(), out));
        result.setSafetensors(safetensors).setSparseCheckpoint(sparse);
        long weights = layers.stream().mapToLong(PruningMasks.LayerCount::weights).sum();
        long zeros = layers.stream().mapToLong(PruningMasks.LayerCount::zeros).sum();
        double after = Evaluation.accuracy(output.model(), data.test(), output.input());
        InferenceCost.Macs macsAfter = macs(output, image);
        long parameters = Models.parameterCount(output.model());
        double batch1After = InferenceCost.latencyMillis(output, image, 1, 50);
        double batch256After = InferenceCost.latencyMillis(output, image, 256, 20);
        result.setPruning(PruningReport.newBuilder()
            .setAccuracyBefore(before).setAccuracyPruned(pruned.accuracy()).setAccuracyFineTuned(after)
            .setMacsBefore(macsBefore.dense()).setMacsAfter(macsAfter.dense()).setNonZeroMacsAfter(macsAfter.nonZero())
            .setLatencyMsBatch1Before(batch1Before).setLatencyMsBatch1After(batch1After)
            .setLatencyMsBatch256Before(batch256Before).setLatencyMsBatch256After(batch256After)
            .setUnprunedParameters(structured ? 0 : parameters - weights)
            .setMaxAccuracyLoss(settings.getMaxAccuracyLoss())
            .setValidationAccuracyBefore(pruned.validationBefore())
            .setExplored(pruned.explored()).build());
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
        files.add(artifact(output.isTorchScript() ? ArtifactKind.TORCHSCRIPT : ArtifactKind.DJL_PARAMETERS, checkpoint,
            DJL, after, batch1After, batch256After));
        files.add(artifact(ArtifactKind.SAFETENSORS, safetensors, null, null, null, null));
        files.add(artifact(ArtifactKind.SPARSE, sparse, null, null, null, null));
        seconds.put(STAGE.name(), (System.nanoTime() - start) / 1e9);
        return publish(result.setArtifacts(exports(output, request, data, artifacts, jobId, result, files, seconds)),
            context, seconds);
      }
    }
  }

  private static final String DJL = "DJL (libtorch)";
  private static final String ONNX_RUNTIME = "ONNX Runtime";

  private static ModelArtifact artifact(ArtifactKind kind, ArtifactRef file, String runtime, Double accuracy,
      Double batch1, Double batch256) {
    return ModelArtifact.newBuilder().setKind(kind).setFile(file).setRuntime(runtime).setTestAccuracy(accuracy)
        .setLatencyMsBatch1(batch1).setLatencyMsBatch256(batch256).build();
  }

  /**
   * The final model's ONNX form (a built-in architecture's; a TorchScript module's layers are not
   * visible from Java) with its accuracy in ONNX Runtime, and with QUANTIZATION its int8 forms
   * (ONNX QDQ and the int8 sparse encoding), the latency of both ONNX models, and the report.
   * Returns {@code files} with these added.
   */
  private List<ModelArtifact> exports(JobModel output, CompressionRequest request, Datasets.TrainTest data,
      ArtifactStore artifacts, String jobId, JobResult.Builder result, List<ModelArtifact> files,
      Map<String, Double> seconds) throws Exception {
    if (output.isTorchScript()) {
      return files;
    }
    long start = System.nanoTime();
    boolean quantizing = request.getStages().contains(Stage.QUANTIZATION);
    Shape image = data.train().imageShape();
    byte[] floatModel = OnnxExport.floatModel(output.model(), image);
    ArtifactRef onnx = artifacts.write(jobId, "model.onnx", out -> out.write(floatModel));
    if (!quantizing) {
      try (OnnxRuntime runtime = new OnnxRuntime(floatModel, image.getShape(), OnnxRuntime.torchThreads())) {
        files.add(artifact(ArtifactKind.ONNX, onnx, ONNX_RUNTIME, runtime.accuracy(data.test(), output.input()),
            null, null));
      }
      return files;
    }
    int images = request.getQuantization().getCalibrationImages();
    events.progress(jobId, Stage.QUANTIZATION, 0, 3, "calibrating int8 ranges on " + images + " training images",
        Map.of());
    byte[] int8Model = Int8Quantization.quantize(output.model(), data.train(), images,
        request.getDistillation().getSeed());
    ArtifactRef onnxInt8 = artifacts.write(jobId, "model-int8.onnx", out -> out.write(int8Model));
    ArtifactRef sparseInt8 = artifacts.write(jobId, "model-int8.dspz",
        out -> SparseCheckpoint.writeInt8(output.model(), out));
    events.progress(jobId, Stage.QUANTIZATION, 1, 3, "measuring the float and int8 ONNX models", Map.of());
    ModelArtifact floatArtifact = measured(ArtifactKind.ONNX, onnx, floatModel, data, output);
    ModelArtifact int8Artifact = measured(ArtifactKind.ONNX_INT8, onnxInt8, int8Model, data, output);
    double sparseInt8Accuracy = SparseCheckpoint.accuracyOf(output.model(), ArtifactStore.open(sparseInt8), data.test());
    long weightsFloat = 0;
    long weightsInt8 = 0;
    for (var weight : output.prunableWeights()) {
      Shape shape = weight.getValue().getArray().getShape();
      weightsFloat += shape.size() * Float.BYTES;
      weightsInt8 += shape.size() + shape.get(0) * Float.BYTES;
    }
    result.setQuantization(QuantizationReport.newBuilder().setCalibrationImages(images)
        .setAccuracyFloat(floatArtifact.getTestAccuracy()).setAccuracyInt8(int8Artifact.getTestAccuracy())
        .setWeightBytesFloat(weightsFloat).setWeightBytesInt8(weightsInt8).build());
    events.progress(jobId, Stage.QUANTIZATION, 3, 3, String.format("int8 accuracy %.4f (float %.4f)",
        int8Artifact.getTestAccuracy(), floatArtifact.getTestAccuracy()),
        Map.of("accuracyFloat", floatArtifact.getTestAccuracy(), "accuracyInt8", int8Artifact.getTestAccuracy()));
    files.add(floatArtifact);
    files.add(int8Artifact);
    files.add(artifact(ArtifactKind.SPARSE_INT8, sparseInt8, DJL, sparseInt8Accuracy, null, null));
    seconds.put(Stage.QUANTIZATION.name(), (System.nanoTime() - start) / 1e9);
    return files;
  }

  /** An ONNX model's test accuracy and latency at batch 1 and 256 in ONNX Runtime, with libtorch's thread count. */
  private static ModelArtifact measured(ArtifactKind kind, ArtifactRef file, byte[] model, Datasets.TrainTest data,
      JobModel output) throws Exception {
    try (OnnxRuntime runtime = new OnnxRuntime(model, data.train().imageShape().getShape(), OnnxRuntime.torchThreads())) {
      return artifact(kind, file, ONNX_RUNTIME, runtime.accuracy(data.test(), output.input()),
          runtime.latencyMillis(1, 50), runtime.latencyMillis(256, 20));
    }
  }

  /**
   * The published step's masks, the test accuracy right after that step (before its fine-tuning),
   * and, with an accuracy budget, the validation accuracy before pruning and each step tried.
   */
  private record Pruned(PruningMasks masks, double accuracy, Double validationBefore, List<BudgetStep> explored) {}

  /**
   * Prunes in the request's steps (one step is one-shot pruning), each followed by fine-tuning with
   * the masks re-applied after every optimizer step, then fine-tunes once more with an annealed rate
   * if the request asks for it. With an accuracy budget each step is judged on the held-out samples
   * after its fine-tuning; the climb stops at the first step beyond the budget and goes on from the
   * last step within it, or fails the job when there is none.
   */
  private Pruned pruneGradually(JobModel model, Datasets.TrainTest data, CompressionRequest request, double before,
      String jobId) throws Exception {
    PruningSettings settings = request.getPruning();
    FineTuning tuning = FineTuning.of(request, data, model);
    Double budget = settings.getMaxAccuracyLoss();
    Double validationBefore = tuning.judged() ? tuning.validationAccuracy(model) : null;
    List<BudgetStep> explored = new ArrayList<>();
    int steps = settings.getSteps();
    long progressSteps = (long) steps * (1 + settings.getFineTuneEpochs()) + settings.getFinalFineTuneEpochs();
    PruningMasks masks = null;
    PruningMasks stepMasks = null;
    byte[] withinWeights = null;
    double accuracyPruned = Double.NaN;
    double validation = Double.NaN;
    try {
      for (int step = 1; step <= steps; step++) {
        stepMasks = PruningMasks.compute(model.model(), settings, step);
        double sparsity = SparsitySchedule.at(step, settings, settings.getTargetSparsity());
        double stepAccuracyPruned = Evaluation.accuracy(model.model(), data.test(), model.input());
        long progress = (long) (step - 1) * (1 + settings.getFineTuneEpochs()) + 1;
        events.progress(jobId, STAGE, progress, progressSteps,
            "step " + step + "/" + steps + ": pruned to " + sparsity,
            Map.of("accuracyBefore", before, "accuracyPruned", stepAccuracyPruned, "sparsity", sparsity));
        if (settings.getFineTuneEpochs() > 0) {
          fineTune(tuning.loop(model, settings.getFineTuneEpochs(), LearningRateSchedule.CONSTANT), stepMasks, jobId,
              progress, progressSteps, "fine-tune");
        }
        if (budget != null) {
          double accuracy = tuning.validationAccuracy(model);
          double lost = (validationBefore - accuracy) * 100;
          boolean within = lost <= budget;
          explored.add(new BudgetStep(sparsity, accuracy, lost, within));
          events.progress(jobId, STAGE, progress + settings.getFineTuneEpochs(), progressSteps,
              String.format("step %d/%d at %.4f: %.2f points lost on validation, %s the budget of %s", step, steps,
                  sparsity, lost, within ? "within" : "beyond", budget),
              Map.of("sparsity", sparsity, "validationAccuracy", accuracy, "pointsLost", lost,
                  "withinBudget", within ? 1.0 : 0.0));
          if (!within) {
            break;
          }
          withinWeights = step < steps ? TrainingCheckpoint.weights(model.model()) : null;
          validation = accuracy;
        }
        if (masks != null) {
          masks.close();
        }
        masks = stepMasks;
        stepMasks = null;
        accuracyPruned = stepAccuracyPruned;
      }
      if (stepMasks != null) { // the climb stopped at a step beyond the budget
        stepMasks.close();
        stepMasks = null;
        if (masks == null) {
          throw new JobFailedException("pruning.maxAccuracyLoss", String.format("no pruning step stays within %s "
              + "points: the first, to sparsity %.4f, lost %.2f points on the validation split (%.4f -> %.4f); "
              + "allow more loss, fine-tune longer (pruning.fineTuneEpochs) or start lower (pruning.steps, "
              + "pruning.targetSparsity)", budget, explored.get(0).getSparsity(), explored.get(0).getPointsLost(),
              validationBefore, explored.get(0).getValidationAccuracy()));
        }
        TrainingCheckpoint.load(model.model(), withinWeights); // the last step within the budget
      }
      if (settings.getFinalFineTuneEpochs() > 0) {
        TrainingLoop loop = tuning.loop(model, settings.getFinalFineTuneEpochs(), LearningRateSchedule.COSINE);
        byte[] kept = budget == null ? null : TrainingCheckpoint.weights(model.model());
        if (budget != null) {
          loop.validation(trained -> tuning.validationAccuracy(model));
        }
        TrainingLoop.Outcome outcome = fineTune(loop, masks, jobId, progressSteps - settings.getFinalFineTuneEpochs(),
            progressSteps, "final fine-tune");
        if (kept != null && outcome.validationAccuracy() < validation) {
          TrainingCheckpoint.load(model.model(), kept); // the recovery epochs did worse than none
        }
      }
    } catch (Exception | Error e) {
      for (PruningMasks open : new PruningMasks[] {masks, stepMasks}) {
        if (open != null) {
          open.close();
        }
      }
      throw e;
    }
    return new Pruned(masks, accuracyPruned, validationBefore, explored);
  }

  private TrainingLoop.Outcome fineTune(TrainingLoop loop, PruningMasks masks, String jobId, long progressBefore,
      long progressSteps, String phase) throws JobFailedException, InterruptedException, IOException {
    try {
      return loop.afterStep(masks::apply)
          .onEpoch(e -> events.progress(jobId, STAGE, progressBefore + e.epoch(), progressSteps,
              phase + " epoch " + e.epoch() + "/" + e.epochs(), epochFigures(e)))
          .run();
    } catch (TrainingLoop.NonFiniteLossException e) {
      throw new JobFailedException(null, "fine-tuning: " + e.getMessage() + " (pruning.learningRate)", e);
    }
  }

  private static Map<String, Double> epochFigures(TrainingLoop.Epoch e) {
    Map<String, Double> figures = new HashMap<>(Map.of("loss", e.meanLoss(), "samplesPerSecond", e.samplesPerSecond(),
        "learningRate", e.learningRate()));
    if (!Double.isNaN(e.validationAccuracy())) {
      figures.put("validationAccuracy", e.validationAccuracy());
    }
    return figures;
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

  /** {@code seconds}: the wall time of each stage that ran. */
  private CompletableFuture<?> publish(JobResult.Builder result, JobContext context, Map<String, Double> seconds) {
    JobResult done = result.setStageSeconds(seconds)
        .setStageKernels(DjlRuntime.withKernelsOf(context.getStageKernels(), STAGE.name()))
        .setCompletedAtMs(System.currentTimeMillis()).build();
    return events.send(Topics.RESULTS, done.getJobId(), done);
  }
}
