package dev.distillery.common.ml;

import ai.djl.Model;
import ai.djl.ndarray.types.Shape;
import dev.distillery.common.JobControl;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * Post-training static int8 quantization of a built-in model: activation ranges (minimum and
 * maximum, as ONNX Runtime's MinMax calibrator takes them) measured by ONNX Runtime on the folded
 * float graph over calibration images, then the model in QDQ form ({@link OnnxExport#int8Model}).
 */
public final class Int8Quantization {
  private static final int BATCH = 64;

  private Int8Quantization() {}

  /**
   * The int8 ONNX model of {@code model}, calibrated on {@code images} images of {@code data} drawn
   * at random by {@code seed} (all of them when it has fewer).
   */
  public static byte[] quantize(Model model, ImageDataset data, int images, long seed) throws Exception {
    Shape imageShape = data.imageShape();
    OnnxExport.Calibration calibration = OnnxExport.calibrationModel(model, imageShape);
    ImageDataset sample = sample(data, images, seed);
    Map<String, OnnxExport.Range> ranges = new HashMap<>();
    List<String> activations = calibration.activations();
    try (OnnxRuntime runtime = new OnnxRuntime(calibration.model(), imageShape.getShape(), OnnxRuntime.torchThreads())) {
      for (int first = 0; first < sample.size(); first += BATCH) {
        JobControl.checkpoint();
        int count = Math.min(BATCH, sample.size() - first);
        float[] input = sample.values(first, count, Preprocessing.BUILT_IN);
        widen(ranges, OnnxExport.INPUT, input);
        for (Map.Entry<String, float[]> activation : runtime.run(input, count, activations).entrySet()) {
          widen(ranges, activation.getKey(), activation.getValue());
        }
      }
    }
    return OnnxExport.int8Model(model, imageShape, ranges);
  }

  private static ImageDataset sample(ImageDataset data, int images, long seed) {
    int[] order = ImageDataset.range(0, data.size());
    ImageDataset.shuffle(order, new Random(seed));
    return data.subset(Arrays.copyOf(order, Math.min(images, data.size())));
  }

  private static void widen(Map<String, OnnxExport.Range> ranges, String name, float[] values) {
    float min = Float.POSITIVE_INFINITY;
    float max = Float.NEGATIVE_INFINITY;
    for (float v : values) {
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    OnnxExport.Range seen = ranges.get(name);
    ranges.put(name, seen == null ? new OnnxExport.Range(min, max) : seen.include(min).include(max));
  }
}
