package dev.distillery.pruner;

import ai.djl.ndarray.types.Shape;
import dev.distillery.common.JobFailedException;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.DistillationLoss;
import dev.distillery.common.ml.Evaluation;
import dev.distillery.common.ml.ImageDataset;
import dev.distillery.common.ml.JobModel;
import dev.distillery.common.ml.Losses;
import dev.distillery.common.ml.TrainingLoop;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.DistillationSettings;
import dev.distillery.schemas.LearningRateSchedule;
import dev.distillery.schemas.OptimizerKind;
import dev.distillery.schemas.PruningSettings;
import dev.distillery.schemas.SoftLabelSource;

/**
 * How the pruner fine-tunes one job's model: on which training samples, against which targets
 * (hard labels, or the soft labels of the job's teacher or of the model before pruning, with the
 * trainer's {@link DistillationLoss}), and, with an accuracy budget, on which held-out samples
 * each pruning step is judged.
 */
final class FineTuning {
  private final CompressionRequest request;
  private final ImageDataset train;
  private final int[] samples;
  private final ImageDataset validation;
  private final float[] scaledTargets;
  private final int classes;

  private FineTuning(CompressionRequest request, ImageDataset train, int[] samples, ImageDataset validation,
      float[] scaledTargets, int classes) {
    this.request = request;
    this.train = train;
    this.samples = samples;
    this.validation = validation;
    this.scaledTargets = scaledTargets;
    this.classes = classes;
  }

  /**
   * The fine-tuning of {@code request} for {@code model}, the model as handed to the pruner. Its
   * soft labels, when asked for, are computed here once, before any pruning: the model's own
   * (UNPRUNED) or the teacher's, which is loaded for it.
   */
  static FineTuning of(CompressionRequest request, Datasets.TrainTest data, JobModel model) throws Exception {
    PruningSettings pruning = request.getPruning();
    DistillationSettings distillation = request.getDistillation();
    ImageDataset train = data.train();
    int[] samples = ImageDataset.range(0, train.size());
    ImageDataset validation = null;
    if (pruning.getMaxAccuracyLoss() != null) {
      Datasets.Split split = Datasets.split(train, distillation.getValidationSplit(), distillation.getSeed());
      if (split.validation().length == 0 || split.training().length == 0) {
        throw new JobFailedException("pruning.maxAccuracyLoss", "an accuracy budget is judged on held-out samples: "
            + "distillation.validationSplit " + distillation.getValidationSplit() + " of " + train.size()
            + " training samples leaves " + split.validation().length + " to judge by and " + split.training().length
            + " to fine-tune on");
      }
      samples = split.training();
      validation = train.subset(split.validation());
    }
    float[] targets = switch (pruning.getDistillFrom()) {
      case NONE -> null;
      case UNPRUNED -> scaledLogits(model, train, data.numClasses(), distillation.getTemperature());
      case TEACHER -> {
        try (JobModel teacher = JobModel.load(JobModel.Source.of(request.getTeacher()), data.numClasses(),
            train.imageShape())) {
          yield scaledLogits(teacher, train, data.numClasses(), distillation.getTemperature());
        } catch (JobFailedException e) {
          throw new JobFailedException("pruning.distillFrom", "cannot load the teacher to distil from: "
              + e.getMessage(), e);
        }
      }
      default -> throw new JobFailedException("pruning.distillFrom", "unsupported: " + pruning.getDistillFrom());
    };
    return new FineTuning(request, train, samples, validation, targets, data.numClasses());
  }

  /** Fine-tuning on all of {@code train} against these soft labels (logits / T, [samples, classes]; null: hard labels). */
  static FineTuning withTargets(CompressionRequest request, ImageDataset train, float[] scaledTargets, int classes) {
    return new FineTuning(request, train, ImageDataset.range(0, train.size()), null, scaledTargets, classes);
  }

  /** Logits of every training sample divided by the temperature, as teacher-inference publishes them. */
  static float[] scaledLogits(JobModel model, ImageDataset data, int classes, double temperature) throws Exception {
    float[] scaled = new float[Math.multiplyExact(data.size(), classes)];
    Evaluation.forEachBatch(model.model(), data, model.input(), 0, data.size(), 256, (first, logits, count, outputs) -> {
      if (outputs != classes) {
        throw new JobFailedException("pruning.distillFrom", "the model to distil from has " + outputs
            + " outputs, the dataset " + classes + " classes");
      }
      for (int i = 0; i < count * classes; i++) {
        scaled[first * classes + i] = (float) (logits[i] / temperature);
      }
    });
    return scaled;
  }

  /** The batch loss: cross-entropy on hard labels, or the trainer's distillation loss on the soft labels. */
  TrainingLoop.BatchLoss loss() {
    DistillationSettings settings = request.getDistillation();
    double smoothing = settings.getLabelSmoothing();
    if (scaledTargets == null) {
      return (logits, indices, manager) -> Losses.crossEntropy(logits, train.labels(manager, indices), smoothing);
    }
    DistillationLoss distillation = new DistillationLoss(settings.getTemperature(), settings.getAlpha(), smoothing);
    return (logits, indices, manager) -> distillation.compute(logits,
        manager.create(rows(indices), new Shape(indices.length, classes)), train.labels(manager, indices));
  }

  private float[] rows(int[] indices) {
    float[] rows = new float[indices.length * classes];
    for (int i = 0; i < indices.length; i++) {
      System.arraycopy(scaledTargets, indices[i] * classes, rows, i * classes, classes);
    }
    return rows;
  }

  /** Whether pruning steps are judged on held-out samples (the request has an accuracy budget). */
  boolean judged() {
    return validation != null;
  }

  /** Accuracy of {@code model} on the held-out samples; only when {@link #judged()}. */
  double validationAccuracy(JobModel model) throws Exception {
    return Evaluation.accuracy(model.model(), validation, model.input());
  }

  /**
   * A training loop over the fine-tuning samples: Adam at {@code pruning.learningRate} on the
   * schedule given, the job's batch size, seed, augmentation and loss.
   */
  TrainingLoop loop(JobModel model, int epochs, LearningRateSchedule schedule) {
    DistillationSettings settings = request.getDistillation();
    TrainingLoop.Plan plan = new TrainingLoop.Plan(epochs, settings.getBatchSize(), request.getPruning().getLearningRate(),
        OptimizerKind.ADAM, 0, 0, schedule, 1, 1, settings.getSeed());
    return new TrainingLoop(model.model(), train, plan, loss())
        .input(model.input())
        .augmentation(settings.getAugmentation())
        .samples(samples);
  }
}
