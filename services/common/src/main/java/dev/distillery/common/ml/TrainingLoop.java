package dev.distillery.common.ml;

import dev.distillery.common.JobControl;
import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Parameter;
import ai.djl.training.DefaultTrainingConfig;
import ai.djl.training.GradientCollector;
import ai.djl.training.Trainer;
import ai.djl.training.loss.Loss;
import ai.djl.training.optimizer.Optimizer;
import ai.djl.training.tracker.ParameterTracker;
import ai.djl.util.Pair;
import dev.distillery.schemas.Augmentation;
import dev.distillery.schemas.DistillationSettings;
import dev.distillery.schemas.LearningRateSchedule;
import dev.distillery.schemas.OptimizerKind;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.Random;
import java.util.concurrent.locks.ReentrantLock;

/**
 * Mini-batch training with a caller-supplied loss, written as a plain loop over
 * {@link GradientCollector} (measured faster and leaner than DJL's EasyTrain here). After each
 * epoch it scores the model on held-out data, keeps the best epoch's weights and, given a
 * {@link TrainingCheckpoint}, saves its state so that a restarted process continues after the
 * last finished epoch.
 */
public final class TrainingLoop {
  /** DJL allows one active GradientCollector per JVM (a static flag), so trainings take turns. */
  static final ReentrantLock ONE_GRADIENT_COLLECTOR_PER_JVM = new ReentrantLock(true);

  /**
   * How long and how to train.
   *
   * @param epochs passes over the data
   * @param batchSize samples per step (the last batch of an epoch may be smaller)
   * @param learningRate the initial step size
   * @param optimizer Adam or SGD
   * @param momentum SGD's momentum
   * @param weightDecay L2 penalty added to the gradients
   * @param schedule how the step size changes over the run
   * @param stepEpochs with STEP: epochs between two decays
   * @param stepGamma with STEP: the factor of each decay
   * @param seed seeds the shuffling, so a job is reproducible
   */
  public record Plan(int epochs, int batchSize, double learningRate, OptimizerKind optimizer, double momentum,
      double weightDecay, LearningRateSchedule schedule, int stepEpochs, double stepGamma, long seed) {

    /** Adam at a constant rate. */
    public static Plan adam(int epochs, int batchSize, double learningRate, long seed) {
      return new Plan(epochs, batchSize, learningRate, OptimizerKind.ADAM, 0, 0, LearningRateSchedule.CONSTANT, 1, 1,
          seed);
    }

    /** The plan a request's training settings describe. */
    public static Plan of(DistillationSettings s) {
      return new Plan(s.getEpochs(), s.getBatchSize(), s.getLearningRate(), s.getOptimizer(), s.getMomentum(),
          s.getWeightDecay(), s.getSchedule(), s.getStepEpochs(), s.getStepGamma(), s.getSeed());
    }

    /** The step size of step {@code step} (from 0) of epoch {@code epoch} (from 1), as torch's schedulers give it. */
    double learningRateAt(int epoch, int step, int stepsPerEpoch) {
      return switch (schedule) {
        case STEP -> learningRate * Math.pow(stepGamma, (epoch - 1) / stepEpochs);
        case COSINE -> {
          double done = (double) ((epoch - 1) * stepsPerEpoch + step) / ((long) epochs * stepsPerEpoch);
          yield learningRate * 0.5 * (1 + Math.cos(Math.PI * done));
        }
        default -> learningRate;
      };
    }
  }

  /** The loss of one batch, given the model's logits for the samples {@code indices}. */
  @FunctionalInterface
  public interface BatchLoss {
    NDArray compute(NDArray logits, int[] indices, NDManager batchManager);
  }

  /**
   * One finished epoch.
   *
   * @param validationAccuracy accuracy on the held-out samples, NaN without validation
   * @param best whether this epoch is the best so far (always true without validation)
   * @param resumedAfter the epoch this run continued after when its process restarted; 0 when it started fresh
   */
  public record Epoch(int epoch, int epochs, double meanLoss, double samplesPerSecond, double learningRate,
      double validationAccuracy, boolean best, int resumedAfter) {}

  /** Hears about each finished epoch, after its state is saved. */
  @FunctionalInterface
  public interface EpochListener {
    void onEpoch(Epoch epoch);
  }

  /** Scores the model on held-out data after each epoch; higher is better. */
  @FunctionalInterface
  public interface Validation {
    double accuracy(Model model) throws Exception;
  }

  /** Runs after every optimizer step, for example to re-apply pruning masks. */
  @FunctionalInterface
  public interface StepHook {
    void afterStep();
  }

  /**
   * What a run ended with. The model holds the best epoch's weights.
   *
   * @param bestEpoch the epoch whose weights the model holds
   * @param validationAccuracy that epoch's validation accuracy (NaN without validation)
   * @param resumedAfter the epoch a restart continued after; 0 when the run started fresh
   */
  public record Outcome(int bestEpoch, double validationAccuracy, int resumedAfter) {}

  /** The loss became NaN or infinite: the weights are broken and must not be published. */
  public static final class NonFiniteLossException extends Exception {
    private static final long serialVersionUID = 1L;

    NonFiniteLossException(int epoch, int step, float loss) {
      super("training diverged: loss was " + loss + " at epoch " + epoch + ", step " + step
          + "; the weights are not published");
    }
  }

  private final Model model;
  private final ImageDataset data;
  private final Plan plan;
  private final BatchLoss loss;
  private int[] samples;
  private StepHook afterStep = () -> {};
  private Validation validation;
  private EpochListener listener = epoch -> {};
  private TrainingCheckpoint checkpoint;
  private Map<String, Float> learningRateFactors = Map.of();
  private Set<String> frozen = Set.of();
  private Preprocessing input = Preprocessing.BUILT_IN;
  private Augmentation augmentation = Augmentation.NONE;

  /** Trains {@code model} in place on all of {@code data}, scoring batches with {@code loss}. */
  public TrainingLoop(Model model, ImageDataset data, Plan plan, BatchLoss loss) {
    this.model = model;
    this.data = data;
    this.plan = plan;
    this.loss = loss;
    this.samples = ImageDataset.range(0, data.size());
  }

  /** Trains on these sample indices only (the rest may be held out for validation). */
  public TrainingLoop samples(int[] indices) {
    this.samples = indices.clone();
    return this;
  }

  public TrainingLoop afterStep(StepHook hook) {
    this.afterStep = hook;
    return this;
  }

  /** Picks the best epoch by this score; without it the last epoch is kept. */
  public TrainingLoop validation(Validation score) {
    this.validation = score;
    return this;
  }

  public TrainingLoop onEpoch(EpochListener epochListener) {
    this.listener = epochListener;
    return this;
  }

  /** Saves the state after each epoch there, and continues from it when it holds a finished epoch. */
  public TrainingLoop checkpoint(TrainingCheckpoint state) {
    this.checkpoint = state;
    return this;
  }

  /** Scales the step size of the parameters with these names (a lower rate for a pretrained backbone). */
  public TrainingLoop learningRateFactors(Map<String, Float> factorsByParameterName) {
    this.learningRateFactors = Map.copyOf(factorsByParameterName);
    return this;
  }

  /** Leaves the parameters with these names as they are (a frozen backbone). */
  public TrainingLoop frozen(Set<String> parameterNames) {
    this.frozen = Set.copyOf(parameterNames);
    return this;
  }

  /** How images become the model's input; the built-in preprocessing unless set. */
  public TrainingLoop input(Preprocessing preprocessing) {
    this.input = preprocessing;
    return this;
  }

  /** How training images are varied ({@link ImageDataset#images(NDManager, int[], ByteBuffer, Preprocessing, Random)}). */
  public TrainingLoop augmentation(Augmentation kind) {
    if (kind != Augmentation.NONE && kind != Augmentation.SHIFT_FLIP) {
      throw new IllegalArgumentException("unsupported augmentation " + kind);
    }
    this.augmentation = kind;
    return this;
  }

  /** Trains, waiting first while another training of this JVM runs. */
  public Outcome run() throws NonFiniteLossException, InterruptedException, IOException {
    ONE_GRADIENT_COLLECTOR_PER_JVM.lockInterruptibly();
    try {
      return runAlone();
    } finally {
      ONE_GRADIENT_COLLECTOR_PER_JVM.unlock();
    }
  }

  private Outcome runAlone() throws NonFiniteLossException, IOException {
    TrainingCheckpoint.State state = checkpoint == null ? TrainingCheckpoint.State.FRESH : checkpoint.restore(model);
    int resumedAfter = state.epoch();
    Random shuffle = new Random(plan.seed());
    int[] order = samples.clone();
    for (int skipped = 1; skipped <= resumedAfter; skipped++) {
      ImageDataset.shuffle(order, shuffle); // the finished epochs' orders, so the next epoch sees its own
    }
    byte[] bestWeights = checkpoint == null ? null : checkpoint.bestWeights();
    int bestEpoch = state.bestEpoch();
    double bestAccuracy = state.bestAccuracy();
    if (resumedAfter < plan.epochs()) {
      int stepsPerEpoch = (order.length + plan.batchSize() - 1) / plan.batchSize();
      // By name, and only now: restoring a TorchScript module's state replaces its parameters.
      Map<String, Float> factorsById = new HashMap<>();
      for (Pair<String, Parameter> p : model.getBlock().getParameters()) {
        if (Models.isStatistic(p.getValue())) {
          continue; // batch norm's running statistics never take gradients: libtorch refuses them
        }
        p.getValue().freeze(frozen.contains(p.getKey()));
        Float factor = learningRateFactors.get(p.getKey());
        if (factor != null) {
          factorsById.put(p.getValue().getId(), factor);
        }
      }
      StepSize stepSize = new StepSize(factorsById);
      DefaultTrainingConfig config = new DefaultTrainingConfig(Loss.softmaxCrossEntropyLoss()) // never called
          .optOptimizer(optimizer(stepSize));
      attachGradients(model);
      ByteBuffer batchBuffer = data.batchBuffer(plan.batchSize());
      try (Trainer trainer = model.newTrainer(config)) {
        for (int epoch = resumedAfter + 1; epoch <= plan.epochs(); epoch++) {
          ImageDataset.shuffle(order, shuffle);
          // Seeded per epoch, so that an epoch resumed after a restart sees the same variations.
          Random variations = augmentation == Augmentation.SHIFT_FLIP ? new Random(plan.seed() * 31 + epoch) : null;
          long start = System.nanoTime();
          double lossSum = 0;
          int steps = 0;
          for (int from = 0; from < order.length; from += plan.batchSize()) {
            JobControl.checkpoint(); // a cancelled job stops here, between batches
            int[] indices = Arrays.copyOfRange(order, from, Math.min(order.length, from + plan.batchSize()));
            stepSize.current = (float) plan.learningRateAt(epoch, steps, stepsPerEpoch);
            lossSum += step(trainer, indices, batchBuffer, variations, epoch, steps);
            afterStep.afterStep();
            steps++;
          }
          double samplesPerSecond = order.length / ((System.nanoTime() - start) / 1e9);
          double accuracy = validate();
          boolean best = validation == null || !(accuracy <= bestAccuracy);
          if (best) {
            bestEpoch = epoch;
            bestAccuracy = accuracy;
            // Without validation the last epoch is the best: the model holds it, no copy needed.
            bestWeights = validation == null ? null : TrainingCheckpoint.weights(model);
          }
          if (checkpoint != null) {
            checkpoint.save(model, new TrainingCheckpoint.State(epoch, bestEpoch, bestAccuracy),
                best ? (bestWeights != null ? bestWeights : TrainingCheckpoint.weights(model)) : null);
          }
          listener.onEpoch(new Epoch(epoch, plan.epochs(), lossSum / steps, samplesPerSecond,
              plan.learningRateAt(epoch, 0, stepsPerEpoch), accuracy, best, resumedAfter));
        }
      }
    }
    if (bestWeights != null && bestEpoch != plan.epochs()) {
      TrainingCheckpoint.load(model, bestWeights);
    }
    return new Outcome(bestEpoch, bestAccuracy, resumedAfter);
  }

  /** One optimizer step; returns the batch's loss. */
  private float step(Trainer trainer, int[] indices, ByteBuffer batchBuffer, Random variations, int epoch, int step)
      throws NonFiniteLossException {
    // The images share batchBuffer; they are closed with batchManager, after the optimizer step.
    try (NDManager batchManager = trainer.getManager().newSubManager()) {
      NDArray images = data.images(batchManager, indices, batchBuffer, input, variations);
      float scalar;
      try (GradientCollector collector = trainer.newGradientCollector()) {
        NDArray logits = trainer.forward(new NDList(images)).singletonOrThrow();
        NDArray value = loss.compute(logits, indices, batchManager);
        scalar = value.getFloat();
        if (!Float.isFinite(scalar)) {
          throw new NonFiniteLossException(epoch, step + 1, scalar);
        }
        DjlRuntime.backward(collector, value);
      }
      trainer.step();
      return scalar;
    }
  }

  private double validate() throws IOException {
    if (validation == null) {
      return Double.NaN;
    }
    try {
      return validation.accuracy(model);
    } catch (Exception e) {
      throw new IOException("validation failed: " + e.getMessage(), e);
    }
  }

  private Optimizer optimizer(StepSize stepSize) {
    float decay = (float) plan.weightDecay();
    return switch (plan.optimizer()) {
      case SGD -> Optimizer.sgd().setLearningRateTracker(stepSize).optMomentum((float) plan.momentum())
          .optWeightDecays(decay).build();
      case ADAM -> Optimizer.adam().optLearningRateTracker(stepSize).optWeightDecays(decay).build();
      default -> throw new IllegalArgumentException("unsupported optimizer " + plan.optimizer());
    };
  }

  /** The schedule's current step size, scaled per parameter where a factor is given. */
  private static final class StepSize implements ParameterTracker {
    private final Map<String, Float> factors;
    volatile float current;

    StepSize(Map<String, Float> factors) {
      this.factors = factors;
    }

    @Override
    public float getNewValue(String parameterId, int numUpdate) {
      return current * factors.getOrDefault(parameterId, 1f);
    }
  }

  /** Weights loaded from a checkpoint come without autograd enabled; trainable ones need it. */
  private static void attachGradients(Model model) {
    for (Pair<String, Parameter> p : model.getBlock().getParameters()) {
      NDArray array = p.getValue().getArray();
      if (p.getValue().requiresGradient() && !array.hasGradient()) {
        array.setRequiresGradient(true);
      }
    }
  }
}
