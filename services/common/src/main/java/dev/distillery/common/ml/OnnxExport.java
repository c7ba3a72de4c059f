package dev.distillery.common.ml;

import ai.djl.Model;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.Parameter;
import dev.distillery.common.ml.Architectures.Chain;
import dev.distillery.common.ml.Architectures.Flatten;
import dev.distillery.common.ml.Architectures.Layer;
import dev.distillery.common.ml.Architectures.MaxPool;
import dev.distillery.common.ml.Architectures.Op;
import dev.distillery.common.ml.Architectures.Relu;
import dev.distillery.common.ml.Architectures.Residual;
import dev.distillery.onnx.OnnxProto.AttributeProto;
import dev.distillery.onnx.OnnxProto.GraphProto;
import dev.distillery.onnx.OnnxProto.ModelProto;
import dev.distillery.onnx.OnnxProto.NodeProto;
import dev.distillery.onnx.OnnxProto.OperatorSetIdProto;
import dev.distillery.onnx.OnnxProto.TensorProto;
import dev.distillery.onnx.OnnxProto.TensorShapeProto;
import dev.distillery.onnx.OnnxProto.TypeProto;
import dev.distillery.onnx.OnnxProto.ValueInfoProto;
import com.google.protobuf.ByteString;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A built-in model as an ONNX model (opset {@value #OPSET}), written through ONNX's own protobuf
 * definition from the architecture's {@link Architectures.Op} tree and the model's weights.
 *
 * <p>The graph takes {@value #INPUT}, float {@code [batch, channels, height, width]} images already
 * preprocessed as the built-in models take them ({@link Preprocessing#BUILT_IN}: pixel / 255, minus
 * 0.286, divided by 0.353), and gives {@value #OUTPUT}, float {@code [batch, classes]}; the batch
 * dimension is free. Initializers keep the model's parameter names ({@code 01Conv2d_weight}).
 *
 * <p>Three forms: {@link #floatModel} is the model as it is, batch norms included; {@link
 * #calibrationModel} folds each batch norm into the convolution before it and makes every
 * activation an output, for measuring activation ranges; {@link #int8Model} is that folded graph in
 * ONNX Runtime's QDQ form: per-channel symmetric int8 weights, int32 biases, and each activation a
 * convolution, dense layer, pooling or addition reads quantized to uint8 by its calibrated range
 * (QuantizeLinear then DequantizeLinear), which ONNX Runtime fuses into its int8 kernels.
 */
public final class OnnxExport {
  public static final String INPUT = "input";
  public static final String OUTPUT = "logits";
  public static final int OPSET = 13;
  /** ONNX IR version 7 is the one of opset 13 (ONNX 1.8), which every runtime since reads. */
  private static final int IR_VERSION = 7;
  /** DJL's BatchNorm epsilon, as torch's. */
  private static final float BATCH_NORM_EPSILON = 1e-5f;

  private OnnxExport() {}

  /** Observed range of one activation over the calibration images. */
  public record Range(float min, float max) {
    public Range include(float value) {
      return new Range(Math.min(min, value), Math.max(max, value));
    }

    /** uint8 asymmetric quantization of this range widened to hold 0 (so that zero is exact). */
    float scale() {
      float low = Math.min(0, min);
      float high = Math.max(0, max);
      return high > low ? (high - low) / 255f : 1f;
    }

    int zeroPoint() {
      return Math.max(0, Math.min(255, Math.round(-Math.min(0, min) / scale())));
    }
  }

  /** The folded float graph whose {@code activations} are all outputs too, named as {@link #int8Model} names them. */
  public record Calibration(byte[] model, List<String> activations) {}

  /** The built-in {@code model} as it is, for images of {@code imageShape} ({@code [C, H, W]}). */
  public static byte[] floatModel(Model model, Shape imageShape) {
    return new Emitter(model, Mode.FLOAT, Map.of()).model(imageShape, false);
  }

  /** The folded graph with every activation an output: what {@link Int8Quantization} calibrates on. */
  public static Calibration calibrationModel(Model model, Shape imageShape) {
    Emitter emitter = new Emitter(model, Mode.FOLDED, Map.of());
    byte[] bytes = emitter.model(imageShape, true);
    return new Calibration(bytes, List.copyOf(emitter.activations));
  }

  /**
   * The folded graph in QDQ form, quantized by {@code ranges}: one for {@link #INPUT} and one for
   * each activation {@link #calibrationModel} lists.
   */
  public static byte[] int8Model(Model model, Shape imageShape, Map<String, Range> ranges) {
    return new Emitter(model, Mode.INT8, ranges).model(imageShape, false);
  }

  /**
   * A per-channel symmetric int8 quantization of {@code weights} (output channel first): scale_c =
   * max|w_c| / 127, q = round(w / scale_c) in [-127, 127]. A pruned zero stays exactly zero.
   */
  public record Int8Weights(byte[] values, float[] scales) {
    public static Int8Weights of(float[] weights, int channels) {
      int perChannel = weights.length / channels;
      byte[] values = new byte[weights.length];
      float[] scales = new float[channels];
      for (int c = 0; c < channels; c++) {
        float largest = 0;
        for (int i = c * perChannel; i < (c + 1) * perChannel; i++) {
          largest = Math.max(largest, Math.abs(weights[i]));
        }
        scales[c] = largest > 0 ? largest / 127f : 1f;
        for (int i = c * perChannel; i < (c + 1) * perChannel; i++) {
          values[i] = (byte) Math.max(-127, Math.min(127, Math.round(weights[i] / scales[c])));
        }
      }
      return new Int8Weights(values, scales);
    }
  }

  private enum Mode {
    FLOAT, FOLDED, INT8;

    boolean folds() {
      return this != FLOAT;
    }
  }

  /** Walks an architecture's operations, adding the nodes and initializers of each to one graph. */
  private static final class Emitter {
    private final Mode mode;
    private final Map<String, Range> ranges;
    private final Architectures.Definition definition;
    private final Map<String, Parameter> parameters = new LinkedHashMap<>();
    private final GraphProto.Builder graph = GraphProto.newBuilder();
    /** Every float activation made, in order: the tensors calibration measures. */
    private final List<String> activations = new ArrayList<>();
    /** Activations that share the quantization of another (a max-pooled or flattened tensor). */
    private final Map<String, String> sameRangeAs = new HashMap<>();
    private final Map<String, String> dequantized = new HashMap<>();
    private final int classes;
    private final String architecture;

    Emitter(Model model, Mode mode, Map<String, Range> ranges) {
      this.mode = mode;
      this.architecture = model.getName();
      this.ranges = ranges;
      model.getBlock().getParameters().forEach(p -> parameters.put(p.getKey(), p.getValue()));
      List<Parameter> head = Models.head(model);
      this.classes = Math.toIntExact(head.get(0).getArray().getShape().get(0));
      this.definition = Architectures.define(architecture, Models.hiddenUnits(model), classes);
    }

    byte[] model(Shape imageShape, boolean everyActivationAnOutput) {
      String last = emit(definition.root(), INPUT);
      for (int i = graph.getNodeCount() - 1; i >= 0; i--) { // the last layer writes the graph's output
        NodeProto node = graph.getNode(i);
        if (node.getOutputList().contains(last)) {
          graph.setNode(i, node.toBuilder().setOutput(0, OUTPUT));
          break;
        }
      }
      activations.remove(last);
      List<Object> inputDims = new ArrayList<>(List.of("batch"));
      for (long d : imageShape.getShape()) {
        inputDims.add(d);
      }
      graph.setName(architecture).addInput(valueInfo(INPUT, inputDims))
          .addOutput(valueInfo(OUTPUT, List.of("batch", (long) classes)));
      if (everyActivationAnOutput) {
        activations.forEach(name -> graph.addOutput(valueInfo(name, null)));
      }
      return ModelProto.newBuilder().setIrVersion(IR_VERSION).setProducerName("distillery")
          .setDocString("built-in architecture " + architecture + "; input: images preprocessed as "
              + "(pixel / 255 - 0.286) / 0.353")
          .addOpsetImport(OperatorSetIdProto.newBuilder().setDomain("").setVersion(OPSET))
          .setGraph(graph).build().toByteArray();
    }

    private String emit(Op op, String x) {
      if (op instanceof Chain chain) {
        List<Op> ops = chain.ops();
        for (int i = 0; i < ops.size(); i++) {
          Layer norm = mode.folds() && i + 1 < ops.size() && ops.get(i + 1) instanceof Layer next
              && next.kind() == ChannelGraph.Kind.BATCH_NORM ? next : null;
          x = ops.get(i) instanceof Layer layer ? layer(layer, norm, x) : emit(ops.get(i), x);
          if (norm != null) {
            i++;
          }
        }
        return x;
      }
      if (op instanceof Layer layer) {
        return layer(layer, null, x);
      }
      if (op instanceof Relu) {
        return node("Relu", List.of(x), Map.of());
      }
      if (op instanceof MaxPool pool) {
        String out = node("MaxPool", List.of(quantized(x)),
            Map.of("kernel_shape", List.of((long) pool.size(), (long) pool.size()),
                "strides", List.of((long) pool.size(), (long) pool.size())));
        sameRangeAs.put(out, x);
        return out;
      }
      if (op instanceof Flatten) {
        String out = node("Flatten", List.of(x), Map.of("axis", 1L));
        sameRangeAs.put(out, x);
        return out;
      }
      if (op instanceof Residual residual) {
        String main = emit(residual.main(), x);
        String shortcut = residual.shortcut() == null ? x : emit(residual.shortcut(), x);
        return node("Add", List.of(quantized(main), quantized(shortcut)), Map.of());
      }
      return node("GlobalAveragePool", List.of(quantized(x)), Map.of());
    }

    /** A convolution, dense layer or batch norm; {@code norm}, when given, is folded into the convolution. */
    private String layer(Layer layer, Layer norm, String x) {
      String prefix = definition.prefix(layer);
      if (layer.kind() == ChannelGraph.Kind.BATCH_NORM) {
        return node("BatchNormalization", List.of(x,
            floats(prefix + "_gamma", values(prefix + "_gamma")), floats(prefix + "_beta", values(prefix + "_beta")),
            floats(prefix + "_runningMean", values(prefix + "_runningMean")),
            floats(prefix + "_runningVar", values(prefix + "_runningVar"))),
            Map.of("epsilon", BATCH_NORM_EPSILON));
      }
      Parameter weightParameter = parameters.get(prefix + "_weight");
      long[] shape = weightParameter.getArray().getShape().getShape();
      int channels = Math.toIntExact(shape[0]);
      float[] weight = weightParameter.getArray().toFloatArray();
      float[] bias = parameters.containsKey(prefix + "_bias") ? values(prefix + "_bias") : null;
      if (norm != null) { // w' = w * g / sqrt(v + eps), b' = (b - m) * g / sqrt(v + eps) + beta
        String bn = definition.prefix(norm);
        float[] gamma = values(bn + "_gamma");
        float[] beta = values(bn + "_beta");
        float[] mean = values(bn + "_runningMean");
        float[] variance = values(bn + "_runningVar");
        float[] folded = new float[channels];
        int perChannel = weight.length / channels;
        for (int c = 0; c < channels; c++) {
          float factor = (float) (gamma[c] / Math.sqrt(variance[c] + BATCH_NORM_EPSILON));
          for (int i = c * perChannel; i < (c + 1) * perChannel; i++) {
            weight[i] *= factor;
          }
          folded[c] = ((bias == null ? 0 : bias[c]) - mean[c]) * factor + beta[c];
        }
        bias = folded;
      }
      List<String> inputs = new ArrayList<>(List.of(quantized(x)));
      if (mode == Mode.INT8) {
        Int8Weights q = Int8Weights.of(weight, channels);
        inputs.add(node("DequantizeLinear", List.of(
            tensor(prefix + "_weight_quantized", TensorProto.DataType.INT8, shape, q.values()),
            floats(prefix + "_weight_scale", q.scales()),
            tensor(prefix + "_weight_zero_point", TensorProto.DataType.INT8, new long[] {channels}, new byte[channels])),
            Map.of("axis", 0L), prefix + "_weight"));
        if (bias != null) { // int32 at scale s_x * s_w, as QLinearConv and QGemm take it
          float inputScale = range(x).scale();
          ByteBuffer quantizedBias = little(channels * 4);
          float[] biasScales = new float[channels];
          for (int c = 0; c < channels; c++) {
            biasScales[c] = inputScale * q.scales()[c];
            quantizedBias.putInt(Math.round(bias[c] / biasScales[c]));
          }
          inputs.add(node("DequantizeLinear", List.of(
              tensor(prefix + "_bias_quantized", TensorProto.DataType.INT32, new long[] {channels}, quantizedBias.array()),
              floats(prefix + "_bias_scale", biasScales),
              tensor(prefix + "_bias_zero_point", TensorProto.DataType.INT32, new long[] {channels}, new byte[channels * 4])),
              Map.of("axis", 0L), prefix + "_bias"));
        }
      } else {
        inputs.add(tensor(prefix + "_weight", TensorProto.DataType.FLOAT, shape, littleFloats(weight)));
        if (bias != null) {
          inputs.add(floats(prefix + "_bias", bias));
        }
      }
      if (layer.kind() == ChannelGraph.Kind.DENSE) {
        return node("Gemm", inputs, Map.of("transB", 1L));
      }
      long k = layer.kernel();
      long s = layer.stride();
      long p = layer.padding();
      return node("Conv", inputs, Map.of("kernel_shape", List.of(k, k), "strides", List.of(s, s),
          "pads", List.of(p, p, p, p)));
    }

    /** {@code x} as the next layer reads it: itself, or (int8) quantized and dequantized by its range. */
    private String quantized(String x) {
      if (mode != Mode.INT8) {
        return x;
      }
      return dequantized.computeIfAbsent(x, name -> {
        Range range = range(name);
        String scale = scalar(name + "_scale", TensorProto.DataType.FLOAT, little(4).putFloat(range.scale()).array());
        String zeroPoint = scalar(name + "_zero_point", TensorProto.DataType.UINT8, new byte[] {(byte) range.zeroPoint()});
        String q = node("QuantizeLinear", List.of(name, scale, zeroPoint), Map.of(), name + "_quantized");
        return node("DequantizeLinear", List.of(q, scale, zeroPoint), Map.of(), name + "_dequantized");
      });
    }

    private Range range(String activation) {
      String measured = activation;
      while (sameRangeAs.containsKey(measured)) {
        measured = sameRangeAs.get(measured);
      }
      Range range = ranges.get(measured);
      if (range == null) {
        throw new IllegalArgumentException("no calibrated range for activation " + measured);
      }
      return range;
    }

    /**
     * Adds a node whose output is a new float activation, named by their count so that the folded
     * float graph and its int8 form name theirs alike, and returns the output's name.
     */
    private String node(String type, List<String> inputs, Map<String, Object> attributes) {
      String out = "a" + activations.size();
      activations.add(out);
      return node(type, inputs, attributes, out);
    }

    private String node(String type, List<String> inputs, Map<String, Object> attributes, String out) {
      NodeProto.Builder node = NodeProto.newBuilder().setOpType(type).setName(out).addAllInput(inputs).addOutput(out);
      attributes.forEach((name, value) -> node.addAttribute(attribute(name, value)));
      graph.addNode(node);
      return out;
    }

    private float[] values(String name) {
      return parameters.get(name).getArray().toFloatArray();
    }

    private String floats(String name, float[] values) {
      return tensor(name, TensorProto.DataType.FLOAT, new long[] {values.length}, littleFloats(values));
    }

    private String scalar(String name, TensorProto.DataType type, byte[] raw) {
      return tensor(name, type, new long[0], raw);
    }

    private String tensor(String name, TensorProto.DataType type, long[] dims, byte[] raw) {
      TensorProto.Builder tensor = TensorProto.newBuilder().setName(name).setDataType(type.getNumber())
          .setRawData(ByteString.copyFrom(raw));
      for (long d : dims) {
        tensor.addDims(d);
      }
      graph.addInitializer(tensor);
      return name;
    }
  }

  private static ByteBuffer little(int bytes) {
    return ByteBuffer.allocate(bytes).order(ByteOrder.LITTLE_ENDIAN);
  }

  private static byte[] littleFloats(float[] values) {
    ByteBuffer buffer = little(values.length * 4);
    buffer.asFloatBuffer().put(values);
    return buffer.array();
  }

  private static AttributeProto attribute(String name, Object value) {
    AttributeProto.Builder a = AttributeProto.newBuilder().setName(name);
    if (value instanceof Long i) {
      a.setType(AttributeProto.AttributeType.INT).setI(i);
    } else if (value instanceof Float f) {
      a.setType(AttributeProto.AttributeType.FLOAT).setF(f);
    } else {
      @SuppressWarnings("unchecked")
      List<Long> ints = (List<Long>) value;
      a.setType(AttributeProto.AttributeType.INTS).addAllInts(ints);
    }
    return a.build();
  }

  /** A float tensor's name and type; {@code dims} null leaves the shape out, a string is a named (free) dimension. */
  private static ValueInfoProto valueInfo(String name, List<Object> dims) {
    TypeProto.Tensor.Builder type = TypeProto.Tensor.newBuilder().setElemType(TensorProto.DataType.FLOAT.getNumber());
    if (dims != null) {
      TensorShapeProto.Builder shape = TensorShapeProto.newBuilder();
      for (Object d : dims) {
        shape.addDim(d instanceof String param ? TensorShapeProto.Dimension.newBuilder().setDimParam(param)
            : TensorShapeProto.Dimension.newBuilder().setDimValue((Long) d));
      }
      type.setShape(shape);
    }
    return ValueInfoProto.newBuilder().setName(name).setType(TypeProto.newBuilder().setTensorType(type)).build();
  }
}
