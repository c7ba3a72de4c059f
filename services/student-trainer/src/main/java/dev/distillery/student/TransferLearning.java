package dev.distillery.student;

import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import dev.distillery.common.JobFailedException;
import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.kafka.JobEvents;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.ImageDataset;
import dev.distillery.common.ml.JobModel;
import dev.distillery.common.ml.Losses;
import dev.distillery.common.ml.Models;
import dev.distillery.common.ml.TrainingLoop;
import dev.distillery.schemas.CheckpointReady;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.JobContext;
import dev.distillery.schemas.ModelFormat;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.TeacherSpec;
import dev.distillery.schemas.TransferSettings;
import dev.distillery.schemas.kafka.Topics;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Collection;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.concurrent.CompletableFuture;

/**
 * Transfer learning: the request's pretrained model (its {@code teacher}, built-in or TorchScript)
 * gets a new head for the dataset's classes and is fine-tuned, its backbone frozen or at a lower
 * learning rate; when asked, the same architecture is also trained from scratch on the same data
 * as the baseline.
 */
final class TransferLearning {
  private static final Stage STAGE = Stage.TRANSFER;

  private final JobEvents events;
  private final ArtifactStore store;
  private final Path stateRoot;

  TransferLearning(JobEvents events, ArtifactStore store, Path stateRoot) {
    this.events = events;
    this.store = store;
    this.stateRoot = stateRoot;
  }

  /** Runs on a worker thread; the future completes when the checkpoint event is acknowledged. */
  CompletableFuture<?> transfer(CompressionRequest request) throws Exception {
    long start = System.nanoTime();
    String jobId = request.getJobId();
    TeacherSpec pretrained = request.getTeacher();
    TransferSettings settings = request.getTransfer();
    Datasets.TrainTest data = Datasets.load(request.getDataset());
    ImageDataset train = data.train();
    TrainingLoop.BatchLoss crossEntropy = (logits, indices, manager) ->
        Losses.crossEntropy(logits, train.labels(manager, indices), request.getDistillation().getLabelSmoothing());
    long seed = request.getDistillation().getSeed();
    boolean baseline = settings.getScratchBaseline();
    // Loaded and checked (head names and size) before any training.
    JobModel student = loadWithNewHead(request, data.numClasses(), train);
    StudentTraining training;
    try {
      training = new StudentTraining(events, STAGE, request, data, store, stateRoot, baseline ? 2 : 1);
    } catch (JobFailedException | RuntimeException e) {
      student.close();
      throw e;
    }
    return training.handOn(() -> {
      JobContext.Builder context = JobContext.newBuilder().setRequest(request);
      StudentTraining.Trained transferred;
      try (student) {
        if (baseline) {
          try (JobModel scratch = fromScratch(request, data.numClasses(), train, seed)) {
            context.setBaseline(training.train("scratch", scratch, crossEntropy, Map.of(), Set.of()).metrics());
          }
        }
        Set<String> backbone = backbone(student, settings.getHeadParameters());
        transferred = settings.getFreezeBackbone()
            ? training.train("transferred", student, crossEntropy, Map.of(), backbone)
            : training.train("transferred", student, crossEntropy,
                backbone.stream().collect(Collectors.toMap(name -> name,
                    name -> (float) settings.getBackboneLearningRateFactor())), Set.of());
      }
      context.setStudent(transferred.metrics())
          .setStageSeconds(Map.of(STAGE.name(), (System.nanoTime() - start) / 1e9))
          .setStageKernels(DjlRuntime.withKernelsOf(Map.of(), STAGE.name()));
      return events.send(Topics.CHECKPOINTS, jobId, CheckpointReady.newBuilder()
              .setJobId(jobId).setProducedBy(STAGE).setContext(context.build())
              .setFormat(pretrained.getFormat()).setArchitecture(transferred.metrics().getArchitecture())
              .setWidth(pretrained.getWidth()).setInput(pretrained.getInput())
              .setCheckpoint(transferred.checkpoint()).build());
    });
  }

  /**
   * The pretrained model with a new head for {@code classes} classes. A built-in model's backbone
   * is copied into a new model of its architecture; a TorchScript module keeps its graph, and the
   * parameters the request names as its head are drawn anew (its head must already have one
   * output per class: Java cannot add layers to a TorchScript graph).
   */
  private static JobModel loadWithNewHead(CompressionRequest request, int classes, ImageDataset train)
      throws JobFailedException {
    TeacherSpec spec = request.getTeacher();
    long seed = request.getDistillation().getSeed();
    JobModel student = spec.getFormat() == ModelFormat.TORCHSCRIPT
        ? JobModel.load(JobModel.Source.of(spec), classes, train.imageShape())
        : JobModel.create(spec.getArchitecture(), spec.getWidth(), classes, train.imageShape(), seed);
    try {
      if (student.isTorchScript()) {
        student.checkTrainable("teacher.checkpointUri");
        student.reinitialise(checkedHead(student, request.getTransfer().getHeadParameters(), classes)::contains, seed);
      } else {
        try (JobModel source = loadBuiltIn(request, train)) {
          Models.copyBackbone(source.model(), student.model());
        }
      }
      if (request.getStages().contains(Stage.PRUNING)) {
        student.checkLayerNames(request.getPruning()); // the pruner's names, checked before any training
      }
      return student;
    } catch (JobFailedException | RuntimeException e) {
      student.close();
      throw e;
    }
  }

  /** The same architecture, every parameter drawn anew: what the pretrained weights are worth is measured against it. */
  private static JobModel fromScratch(CompressionRequest request, int classes, ImageDataset train, long seed)
      throws JobFailedException {
    TeacherSpec spec = request.getTeacher();
    if (spec.getFormat() != ModelFormat.TORCHSCRIPT) {
      return JobModel.create(spec.getArchitecture(), spec.getWidth(), classes, train.imageShape(), seed);
    }
    JobModel module = JobModel.load(JobModel.Source.of(spec), classes, train.imageShape());
    try {
      module.reinitialise(name -> true, seed);
      return module;
    } catch (RuntimeException e) {
      module.close();
      throw e;
    }
  }

  /** The names a TorchScript head is given by: existing parameters, one of them a [classes, features] matrix. */
  private static Set<String> checkedHead(JobModel module, List<String> requested, int classes)
      throws JobFailedException {
    Set<String> names = new LinkedHashSet<>(requested);
    Map<String, Parameter> parameters = new LinkedHashMap<>();
    module.model().getBlock().getParameters().forEach(p -> parameters.put(p.getKey(), p.getValue()));
    if (names.isEmpty()) {
      throw new JobFailedException("transfer.headParameters", "a TORCHSCRIPT pretrained model needs its head's "
          + "parameters named, e.g. [\"fc.weight\", \"fc.bias\"]; its last parameters are "
          + lastOf(parameters.keySet(), 4));
    }
    for (String name : names) {
      if (!parameters.containsKey(name)) {
        throw new JobFailedException("transfer.headParameters", "the module has no parameter '" + name
            + "'; its last parameters are " + lastOf(parameters.keySet(), 4));
      }
    }
    List<String> matrices = names.stream().filter(n -> parameters.get(n).getArray().getShape().dimension() == 2).toList();
    if (matrices.size() != 1 || parameters.get(matrices.get(0)).getArray().getShape().get(0) != classes) {
      throw new JobFailedException("transfer.headParameters", "the head must hold one [classes, features] matrix with "
          + "one row per class of the dataset (" + classes + "), was " + names.stream()
              .map(n -> n + " " + parameters.get(n).getArray().getShape()).toList()
          + ": export the network with its head sized for the new task");
    }
    if (names.size() == parameters.size()) {
      throw new JobFailedException("transfer.headParameters", "names every parameter: nothing is left to transfer");
    }
    return names;
  }

  private static List<String> lastOf(Collection<String> names, int count) {
    List<String> all = List.copyOf(names);
    return all.subList(Math.max(0, all.size() - count), all.size());
  }

  /** Every parameter of the student outside its head. */
  private static Set<String> backbone(JobModel student, List<String> headNames) {
    Set<String> head = new HashSet<>(headNames);
    if (!student.isTorchScript()) {
      List<Parameter> builtInHead = Models.head(student.model());
      student.model().getBlock().getParameters().forEach(p -> {
        if (builtInHead.contains(p.getValue())) {
          head.add(p.getKey());
        }
      });
    }
    Set<String> backbone = new LinkedHashSet<>();
    student.model().getBlock().getParameters().forEach(p -> {
      if (!head.contains(p.getKey())) {
        backbone.add(p.getKey());
      }
    });
    return backbone;
  }

  private static JobModel loadBuiltIn(CompressionRequest request, ImageDataset train) throws JobFailedException {
    TeacherSpec spec = request.getTeacher();
    try {
      return JobModel.builtIn(Models.load(spec.getArchitecture(), spec.getWidth(),
          request.getTransfer().getPretrainedClasses(), train.imageShape(), ArtifactStore.localPath(spec.getCheckpointUri())),
          spec.getArchitecture(), spec.getWidth());
    } catch (IOException e) {
      throw new JobFailedException("teacher.checkpointUri", "cannot load the pretrained model: " + e.getMessage()
          + " (is transfer.pretrainedClasses right?)", e);
    }
  }
}
