package dev.distillery.common.ml;

import ai.djl.MalformedModelException;
import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.pytorch.engine.PtSymbolBlock;
import ai.djl.pytorch.jni.JniUtils;
import ai.djl.training.ParameterStore;
import ai.djl.util.Pair;
import dev.distillery.common.JobFailedException;
import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.schemas.ArtifactRef;
import dev.distillery.schemas.CheckpointReady;
import dev.distillery.schemas.InputSpec;
import dev.distillery.schemas.ModelFormat;
import dev.distillery.schemas.PruningMethod;
import dev.distillery.schemas.PruningSettings;
import dev.distillery.schemas.StudentSpec;
import dev.distillery.schemas.TeacherSpec;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.function.Predicate;

/**
 * The model a stage works on, of either kind a request can name: a built-in architecture (DJL
 * blocks, stored as Distillery's parameter file) or the user's own TorchScript module (its own
 * graph and parameter names, trained in place, stored as TorchScript again, which {@code
 * torch.jit.load} opens). Every stage loads, trains, prunes, measures and stores models through this
 * one type; what differs between the kinds is decided here.
 */
public final class JobModel implements AutoCloseable {
  /** What results call a TorchScript module whose request gives it no name of its own. */
  public static final String TORCHSCRIPT = "torchscript";

  private final Model model;
  private final ModelFormat format;
  private final String architecture;
  private final double width;
  private final Preprocessing input;

  private JobModel(Model model, ModelFormat format, String architecture, double width, Preprocessing input) {
    this.model = model;
    this.format = format;
    this.architecture = architecture;
    this.width = width;
    this.input = input;
  }

  /**
   * Where a request or an event says a model is, and what it is.
   *
   * @param field the request field that names it, for error messages
   * @param uri its file (null for a new built-in model)
   */
  public record Source(String field, ModelFormat format, String architecture, double width, String uri,
      InputSpec input) {
    public static Source of(TeacherSpec spec) {
      return new Source("teacher", spec.getFormat(), label(spec.getFormat(), spec.getArchitecture()), spec.getWidth(),
          spec.getCheckpointUri(), spec.getInput());
    }

    public static Source of(StudentSpec spec) {
      return new Source("student", spec.getFormat(), label(spec.getFormat(), spec.getArchitecture()), spec.getWidth(),
          spec.getCheckpointUri(), spec.getInput());
    }

    private static String label(ModelFormat format, String architecture) {
      return format == ModelFormat.TORCHSCRIPT && (architecture == null || architecture.isBlank())
          ? TORCHSCRIPT : architecture;
    }

    /** The checkpoint a stage handed on; {@code uri} is its local file. */
    public static Source of(CheckpointReady event, String uri) {
      return new Source("checkpoint", event.getFormat(), event.getArchitecture(), event.getWidth(), uri,
          event.getInput());
    }

    public boolean isTorchScript() {
      return format == ModelFormat.TORCHSCRIPT;
    }
  }

  /** A new built-in model with weights initialised from {@code seed} (see {@link Models#create}). */
  public static JobModel create(String architecture, double width, int classes, Shape imageShape, long seed) {
    return builtIn(Models.create(architecture, width, classes, imageShape, seed), architecture, width);
  }

  /** Wraps a built-in model. */
  public static JobModel builtIn(Model model, String architecture, double width) {
    return new JobModel(model, ModelFormat.BUILT_IN, architecture, width, Preprocessing.BUILT_IN);
  }

  /**
   * Loads the model {@code source} names, for a task with {@code classes} classes on images of
   * {@code imageShape}. A TorchScript module is loaded with trainable parameters and checked before
   * any work: it must take the input its {@code InputSpec} describes and give one logit per class.
   */
  public static JobModel load(Source source, int classes, Shape imageShape) throws JobFailedException {
    Path path = ArtifactStore.localPath(source.uri());
    if (!source.isTorchScript()) {
      try {
        return builtIn(Models.load(source.architecture(), source.width(), classes, imageShape, path),
            source.architecture(), source.width());
      } catch (IOException e) {
        throw new JobFailedException(source.field() + ".checkpointUri", e.getMessage(), e);
      }
    }
    Preprocessing input = Preprocessing.of(source.input());
    long values = Arrays.stream(input.shape()).reduce(1, Math::multiplyExact);
    if (input.shape().length > 0 && values != imageShape.size()) {
      throw new JobFailedException(source.field() + ".input.shape", "shape " + source.input().getShape() + " holds "
          + values + " values, the dataset's images have " + imageShape.size());
    }
    Model model = Model.newInstance(source.field(), "PyTorch");
    try {
      // Without trainParam DJL loads the parameters frozen, and training them throws (FINDINGS).
      model.load(path, null, Map.of("trainParam", "true"));
    } catch (IOException | MalformedModelException | RuntimeException e) {
      model.close();
      throw new JobFailedException(source.field() + ".checkpointUri",
          "cannot load TorchScript module " + path + ": " + e.getMessage(), e);
    }
    JobModel loaded = new JobModel(model, ModelFormat.TORCHSCRIPT, source.architecture(), source.width(), input);
    try {
      loaded.checkOutputs(classes, imageShape, source.field());
    } catch (JobFailedException | RuntimeException e) {
      loaded.close();
      throw e;
    }
    return loaded;
  }

  /** One forward pass of a blank image: the module must accept the input and give [1, classes] logits. */
  private void checkOutputs(int classes, Shape imageShape, String field) throws JobFailedException {
    Shape output;
    boolean gradMode = DjlRuntime.inferenceMode();
    try (NDManager scope = model.getNDManager().newSubManager()) {
      NDArray blank = scope.zeros(inputShape(1, imageShape));
      output = model.getBlock().forward(new ParameterStore(scope, false), new NDList(blank), false)
          .singletonOrThrow().getShape();
    } catch (RuntimeException e) {
      throw new JobFailedException(field + ".input.shape", "the TorchScript module does not take input "
          + inputShape(1, imageShape) + ": " + firstLine(e.getMessage()), e);
    } finally {
      DjlRuntime.restoreGradMode(gradMode);
    }
    if (!output.equals(new Shape(1, classes))) {
      throw new JobFailedException(field + ".checkpointUri", "the TorchScript module gives outputs " + output
          + " for one image; the dataset has " + classes + " classes, so it must give (1, " + classes + ")");
    }
  }

  /**
   * Checks that a stage that trains or prunes the model has weights to work on (a module exported
   * with {@code torch.jit.freeze} has its weights as constants, fine for a teacher only).
   *
   * @param field the request field that named the model
   */
  public void checkTrainable(String field) throws JobFailedException {
    if (prunableWeights().isEmpty()) {
      throw new JobFailedException(field, "the model has no weight tensors to train or prune (parameters named "
          + "*.weight of two or more dimensions); was it exported with torch.jit.freeze?");
    }
  }

  private static String firstLine(String message) {
    return message == null ? "" : message.lines().findFirst().orElse("");
  }

  public Model model() {
    return model;
  }

  public ModelFormat format() {
    return format;
  }

  public boolean isTorchScript() {
    return format == ModelFormat.TORCHSCRIPT;
  }

  /** The built-in architecture's name, or the request's label of a TorchScript module. */
  public String architecture() {
    return architecture;
  }

  public double width() {
    return width;
  }

  /** How dataset images become this model's input. */
  public Preprocessing input() {
    return input;
  }

  /** The shape of a batch of {@code batch} inputs. */
  public Shape inputShape(int batch, Shape imageShape) {
    return input.batchShape(batch, imageShape);
  }

  /**
   * The weight tensors pruning acts on: convolution kernels and dense matrices (weights of two or
   * more dimensions; a TorchScript module's are found by the names {@code *.weight}), by name.
   */
  public List<Pair<String, Parameter>> prunableWeights() {
    return Models.prunableWeights(model);
  }

  /**
   * Checks that the layers {@code settings} name (per-layer targets, skipped layers) are prunable
   * weights of this model, whose names the failure lists.
   */
  public void checkLayerNames(PruningSettings settings) throws JobFailedException {
    checkLayerNames(prunableWeights(), settings);
  }

  /** {@link #checkLayerNames(PruningSettings)} against these prunable weights. */
  public static void checkLayerNames(List<Pair<String, Parameter>> prunable, PruningSettings settings)
      throws JobFailedException {
    Set<String> names = new LinkedHashSet<>();
    prunable.forEach(p -> names.add(p.getKey()));
    for (String name : settings.getLayerSparsity().keySet()) {
      if (!names.contains(name)) {
        throw new JobFailedException("pruning.layerSparsity", "no prunable layer '" + name + "'; layers: " + names);
      }
      if (settings.getMethod() == PruningMethod.LN_STRUCTURED && name.equals(prunable.get(prunable.size() - 1).getKey())) {
        throw new JobFailedException("pruning.layerSparsity",
            "the head '" + name + "' cannot be pruned structurally: its output channels are the classes");
      }
    }
    for (String name : settings.getSkipLayers()) {
      if (!names.contains(name)) {
        throw new JobFailedException("pruning.skipLayers", "no prunable layer '" + name + "'; layers: " + names);
      }
    }
  }

  /**
   * Draws the parameters whose names {@code chosen} accepts anew, as torch's layers initialise
   * theirs: a weight of two or more dimensions (and the bias beside it, {@code x.bias} for {@code
   * x.weight}) uniform in ±1/sqrt(fan-in), a one-dimensional weight (a batch-norm scale) 1, any
   * other bias 0. Seeded by {@code seed} and each name, so a job is reproducible.
   */
  public void reinitialise(Predicate<String> chosen, long seed) {
    Map<String, Parameter> parameters = new LinkedHashMap<>();
    model.getBlock().getParameters().forEach(p -> parameters.put(p.getKey(), p.getValue()));
    boolean gradMode = DjlRuntime.inferenceMode();
    try (NDManager scope = model.getNDManager().newSubManager()) {
      for (Map.Entry<String, Parameter> p : parameters.entrySet()) {
        if (!chosen.test(p.getKey())) {
          continue;
        }
        NDArray array = p.getValue().getArray();
        Parameter weight = p.getKey().endsWith("bias")
            ? parameters.get(p.getKey().substring(0, p.getKey().length() - "bias".length()) + "weight") : p.getValue();
        float[] values = new float[Math.toIntExact(array.size())];
        if (weight != null && weight.getArray().getShape().dimension() >= 2) {
          Shape shape = weight.getArray().getShape();
          double bound = 1 / Math.sqrt((double) shape.size() / shape.get(0));
          Random random = new Random(seed * 31 + p.getKey().hashCode());
          for (int i = 0; i < values.length; i++) {
            values[i] = (float) ((2 * random.nextDouble() - 1) * bound);
          }
        } else if (!p.getKey().endsWith("bias")) {
          Arrays.fill(values, 1f);
        }
        scope.create(values, array.getShape()).copyTo(array);
      }
    } finally {
      DjlRuntime.restoreGradMode(gradMode);
    }
  }

  /**
   * Stores the model as {@code <baseName>.params} (built-in) or {@code <baseName>.pt} (TorchScript,
   * with the trained parameters and batch-norm statistics).
   */
  public ArtifactRef save(ArtifactStore store, String jobId, String baseName) throws IOException {
    if (!isTorchScript()) {
      return Models.save(model, store, jobId, baseName + ".params");
    }
    return store.write(jobId, baseName + ".pt", this::writeTorchScript);
  }

  /** The module as a TorchScript archive, as {@code torch.jit.save} writes it. */
  public void writeTorchScript(OutputStream out) {
    // false: no length prefix, which DJL's own saveParameters adds and torch.jit.load refuses.
    JniUtils.writeModule((PtSymbolBlock) model.getBlock(), out, false);
  }

  @Override
  public void close() {
    model.close();
  }
}
