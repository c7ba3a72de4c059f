package dev.distillery.bench;

import ai.djl.Model;
import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.ImageDataset;
import dev.distillery.common.ml.Models;
import dev.distillery.common.ml.TrainingLoop;
import dev.distillery.launcher.TeacherTraining;
import dev.distillery.schemas.DatasetSpec;
import java.nio.file.Path;

/**
 * The load benchmark's teacher, made in a JVM of its own so that the harness (broker and clients)
 * loads no libtorch and its memory is the broker's: a {@code convnet}, untrained unless epochs are
 * asked for (the pipeline's speed does not depend on the weights' values). Prints the checkpoint's
 * path on the last line. Arguments: dataset directory, train limit (0 = all), artifact directory,
 * epochs (0 = untrained), libtorch threads.
 */
public final class LoadTeacher {
  private LoadTeacher() {}

  public static void main(String[] args) throws Exception {
    Path dataset = Path.of(args[0]);
    int trainLimit = Integer.parseInt(args[1]);
    ArtifactStore store = new ArtifactStore(Path.of(args[2]));
    int epochs = Integer.parseInt(args[3]);
    DjlRuntime.start(Integer.parseInt(args[4]));
    Path checkpoint;
    if (epochs == 0) {
      ImageDataset train = Datasets.read(dataset, "train");
      try (Model model = Models.create("convnet", 1.0, train.numClasses(), train.imageShape(), 7)) {
        checkpoint = ArtifactStore.localPath(Models.save(model, store, "teachers", "convnet-untrained.params").getUri());
      }
    } else {
      Datasets.TrainTest sets = Datasets.load(
          DatasetSpec.newBuilder().setLocation(dataset.toString()).setTrainLimit(trainLimit).build());
      TeacherTraining.Teacher teacher = TeacherTraining.train("convnet", 1.0, sets.train(), sets.test(),
          TrainingLoop.Plan.adam(epochs, 64, 0.001, 7), store, "convnet-" + epochs + "-epochs.params",
          System.out::println);
      System.out.printf("teacher test accuracy %.4f%n", teacher.testAccuracy());
      checkpoint = teacher.checkpoint();
    }
    System.out.println(checkpoint);
  }
}
