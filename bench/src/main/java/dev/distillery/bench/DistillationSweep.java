package dev.distillery.bench;

import ai.djl.Model;
import ai.djl.ndarray.types.Shape;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.DistillationLoss;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.Evaluation;
import dev.distillery.common.ml.ImageDataset;
import dev.distillery.common.ml.Losses;
import dev.distillery.common.ml.Models;
import dev.distillery.common.ml.Preprocessing;
import dev.distillery.common.ml.TrainingLoop;
import dev.distillery.schemas.DatasetSpec;
import dev.distillery.schemas.LearningRateSchedule;
import dev.distillery.schemas.OptimizerKind;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;

/**
 * Chooses distillation settings by measurement, without Kafka: a cached teacher's soft labels on
 * the first {@code --train-limit} training images, then the same student trained on hard labels
 * and distilled at each {@code T:alpha} of {@code --configs}, for each of {@code --seeds}, with the
 * trainer's split, loss and best-epoch choice. Test accuracy is on all 10,000 test images.
 *
 * <p>{@code bench/run.sh sweep --teacher var/demo/artifacts/teachers/convnet-...params
 * [--teacher-arch convnet] [--student lenet5] [--train-limit 15000] [--epochs 10] [--lr 0.002]
 * [--configs 4:0.9,2:0.5] [--seeds 42,43,44]}
 */
public final class DistillationSweep {
  private DistillationSweep() {}

  public static void main(String[] args) throws Exception {
    Map<String, String> o = new TreeMap<>();
    for (int i = 0; i + 1 < args.length; i += 2) {
      o.put(args[i].replaceFirst("^--", ""), args[i + 1]);
    }
    DjlRuntime.start(2);
    String dataset = o.getOrDefault("dataset", "/usr/share/datasets/fashion-mnist");
    Datasets.TrainTest data = Datasets.load(DatasetSpec.newBuilder().setLocation(dataset)
        .setTrainLimit(Integer.parseInt(o.getOrDefault("train-limit", "15000"))).build());
    ImageDataset train = data.train();
    Shape image = train.imageShape();
    int classes = data.numClasses();
    float[] logits = new float[train.size() * classes];
    try (Model teacher = Models.load(o.getOrDefault("teacher-arch", "convnet"), 1.0, classes, image,
        Path.of(o.get("teacher")))) {
      Evaluation.forEachBatch(teacher, train, Preprocessing.BUILT_IN, 0, train.size(), 256,
          (first, batch, count, c) -> System.arraycopy(batch, 0, logits, first * c, count * c));
      StudentTrainingBench.say("teacher: test %.4f", Evaluation.accuracy(teacher, data.test()));
    }
    String student = o.getOrDefault("student", "lenet5");
    int epochs = Integer.parseInt(o.getOrDefault("epochs", "10"));
    double lr = Double.parseDouble(o.getOrDefault("lr", "0.002"));
    for (String seedText : o.getOrDefault("seeds", "42").split(",")) {
      long seed = Long.parseLong(seedText);
      Datasets.Split split = Datasets.split(train, 0.1, seed);
      ImageDataset validation = train.subset(split.validation());
      for (String config : ("hard," + o.getOrDefault("configs", "4:0.9")).split(",")) {
        TrainingLoop.BatchLoss loss;
        if (config.equals("hard")) {
          loss = (out, indices, manager) -> Losses.crossEntropy(out, train.labels(manager, indices));
        } else {
          double temperature = Double.parseDouble(config.split(":")[0]);
          DistillationLoss distillation = new DistillationLoss(temperature, Double.parseDouble(config.split(":")[1]), 0);
          loss = (out, indices, manager) -> {
            float[] rows = new float[indices.length * classes];
            for (int i = 0; i < indices.length; i++) {
              for (int c = 0; c < classes; c++) {
                rows[i * classes + c] = (float) (logits[indices[i] * classes + c] / temperature);
              }
            }
            return distillation.compute(out, manager.create(rows, new Shape(indices.length, classes)),
                train.labels(manager, indices));
          };
        }
        try (Model model = Models.create(student, 1.0, classes, image, seed)) {
          TrainingLoop.Outcome outcome = new TrainingLoop(model, train, new TrainingLoop.Plan(epochs, 64, lr,
              OptimizerKind.ADAM, 0, 0, LearningRateSchedule.COSINE, 1, 1, seed), loss)
              .samples(split.training())
              .validation(trained -> Evaluation.accuracy(trained, validation))
              .run();
          StudentTrainingBench.say("%s seed %d %s: best epoch %d, validation %.4f, test %.4f", student, seed, config,
              outcome.bestEpoch(), outcome.validationAccuracy(), Evaluation.accuracy(model, data.test()));
        }
      }
    }
  }
}
