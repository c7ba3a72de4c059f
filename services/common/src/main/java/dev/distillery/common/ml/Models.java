package dev.distillery.common.ml;

import ai.djl.MalformedModelException;
import ai.djl.engine.Engine;
import ai.djl.Model;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import ai.djl.util.Pair;
import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.schemas.ArtifactRef;
import java.io.BufferedInputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** Creating, saving, loading and measuring built-in models. */
public final class Models {
  private Models() {}

  /**
   * A new model of a built-in architecture with weights initialised from {@code seed}. The seed is
   * engine-wide: seeding and initialising happen under one lock, so two stages of a JVM cannot
   * interleave and give a model another's initial weights.
   */
  public static synchronized Model create(String architecture, double width, int classes, Shape imageShape, long seed) {
    Engine.getEngine("PyTorch").setRandomSeed((int) seed);
    return create(architecture, Architectures.hiddenUnits(architecture, width), classes, imageShape);
  }

  /**
   * A new model of a built-in architecture with the given hidden layer sizes (see {@link
   * Architectures#hiddenUnits}), its weights initialised but not seeded: for weights copied in.
   */
  public static synchronized Model create(String architecture, List<Integer> hidden, int classes, Shape imageShape) {
    Model model = Model.newInstance(architecture, "PyTorch");
    model.setBlock(Architectures.build(architecture, hidden, classes));
    model.getBlock().initialize(model.getNDManager(), DataType.FLOAT32, batchOf(imageShape));
    return model;
  }

  /** A model of a built-in architecture with the weights of checkpoint file {@code path}. */
  public static Model load(String architecture, double width, int classes, Shape imageShape, Path path)
      throws IOException {
    return load(architecture, Architectures.hiddenUnits(architecture, width), classes, imageShape, path);
  }

  /**
   * A model of a built-in architecture with the given hidden layer sizes (a structurally pruned
   * one, say) and the weights of checkpoint file {@code path}.
   */
  public static Model load(String architecture, List<Integer> hidden, int classes, Shape imageShape, Path path)
      throws IOException {
    // Parameters must exist before loading, or a later save fails with "key value size mismatch".
    Model model = create(architecture, hidden, classes, imageShape);
    Map<String, Shape> expected = new HashMap<>();
    model.getBlock().getParameters().forEach(p -> expected.put(p.getKey(), p.getValue().getArray().getShape()));
    try (InputStream file = Files.newInputStream(path);
        DataInputStream in = new DataInputStream(new BufferedInputStream(file))) {
      model.getBlock().loadParameters(model.getNDManager(), in);
      // DJL takes the shapes from the file: a checkpoint of other sizes would load silently.
      for (Pair<String, Parameter> p : model.getBlock().getParameters()) {
        Shape loaded = p.getValue().getArray().getShape();
        if (!loaded.equals(expected.get(p.getKey()))) {
          throw new IOException("parameter " + p.getKey() + " has shape " + loaded + ", expected " + expected.get(p.getKey()));
        }
      }
    } catch (IOException | MalformedModelException | RuntimeException e) {
      model.close();
      throw new IOException("checkpoint " + path + " is not a " + architecture + " (hidden layers " + hidden
          + ", " + classes + " classes): " + e.getMessage(), e);
    }
    return model;
  }

  /** Saves the model's parameters as one file in {@code store}. */
  public static ArtifactRef save(Model model, ArtifactStore store, String jobId, String fileName) throws IOException {
    return store.write(jobId, fileName, out -> model.getBlock().saveParameters(new DataOutputStream(out)));
  }

  /**
   * The weight tensors (convolution kernels and dense matrices) that pruning acts on: parameters
   * named {@code *weight} (DJL's {@code 01Conv2d_weight}, PyTorch's {@code conv1.weight}) of two or
   * more dimensions. By name, not by DJL's type, which DJL infers for a TorchScript module from
   * substrings ({@code debias.fc.weight} would be a bias).
   */
  public static List<Pair<String, Parameter>> prunableWeights(Model model) {
    List<Pair<String, Parameter>> weights = new ArrayList<>();
    for (Pair<String, Parameter> p : model.getBlock().getParameters()) {
      if (p.getKey().endsWith("weight") && p.getValue().getArray().getShape().dimension() >= 2) {
        weights.add(p);
      }
    }
    return weights;
  }

  /**
   * The sizes of a built-in model's channel groups (see {@link Architectures#hiddenUnits}), read
   * from its weights. A built-in model is named after its architecture ({@link #create}).
   */
  public static List<Integer> hiddenUnits(Model model) {
    ChannelGraph graph = Architectures.graph(model.getName());
    var parameters = model.getBlock().getParameters();
    return graph.groups().stream()
        .map(weight -> Math.toIntExact(parameters.get(weight).getArray().getShape().get(0))).toList();
  }

  /** The parameters of the model's last layer: the head that maps its features to classes. */
  public static List<Parameter> head(Model model) {
    var layers = model.getBlock().getChildren();
    return layers.get(layers.size() - 1).getValue().getParameters().values();
  }

  /**
   * Copies every parameter but the head's from {@code pretrained} into {@code target}, a model of
   * the same architecture and width with its own head: transfer learning's starting point.
   */
  public static void copyBackbone(Model pretrained, Model target) {
    Map<String, Parameter> source = new HashMap<>();
    pretrained.getBlock().getParameters().forEach(p -> source.put(p.getKey(), p.getValue()));
    List<Parameter> head = head(target);
    for (Pair<String, Parameter> p : target.getBlock().getParameters()) {
      if (head.contains(p.getValue())) {
        continue;
      }
      Parameter from = source.get(p.getKey());
      if (from == null || !from.getArray().getShape().equals(p.getValue().getArray().getShape())) {
        throw new IllegalArgumentException("pretrained model has no parameter " + p.getKey() + " of shape "
            + p.getValue().getArray().getShape());
      }
      from.getArray().copyTo(p.getValue().getArray());
    }
  }

  /** Learnt parameters: without batch norm's running statistics, which PyTorch keeps as buffers. */
  public static long parameterCount(Model model) {
    long count = 0;
    for (Pair<String, Parameter> p : model.getBlock().getParameters()) {
      count += isStatistic(p.getValue()) ? 0 : p.getValue().getArray().size();
    }
    return count;
  }

  /** The non-zero ones among {@link #parameterCount}'s. */
  public static long nonZeroCount(Model model) {
    long count = 0;
    for (Pair<String, Parameter> p : model.getBlock().getParameters()) {
      count += isStatistic(p.getValue()) ? 0 : nonZero(p.getValue().getArray());
    }
    return count;
  }

  /** Batch norm's running mean or variance: state, not a learnt parameter. */
  static boolean isStatistic(Parameter p) {
    return p.getType() == Parameter.Type.RUNNING_MEAN || p.getType() == Parameter.Type.RUNNING_VAR;
  }

  public static long nonZero(NDArray array) {
    try (NDArray count = array.countNonzero()) {
      return count.getLong();
    }
  }

  private static Shape batchOf(Shape imageShape) {
    return new Shape(1).addAll(imageShape);
  }
}
