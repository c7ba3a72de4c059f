package dev.distillery.student;

import ai.djl.Model;
import ai.djl.nn.Parameter;
import dev.distillery.common.JobFailedException;
import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.kafka.JobEvents;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.ImageDataset;
import dev.distillery.common.ml.Losses;
import dev.distillery.common.ml.Models;
import dev.distillery.common.ml.TrainingLoop;
import dev.distillery.schemas.CheckpointReady;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.JobContext;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.TeacherSpec;
import dev.distillery.schemas.TransferSettings;
import dev.distillery.schemas.kafka.Topics;
import java.io.IOException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/**
 * Transfer learning: the request's pretrained model (its {@code teacher}) gets a new head for the
 * dataset's classes and is fine-tuned, its backbone frozen or at a lower learning rate; when
 * asked, the same architecture is also trained from scratch on the same data as the baseline.
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
    String architecture = pretrained.getArchitecture();
    double width = pretrained.getWidth();
    Datasets.TrainTest data = Datasets.load(request.getDataset());
    ImageDataset train = data.train();
    TrainingLoop.BatchLoss crossEntropy = (logits, indices, manager) ->
        Losses.crossEntropy(logits, train.labels(manager, indices));
    long seed = request.getDistillation().getSeed();
    boolean baseline = settings.getScratchBaseline();
    StudentTraining training = new StudentTraining(events, STAGE, request, data, store, stateRoot, baseline ? 2 : 1);
    return training.handOn(() -> {
      JobContext.Builder context = JobContext.newBuilder().setRequest(request);
      if (baseline) {
        try (Model scratch = Models.create(architecture, width, data.numClasses(), train.imageShape(), seed)) {
          context.setBaseline(training.train("scratch", scratch, architecture, width, crossEntropy, Map.of()).metrics());
        }
      }
      StudentTraining.Trained transferred;
      try (Model student = Models.create(architecture, width, data.numClasses(), train.imageShape(), seed)) {
        try (Model source = loadPretrained(request, train)) {
          Models.copyBackbone(source, student);
        }
        transferred = training.train("transferred", student, architecture, width, crossEntropy,
            backboneRates(student, settings));
      }
      context.setStudent(transferred.metrics())
          .setStageSeconds(Map.of(STAGE.name(), (System.nanoTime() - start) / 1e9))
          .setStageKernels(DjlRuntime.withKernelsOf(Map.of(), STAGE.name()));
      return events.send(Topics.CHECKPOINTS, jobId, CheckpointReady.newBuilder()
              .setJobId(jobId).setProducedBy(STAGE).setContext(context.build())
              .setArchitecture(architecture).setWidth(width).setCheckpoint(transferred.checkpoint()).build());
    });
  }

  /** A frozen backbone takes no gradients; otherwise it learns at the request's fraction of the rate. */
  private static Map<String, Float> backboneRates(Model student, TransferSettings settings) {
    List<Parameter> head = Models.head(student);
    Map<String, Float> factors = new HashMap<>();
    student.getBlock().getParameters().forEach(p -> {
      if (!head.contains(p.getValue())) {
        if (settings.getFreezeBackbone()) {
          p.getValue().freeze(true);
        } else {
          factors.put(p.getValue().getId(), (float) settings.getBackboneLearningRateFactor());
        }
      }
    });
    return factors;
  }

  private static Model loadPretrained(CompressionRequest request, ImageDataset train) throws JobFailedException {
    TeacherSpec spec = request.getTeacher();
    try {
      return Models.load(spec.getArchitecture(), spec.getWidth(), request.getTransfer().getPretrainedClasses(),
          train.imageShape(), ArtifactStore.localPath(spec.getCheckpointUri()));
    } catch (IOException e) {
      throw new JobFailedException("teacher.checkpointUri", "cannot load the pretrained model: " + e.getMessage()
          + " (is transfer.pretrainedClasses right?)", e);
    }
  }
}
