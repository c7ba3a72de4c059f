package dev.distillery.common;

import dev.distillery.common.config.AllowedRoots;
import dev.distillery.common.ml.Architectures;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.DatasetFormat;
import dev.distillery.schemas.Augmentation;
import dev.distillery.schemas.DistillationSettings;
import dev.distillery.schemas.InputSpec;
import dev.distillery.schemas.LearningRateSchedule;
import dev.distillery.schemas.ModelFormat;
import dev.distillery.schemas.OptimizerKind;
import dev.distillery.schemas.PruningMethod;
import dev.distillery.schemas.PruningSettings;
import dev.distillery.schemas.SoftLabelSource;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.TransferSettings;
import dev.distillery.schemas.kafka.Topics;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;

/**
 * Checks a request before any work starts, naming each field that is wrong and why. Paths must lie
 * under the configured roots of their kind ({@link AllowedRoots}).
 */
public final class RequestValidation {
  /** Bounds that keep one job from holding a worker for days or allocating without limit. */
  private static final int MAX_EPOCHS = 1000;
  private static final double MAX_WIDTH = 16;
  /** Bounds on what a request may list: every record of the job carries its request. */
  private static final int MAX_LIST = 1024;
  private static final int MAX_NAME = 256;
  private static final int MAX_URI = 4096;
  private static final int MAX_INPUT_DIMENSION = 4096;
  private static final long MAX_INPUT_VALUES = 1L << 24;
  /** The largest request, encoded: it travels in every shard and soft-label record of its job. */
  public static final int MAX_REQUEST_BYTES = 64 << 10;

  private static final Pattern JOB_ID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,127}");
  /** Directories of the artifact store beside the jobs' own: the trainer's state, trained teachers, claims. */
  private static final List<String> STORE_DIRECTORIES = List.of("training", "teachers", ".jobs");

  /** One problem with one field of a request. */
  public record Violation(String field, String problem) {
    @Override
    public String toString() {
      return field + ": " + problem;
    }
  }

  private final AllowedRoots roots;

  public RequestValidation(AllowedRoots roots) {
    this.roots = roots;
  }

  /** A new job id, for a request that gives none: {@code job-} and 12 random hex digits. */
  public static String newJobId() {
    return "job-" + java.util.UUID.randomUUID().toString().replace("-", "").substring(0, 12);
  }

  /** Whether {@code jobId} has the form of a job id (it names files and directories). */
  public static boolean validJobId(String jobId) {
    return JOB_ID.matcher(jobId).matches() && !STORE_DIRECTORIES.contains(jobId);
  }

  /**
   * Checks the request a record of an internal topic carries, as each stage does before it
   * loads anything the request names: a forged record gets no further than a valid request could.
   */
  public void check(CompressionRequest request) throws JobFailedException {
    List<Violation> problems = validate(request);
    if (!problems.isEmpty()) {
      throw failure(problems);
    }
  }

  /** The failure of a job whose request has {@code problems}: named by the first, listing all. */
  public static JobFailedException failure(List<Violation> problems) {
    return new JobFailedException(problems.get(0).field(), "invalid request: "
        + problems.stream().map(Object::toString).collect(java.util.stream.Collectors.joining("; ")));
  }

  public List<Violation> validate(CompressionRequest request) {
    List<Violation> problems = new ArrayList<>();
    int size = Topics.REQUESTS.valueSerde().serializer().serialize(Topics.REQUESTS.name(), request).length;
    if (size > MAX_REQUEST_BYTES) {
      problems.add(new Violation("(the request)", "must be at most " + MAX_REQUEST_BYTES + " bytes encoded, was " + size));
    }
    if (!JOB_ID.matcher(request.getJobId()).matches()) {
      problems.add(new Violation("jobId", "must be 1-128 letters, digits, '.', '_' or '-', was '"
          + shortened(request.getJobId()) + "'"));
    } else if (STORE_DIRECTORIES.contains(request.getJobId())) {
      problems.add(new Violation("jobId", "'" + request.getJobId() + "' names a directory of the artifact store; "
          + "choose another"));
    }
    var teacher = request.getTeacher();
    if (teacher.getFormat() == ModelFormat.UNSUPPORTED) {
      problems.add(new Violation("teacher.format", "not supported by this version; supported: BUILT_IN, TORCHSCRIPT"));
    } else if (teacher.getFormat() == ModelFormat.BUILT_IN
        && (teacher.getArchitecture() == null || !Architectures.isKnown(teacher.getArchitecture()))) {
      problems.add(new Violation("teacher.architecture", unknownArchitecture(teacher.getArchitecture())));
    }
    input(problems, "teacher.input", teacher.getInput());
    width(problems, "teacher.width", teacher.getWidth());
    modelFile(problems, "teacher.checkpointUri", teacher.getCheckpointUri());

    var dataset = request.getDataset();
    if (dataset.getFormat() != DatasetFormat.IDX) {
      problems.add(new Violation("dataset.format", "only IDX is supported, was " + dataset.getFormat()));
    }
    datasetDirectory(problems, "dataset.location", dataset.getLocation());
    if (dataset.getTrainLimit() < 0) {
      problems.add(new Violation("dataset.trainLimit", "must be 0 (all) or positive, was " + dataset.getTrainLimit()));
    }
    if (dataset.getTestLimit() < 0) {
      problems.add(new Violation("dataset.testLimit", "must be 0 (all) or positive, was " + dataset.getTestLimit()));
    }
    List<Integer> classes = dataset.getClasses();
    if (classes.size() > 256) {
      problems.add(new Violation("dataset.classes", "must list at most 256 labels, was " + classes.size()));
    } else if (classes.stream().anyMatch(c -> c < 0 || c > 255) || classes.stream().distinct().count() != classes.size()) {
      problems.add(new Violation("dataset.classes", "must be distinct labels within [0, 255], was " + classes));
    }

    student(problems, request);

    DistillationSettings d = request.getDistillation();
    within(problems, "distillation.temperature", d.getTemperature(), 0.01, 100);
    if (!(d.getAlpha() >= 0 && d.getAlpha() <= 1)) {
      problems.add(new Violation("distillation.alpha", "must be within [0, 1], was " + d.getAlpha()));
    }
    between(problems, "distillation.epochs", d.getEpochs(), 1, MAX_EPOCHS);
    between(problems, "distillation.batchSize", d.getBatchSize(), 1, 65_536);
    positive(problems, "distillation.learningRate", d.getLearningRate());
    if (d.getOptimizer() == OptimizerKind.UNSUPPORTED) {
      problems.add(new Violation("distillation.optimizer", "not supported by this version; supported: ADAM, SGD"));
    }
    within(problems, "distillation.momentum", d.getMomentum(), 0, 0.999);
    within(problems, "distillation.weightDecay", d.getWeightDecay(), 0, 1);
    if (d.getSchedule() == LearningRateSchedule.UNSUPPORTED) {
      problems.add(new Violation("distillation.schedule", "not supported by this version; supported: CONSTANT, STEP, COSINE"));
    }
    between(problems, "distillation.stepEpochs", d.getStepEpochs(), 1, MAX_EPOCHS);
    within(problems, "distillation.stepGamma", d.getStepGamma(), 0.001, 1);
    within(problems, "distillation.validationSplit", d.getValidationSplit(), 0, 0.5);
    within(problems, "distillation.labelSmoothing", d.getLabelSmoothing(), 0, 0.99);
    if (d.getAugmentation() == Augmentation.UNSUPPORTED) {
      problems.add(new Violation("distillation.augmentation", "not supported by this version; supported: NONE, SHIFT_FLIP"));
    }

    PruningSettings p = request.getPruning();
    if (p.getMethod() == PruningMethod.UNSUPPORTED) {
      problems.add(new Violation("pruning.method",
          "not supported by this version; supported: L1_UNSTRUCTURED, GLOBAL_UNSTRUCTURED, LN_STRUCTURED"));
    }
    if (!(p.getTargetSparsity() >= 0 && p.getTargetSparsity() <= 1)) {
      problems.add(new Violation("pruning.targetSparsity", "must be within [0, 1], was " + p.getTargetSparsity()));
    }
    between(problems, "pruning.fineTuneEpochs", p.getFineTuneEpochs(), 0, MAX_EPOCHS);
    between(problems, "pruning.finalFineTuneEpochs", p.getFinalFineTuneEpochs(), 0, MAX_EPOCHS);
    positive(problems, "pruning.learningRate", p.getLearningRate());
    between(problems, "pruning.norm", p.getNorm(), 1, 16);
    between(problems, "pruning.steps", p.getSteps(), 1, 100);
    if ((long) p.getSteps() * Math.max(1, p.getFineTuneEpochs()) > MAX_EPOCHS) {
      problems.add(new Violation("pruning.steps", "steps times fineTuneEpochs must be at most " + MAX_EPOCHS));
    }
    if (!(p.getInitialSparsity() >= 0 && p.getInitialSparsity() <= p.getTargetSparsity())) {
      problems.add(new Violation("pruning.initialSparsity", "must be within [0, targetSparsity], was " + p.getInitialSparsity()));
    }
    names(problems, "pruning.layerSparsity", p.getLayerSparsity().keySet());
    names(problems, "pruning.skipLayers", p.getSkipLayers());
    p.getLayerSparsity().entrySet().stream().filter(e -> !(e.getValue() >= 0 && e.getValue() <= 1)).findFirst()
        .ifPresent(e -> problems.add(new Violation("pruning.layerSparsity",
            shortened(e.getKey()) + " must be within [0, 1], was " + e.getValue())));
    if (p.getMethod() == PruningMethod.GLOBAL_UNSTRUCTURED && !p.getLayerSparsity().isEmpty()) {
      problems.add(new Violation("pruning.layerSparsity", "GLOBAL_UNSTRUCTURED has one target for all layers"));
    }
    if (p.getDistillFrom() == SoftLabelSource.UNSUPPORTED) {
      problems.add(new Violation("pruning.distillFrom", "not supported by this version; supported: NONE, TEACHER, UNPRUNED"));
    } else if (p.getDistillFrom() == SoftLabelSource.TEACHER && request.getStages().contains(Stage.TRANSFER)) {
      problems.add(new Violation("pruning.distillFrom", "TEACHER names a TRANSFER job's pretrained model, trained for "
          + "other classes; use UNPRUNED"));
    }
    if (p.getMaxAccuracyLoss() != null) {
      within(problems, "pruning.maxAccuracyLoss", p.getMaxAccuracyLoss(), 0, 100);
      if (!(d.getValidationSplit() > 0)) {
        problems.add(new Violation("pruning.maxAccuracyLoss", "is judged on held-out samples: needs "
            + "distillation.validationSplit above 0, was " + d.getValidationSplit()));
      }
    }
    if (request.getStages().contains(Stage.PRUNING) && p.getMethod() == PruningMethod.LN_STRUCTURED
        && finalFormat(request) == ModelFormat.TORCHSCRIPT) {
      problems.add(new Violation("pruning.method", "LN_STRUCTURED removes channels, which needs a built-in "
          + "architecture: Java cannot rewrite a TorchScript module's graph; use L1_UNSTRUCTURED or GLOBAL_UNSTRUCTURED"));
    }
    if (request.getStages().contains(Stage.QUANTIZATION)) {
      between(problems, "quantization.calibrationImages", request.getQuantization().getCalibrationImages(), 1, 60_000);
      if (finalFormat(request) == ModelFormat.TORCHSCRIPT) {
        String field = request.getStages().contains(Stage.DISTILLATION) ? "student.format" : "teacher.format";
        problems.add(new Violation(field, "QUANTIZATION quantizes built-in architectures only: Java cannot see or "
            + "rewrite a TorchScript module's layers; export it with torch.onnx.export and quantize it with "
            + "onnxruntime.quantization.quantize_static, or drop QUANTIZATION"));
      }
    }

    List<Stage> stages = request.getStages();
    if (stages.size() > Stage.values().length || stages.stream().distinct().count() != stages.size()) {
      problems.add(new Violation("stages", "must list each stage at most once, was "
          + (stages.size() > Stage.values().length ? stages.size() + " stages" : stages)));
    } else if (stages.isEmpty() || stages.contains(Stage.UNSUPPORTED)) {
      problems.add(new Violation("stages", "must list stages among TEACHER_INFERENCE, DISTILLATION, TRANSFER, PRUNING, QUANTIZATION, was " + stages));
    } else if (stages.contains(Stage.TRANSFER)) {
      transfer(problems, request);
    } else if (stages.contains(Stage.DISTILLATION) && !stages.contains(Stage.TEACHER_INFERENCE)) {
      problems.add(new Violation("stages", "DISTILLATION needs TEACHER_INFERENCE"));
    }
    if (request.getOutputUri() != null && request.getOutputUri().length() > MAX_URI) {
      problems.add(new Violation("outputUri", "must be at most " + MAX_URI + " characters"));
    } else if (request.getOutputUri() != null) {
      try {
        Path output = roots.artifact("outputUri", request.getOutputUri());
        if (Files.exists(output) && !Files.isDirectory(output)) {
          problems.add(new Violation("outputUri", "must name a directory, not a file"));
        } else if (roots.models().stream().anyMatch(output::startsWith) || roots.artifacts().stream()
            .anyMatch(root -> output.equals(root) || STORE_DIRECTORIES.stream().anyMatch(name -> output.startsWith(root.resolve(name))))) {
          problems.add(new Violation("outputUri", "must be a directory of its own, not an artifact root, a model root "
              + "or the store's own " + STORE_DIRECTORIES));
        }
      } catch (AllowedRoots.OutsideRootsException e) {
        problems.add(new Violation(e.field(), e.getMessage()));
      }
    }
    return problems;
  }

  /** The student, trained by DISTILLATION only (TRANSFER checks it against its teacher, below). */
  private void student(List<Violation> problems, CompressionRequest request) {
    if (!request.getStages().contains(Stage.DISTILLATION)) {
      return;
    }
    var student = request.getStudent();
    if (student.getFormat() == ModelFormat.UNSUPPORTED) {
      problems.add(new Violation("student.format", "not supported by this version; supported: BUILT_IN, TORCHSCRIPT"));
    } else if (student.getFormat() == ModelFormat.TORCHSCRIPT) {
      if (student.getCheckpointUri() == null) {
        problems.add(new Violation("student.checkpointUri", "a TORCHSCRIPT student needs its module's file: URI"));
      } else {
        modelFile(problems, "student.checkpointUri", student.getCheckpointUri());
      }
      input(problems, "student.input", student.getInput());
    } else if (!Architectures.isKnown(student.getArchitecture())) {
      problems.add(new Violation("student.architecture", unknownArchitecture(student.getArchitecture())));
    }
    width(problems, "student.width", student.getWidth());
  }

  /** The format of the model the pruner gets: the student's after DISTILLATION, else the teacher's. */
  /** The format of the model PRUNING and QUANTIZATION work on: the student's, or the teacher's without DISTILLATION. */
  private static ModelFormat finalFormat(CompressionRequest request) {
    return request.getStages().contains(Stage.DISTILLATION)
        ? request.getStudent().getFormat() : request.getTeacher().getFormat();
  }

  private static void input(List<Violation> problems, String field, InputSpec input) {
    if (!(input.getStd() > 0) || !Double.isFinite(input.getPixelScale()) || !Double.isFinite(input.getMean())) {
      problems.add(new Violation(field, "pixelScale and mean must be finite and std positive"));
    }
    List<Integer> shape = input.getShape();
    if (shape.size() > 3 || shape.stream().anyMatch(d -> d < 1 || d > MAX_INPUT_DIMENSION)
        || shape.stream().mapToLong(Integer::longValue).reduce(1, Math::multiplyExact) > MAX_INPUT_VALUES) {
      problems.add(new Violation(field + ".shape", "must be up to 3 dimensions (channels, height, width) within [1, "
          + MAX_INPUT_DIMENSION + "] and at most " + MAX_INPUT_VALUES + " values, was "
          + (shape.size() > 8 ? shape.size() + " dimensions" : shape)));
    }
  }

  /**
   * TRANSFER fine-tunes the pretrained teacher itself: no soft labels, the same architecture. A
   * TorchScript one names its head's parameters; a built-in one's head is its last layer.
   */
  private static void transfer(List<Violation> problems, CompressionRequest request) {
    if (request.getStages().contains(Stage.TEACHER_INFERENCE) || request.getStages().contains(Stage.DISTILLATION)) {
      problems.add(new Violation("stages", "TRANSFER replaces TEACHER_INFERENCE and DISTILLATION, was " + request.getStages()));
    }
    var teacher = request.getTeacher();
    var student = request.getStudent();
    List<String> head = request.getTransfer().getHeadParameters();
    names(problems, "transfer.headParameters", head);
    if (teacher.getFormat() == ModelFormat.TORCHSCRIPT) {
      if (head.isEmpty()) {
        problems.add(new Violation("transfer.headParameters",
            "a TORCHSCRIPT pretrained model needs its head's parameters named, e.g. [\"fc.weight\", \"fc.bias\"]"));
      }
    } else if (!head.isEmpty()) {
      problems.add(new Violation("transfer.headParameters", "only for a TORCHSCRIPT pretrained model: a built-in "
          + "architecture's head is its last layer"));
    } else if (!student.getArchitecture().equals(teacher.getArchitecture()) || student.getWidth() != teacher.getWidth()) {
      problems.add(new Violation("student.architecture", "TRANSFER keeps the pretrained architecture: student must be "
          + shortened(teacher.getArchitecture()) + " width " + teacher.getWidth() + ", was " + shortened(student.getArchitecture())
          + " width " + student.getWidth()));
    }
    TransferSettings t = request.getTransfer();
    between(problems, "transfer.pretrainedClasses", t.getPretrainedClasses(), 1, 100_000);
    within(problems, "transfer.backboneLearningRateFactor", t.getBackboneLearningRateFactor(), 0, 10);
  }

  private static String unknownArchitecture(String name) {
    return "unknown architecture '" + shortened(name) + "', known: " + Architectures.NAMES;
  }

  /** A list of parameter or layer names: bounded in count and length, none blank. */
  private static void names(List<Violation> problems, String field, java.util.Collection<String> names) {
    if (names.size() > MAX_LIST) {
      problems.add(new Violation(field, "must name at most " + MAX_LIST + " layers, was " + names.size()));
    } else if (names.stream().anyMatch(n -> n.isBlank() || n.length() > MAX_NAME)) {
      problems.add(new Violation(field, "names must be 1-" + MAX_NAME + " characters"));
    }
  }

  /** A value quoted back in an answer, cut so an answer stays small whatever was sent. */
  private static String shortened(String value) {
    return value == null || value.length() <= 64 ? value : value.substring(0, 64) + "...";
  }

  private static void positive(List<Violation> problems, String field, double value) {
    if (!(value > 0) || Double.isInfinite(value)) {
      problems.add(new Violation(field, "must be a positive number, was " + value));
    }
  }

  private static void width(List<Violation> problems, String field, double value) {
    within(problems, field, value, 0.01, MAX_WIDTH);
  }

  private static void within(List<Violation> problems, String field, double value, double min, double max) {
    if (!(value >= min && value <= max)) {
      problems.add(new Violation(field, "must be within [" + min + ", " + max + "], was " + value));
    }
  }

  private static void between(List<Violation> problems, String field, int value, int min, int max) {
    if (value < min || value > max) {
      problems.add(new Violation(field, "must be within [" + min + ", " + max + "], was " + value));
    }
  }

  /** A place under the roots of its kind: a model file, or a dataset directory. */
  private interface Resolver {
    Path resolve(String field, String uri) throws AllowedRoots.OutsideRootsException;
  }

  private void modelFile(List<Violation> problems, String field, String uri) {
    existing(problems, field, uri, roots::model, Files::isRegularFile, "no file there");
  }

  private void datasetDirectory(List<Violation> problems, String field, String uri) {
    existing(problems, field, uri, roots::dataset, Files::isDirectory, "no directory there");
  }

  private static void existing(List<Violation> problems, String field, String uri, Resolver under,
      java.util.function.Predicate<Path> exists, String missing) {
    if (uri.length() > MAX_URI) {
      problems.add(new Violation(field, "must be at most " + MAX_URI + " characters"));
      return;
    }
    try {
      if (!exists.test(under.resolve(field, uri))) {
        problems.add(new Violation(field, missing));
      }
    } catch (AllowedRoots.OutsideRootsException e) {
      problems.add(new Violation(e.field(), e.getMessage()));
    }
  }
}
