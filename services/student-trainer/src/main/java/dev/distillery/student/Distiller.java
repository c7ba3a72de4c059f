package dev.distillery.student;

import ai.djl.ndarray.types.Shape;
import dev.distillery.common.JobFailedException;
import dev.distillery.common.RequestValidation;
import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.kafka.JobEvents;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.DistillationLoss;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.ImageDataset;
import dev.distillery.common.ml.JobModel;
import dev.distillery.schemas.CheckpointReady;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.DistillationSettings;
import dev.distillery.schemas.JobContext;
import dev.distillery.schemas.ModelFormat;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.StudentSpec;
import dev.distillery.schemas.kafka.Topics;
import dev.distillery.common.ml.Losses;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;

/**
 * Trains a request's student on the teacher's soft labels and the hard labels, and, when asked,
 * the same student on hard labels alone as the baseline the gain is measured against; then
 * publishes the distilled student.
 */
final class Distiller {
  private static final Stage STAGE = Stage.DISTILLATION;

  private final JobEvents events;
  private final ArtifactStore store;
  private final Path stateRoot;
  private final RequestValidation validation;

  Distiller(JobEvents events, ArtifactStore store, Path stateRoot, RequestValidation validation) {
    this.events = events;
    this.store = store;
    this.stateRoot = stateRoot;
    this.validation = validation;
  }

  /** Runs on a worker thread; the future completes when the checkpoint event is acknowledged. */
  CompletableFuture<?> distill(SoftLabels labels) throws Exception {
    long start = System.nanoTime();
    JobContext context = labels.context();
    CompressionRequest request = context.getRequest();
    validation.check(request);
    String jobId = request.getJobId();
    DistillationSettings settings = request.getDistillation();
    Datasets.TrainTest data = Datasets.load(request.getDataset());
    ImageDataset train = data.train();
    if (labels.samples() != train.size() || labels.classes() != data.numClasses()) {
      throw new JobFailedException("dataset.location", "soft labels cover " + labels.samples() + " samples of "
          + labels.classes() + " classes, but the dataset has " + train.size() + " training samples of " + data.numClasses());
    }
    StudentSpec spec = request.getStudent();
    int classes = labels.classes();
    DistillationLoss distillation = new DistillationLoss(settings.getTemperature(), settings.getAlpha(),
        settings.getLabelSmoothing());
    boolean baseline = settings.getHardLabelBaseline();
    StudentTraining training = new StudentTraining(events, STAGE, request, data, store, stateRoot, baseline ? 2 : 1);
    return training.handOn(() -> {
      JobContext.Builder next = JobContext.newBuilder(context);
      if (baseline) {
        try (JobModel student = newStudent(spec, classes, train.imageShape(), settings.getSeed())) {
          next.setBaseline(training.train("baseline", student,
              (logits, indices, manager) -> Losses.crossEntropy(logits, train.labels(manager, indices),
                  settings.getLabelSmoothing()),
              Map.of(), Set.of()).metrics());
        }
      }
      StudentTraining.Trained distilled;
      try (JobModel student = newStudent(spec, classes, train.imageShape(), settings.getSeed())) {
        distilled = training.train("distilled", student,
            (logits, indices, manager) -> distillation.compute(logits,
                manager.create(labels.rows(indices), new Shape(indices.length, classes)), train.labels(manager, indices)),
            Map.of(), Set.of());
      }
      Map<String, Double> seconds = new HashMap<>(context.getStageSeconds());
      seconds.put(STAGE.name(), (System.nanoTime() - start) / 1e9);
      // The planner timed its part; labelling ran on the replicas while batches arrived here.
      seconds.merge(Stage.TEACHER_INFERENCE.name(), labels.arrivalSeconds(), Double::sum);
      next.setStudent(distilled.metrics()).setStageSeconds(seconds)
          .setStageKernels(DjlRuntime.withKernelsOf(context.getStageKernels(), STAGE.name()));
      return events.send(Topics.CHECKPOINTS, jobId, CheckpointReady.newBuilder()
              .setJobId(jobId).setProducedBy(STAGE).setContext(next.build())
              .setFormat(spec.getFormat()).setArchitecture(distilled.metrics().getArchitecture()).setWidth(spec.getWidth())
              .setInput(spec.getInput()).setCheckpoint(distilled.checkpoint()).build());
    });
  }

  /**
   * The student before training: a built-in architecture initialised from the seed, or the user's
   * TorchScript module with the weights it was exported with (the seed still orders the data).
   */
  private static JobModel newStudent(StudentSpec spec, int classes, Shape imageShape, long seed)
      throws JobFailedException {
    return spec.getFormat() == ModelFormat.TORCHSCRIPT
        ? JobModel.load(JobModel.Source.of(spec), classes, imageShape)
        : JobModel.create(spec.getArchitecture(), spec.getWidth(), classes, imageShape, seed);
  }
}
