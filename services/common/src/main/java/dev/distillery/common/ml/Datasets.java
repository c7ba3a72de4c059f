package dev.distillery.common.ml;

import dev.distillery.common.JobFailedException;
import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.schemas.DatasetSpec;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;

/** Loads a request's dataset: IDX files in one directory, named as MNIST names them. */
public final class Datasets {

  /**
   * A training set and a test set of the same kind.
   *
   * @param numClasses the classes a model for this data has: the classes chosen, or all classes
   *     in either set (a limited training set may lack the last ones)
   */
  public record TrainTest(ImageDataset train, ImageDataset test, int numClasses) {}

  /**
   * The training set's samples split in two by a seeded shuffle: {@code training} to train on,
   * {@code validation} held out to choose by (an epoch, a sparsity). The trainer and the pruner
   * split alike, so a student's validation samples stay unseen by its pruning.
   */
  public record Split(int[] training, int[] validation) {}

  /** Holds out {@code fraction} of {@code train}'s samples, chosen by {@code seed}. */
  public static Split split(ImageDataset train, double fraction, long seed) {
    int[] shuffled = ImageDataset.range(0, train.size());
    ImageDataset.shuffle(shuffled, new Random(seed));
    int held = (int) Math.round(fraction * shuffled.length);
    return new Split(Arrays.copyOfRange(shuffled, held, shuffled.length), Arrays.copyOfRange(shuffled, 0, held));
  }

  private Datasets() {}

  /**
   * The train and test sets of {@code spec}. A job with nothing to do fails at once, naming the
   * field: {@code dataset.location} when its files cannot be read or hold no images (of the classes
   * chosen), {@code dataset.classes} when a class it chooses has no training images.
   */
  public static TrainTest load(DatasetSpec spec) throws IOException, JobFailedException {
    Path dir = ArtifactStore.localPath(spec.getLocation());
    ImageDataset train;
    ImageDataset test;
    try {
      train = read(dir, "train");
      test = read(dir, "t10k");
    } catch (IOException e) {
      throw new JobFailedException("dataset.location", e.getMessage(), e);
    }
    int numClasses = Math.max(train.numClasses(), test.numClasses());
    if (!spec.getClasses().isEmpty()) {
      int[] classes = spec.getClasses().stream().mapToInt(Integer::intValue).toArray();
      int[] present = train.classCounts();
      for (int label : classes) {
        if (label >= present.length || present[label] == 0) {
          throw new JobFailedException("dataset.classes", "label " + label + " has no training images; the "
              + "dataset's labels are 0-" + (present.length - 1));
        }
      }
      train = train.onlyClasses(classes);
      test = test.onlyClasses(classes);
      numClasses = classes.length;
    }
    if (train.size() == 0 || test.size() == 0) {
      throw new JobFailedException("dataset.location", "holds " + train.size() + " training and " + test.size()
          + " test images" + (spec.getClasses().isEmpty() ? "" : " of the classes chosen") + ": nothing to train or test on");
    }
    return new TrainTest(train.limit(spec.getTrainLimit()), test.limit(spec.getTestLimit()), numClasses);
  }

  /** Reads {@code <prefix>-images-idx3-ubyte[.gz]} and {@code <prefix>-labels-idx1-ubyte[.gz]}. */
  public static ImageDataset read(Path dir, String prefix) throws IOException {
    IdxReader.IdxArray images = IdxReader.read(find(dir, prefix + "-images-idx3-ubyte"));
    IdxReader.IdxArray labels = IdxReader.read(find(dir, prefix + "-labels-idx1-ubyte"));
    if (images.shape().length != 3 || labels.shape().length != 1 || images.count() != labels.count()) {
      throw new IOException("images and labels in " + dir + " do not match: " + images.count()
          + " images, " + labels.count() + " labels");
    }
    int[] classes = new int[labels.count()];
    for (int i = 0; i < classes.length; i++) {
      classes[i] = labels.data()[i] & 0xff;
    }
    return new ImageDataset(images.data(), classes, images.shape()[1], images.shape()[2]);
  }

  private static Path find(Path dir, String name) throws IOException {
    for (Path candidate : new Path[] {dir.resolve(name + ".gz"), dir.resolve(name)}) {
      if (Files.isRegularFile(candidate)) {
        return candidate;
      }
    }
    throw new IOException("no " + name + "[.gz] in " + dir);
  }
}
