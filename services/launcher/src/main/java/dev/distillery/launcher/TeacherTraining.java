package dev.distillery.launcher;

import ai.djl.Model;
import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.ml.Evaluation;
import dev.distillery.common.ml.ImageDataset;
import dev.distillery.common.ml.Losses;
import dev.distillery.common.ml.Models;
import dev.distillery.common.ml.TrainingLoop;
import dev.distillery.schemas.ArtifactRef;
import dev.distillery.schemas.Augmentation;
import dev.distillery.schemas.DistillationSettings;
import java.nio.file.Path;
import java.util.function.Consumer;

/**
 * Trains a teacher on hard labels: the demo and the tests need one before anything can be
 * compressed. Users bring their own teacher checkpoint instead.
 */
public final class TeacherTraining {
  private TeacherTraining() {}

  /** The trained teacher's checkpoint and test accuracy. */
  public record Teacher(Path checkpoint, double testAccuracy) {}

  public static Teacher train(String architecture, double width, ImageDataset train, ImageDataset test,
      TrainingLoop.Plan plan, ArtifactStore store, String name, Consumer<String> log) throws Exception {
    return train(architecture, width, train, test, plan, 0, Augmentation.NONE, store, name, log);
  }

  /**
   * Trains with the options a request's {@code distillation} settings give a student: the plan,
   * label smoothing and augmentation, which leave a teacher's soft labels less close to one-hot.
   */
  public static Teacher train(String architecture, double width, ImageDataset train, ImageDataset test,
      DistillationSettings settings, ArtifactStore store, String name, Consumer<String> log) throws Exception {
    return train(architecture, width, train, test, TrainingLoop.Plan.of(settings), settings.getLabelSmoothing(),
        settings.getAugmentation(), store, name, log);
  }

  private static Teacher train(String architecture, double width, ImageDataset train, ImageDataset test,
      TrainingLoop.Plan plan, double labelSmoothing, Augmentation augmentation, ArtifactStore store, String name,
      Consumer<String> log) throws Exception {
    try (Model model = Models.create(architecture, width, train.numClasses(), train.imageShape(), plan.seed())) {
      new TrainingLoop(model, train, plan,
          (logits, indices, manager) -> Losses.crossEntropy(logits, train.labels(manager, indices), labelSmoothing))
          .augmentation(augmentation)
          .onEpoch(e -> log.accept(String.format("teacher %s epoch %d/%d: loss %.4f, %.0f samples/s",
              architecture, e.epoch(), e.epochs(), e.meanLoss(), e.samplesPerSecond())))
          .run();
      ArtifactRef ref = Models.save(model, store, "teachers", name);
      return new Teacher(ArtifactStore.localPath(ref.getUri()), Evaluation.accuracy(model, test));
    }
  }
}
