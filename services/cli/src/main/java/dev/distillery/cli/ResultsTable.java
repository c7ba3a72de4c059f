package dev.distillery.cli;

import dev.distillery.schemas.JobResult;
import dev.distillery.schemas.ModelFormat;
import dev.distillery.schemas.ModelArtifact;
import dev.distillery.schemas.ModelMetrics;
import dev.distillery.schemas.QuantizationReport;
import dev.distillery.schemas.PruningReport;
import java.util.Comparator;
import java.util.Map;
import java.util.TreeMap;

/** A job's result as a table for a terminal. */
public final class ResultsTable {
  private ResultsTable() {}

  public static String render(JobResult result) {
    StringBuilder out = new StringBuilder();
    out.append(String.format("%-8s %-9s %6s %10s %10s %10s %12s%n",
        "model", "arch", "width", "accuracy", "params", "non-zero", "bytes"));
    row(out, "teacher", result.getTeacher());
    row(out, "baseline", result.getBaseline());
    row(out, "student", result.getStudent());
    row(out, "pruned", result.getPruned());
    if (result.getBaseline() != null && result.getStudent() != null) {
      out.append(String.format("student against the baseline (%s): %+.2f points of accuracy%n",
          result.getTeacher() != null ? "the same student on hard labels only" : "the same model trained from scratch",
          100 * (result.getStudent().getTestAccuracy() - result.getBaseline().getTestAccuracy())));
    }
    if (result.getTeacher() != null && result.getStudent() != null && result.getStudent().getParameters() > 0) {
      out.append(String.format("student against the teacher: %+.2f points with %.1fx fewer parameters%n",
          100 * (result.getStudent().getTestAccuracy() - result.getTeacher().getTestAccuracy()),
          (double) result.getTeacher().getParameters() / result.getStudent().getParameters()));
    }
    if (result.getPruned() != null) {
      out.append(String.format("sparsity of prunable weights: %.4f (target %.4f)%n",
          result.getSparsity(), result.getTargetSparsity()));
      if (!result.getPruned().getHiddenUnits().isEmpty()) {
        out.append("channels removed; hidden layers now ").append(result.getPruned().getHiddenUnits()).append('\n');
      }
    }
    PruningReport p = result.getPruning();
    if (p != null) {
      out.append(String.format("pruning: accuracy %.4f before, %.4f pruned, %.4f fine-tuned (%+.2f points)%n",
          p.getAccuracyBefore(), p.getAccuracyPruned(), p.getAccuracyFineTuned(),
          100 * (p.getAccuracyFineTuned() - p.getAccuracyBefore())));
      if (p.getMaxAccuracyLoss() != null) {
        out.append(String.format("accuracy budget: %s points on the validation split (%.4f before pruning); steps tried:%n",
            p.getMaxAccuracyLoss(), p.getValidationAccuracyBefore()));
        p.getExplored().forEach(step -> out.append(String.format("  sparsity %.4f: validation %.4f, %.2f points lost, %s%n",
            step.getSparsity(), step.getValidationAccuracy(), step.getPointsLost(),
            step.getWithinBudget() ? "within" : "beyond: not published")));
      }
      if (result.getFinalFormat() == ModelFormat.TORCHSCRIPT) {
        out.append("multiply-accumulates: not counted for a TorchScript module\n");
      } else {
        out.append(String.format("multiply-accumulates per image: %d before, %d after (%d with a non-zero weight)%n",
            p.getMacsBefore(), p.getMacsAfter(), p.getNonZeroMacsAfter()));
      }
      if (p.getUnprunedParameters() > 0) {
        out.append(String.format("left dense: %d parameters outside the pruned weights (biases, batch norm)%n",
            p.getUnprunedParameters()));
      }
      out.append(String.format("latency: batch 1 %.3f -> %.3f ms, batch 256 %.2f -> %.2f ms%n",
          p.getLatencyMsBatch1Before(), p.getLatencyMsBatch1After(),
          p.getLatencyMsBatch256Before(), p.getLatencyMsBatch256After()));
    }
    if (result.getTeacher() != null) {
      ModelMetrics last = result.getPruned() != null ? result.getPruned() : result.getStudent();
      if (last != null) {
        out.append(String.format("non-zero parameters: %.1fx fewer than the teacher%n",
            (double) result.getTeacher().getNonZeroParameters() / last.getNonZeroParameters()));
      }
    }
    Map<String, Double> seconds = new TreeMap<>(result.getStageSeconds());
    seconds.forEach((stage, s) -> {
      String kernels = result.getStageKernels().get(stage);
      out.append(String.format("%-18s %8.1f s", stage, s)).append(kernels == null ? "" : "  kernels " + kernels)
          .append('\n');
    });
    out.append("final checkpoint: ").append(result.getFinalCheckpoint().getUri())
        .append(" (sha256 ").append(result.getFinalCheckpoint().getSha256(), 0, 16).append("...)")
        .append(result.getFinalFormat() == ModelFormat.TORCHSCRIPT ? ", TorchScript: torch.jit.load(path)" : "")
        .append('\n');
    if (result.getSparseCheckpoint() != null) {
      out.append(String.format("sparse encoding: %d bytes, %.1fx smaller than the dense checkpoint%n",
          result.getSparseCheckpoint().getSizeBytes(),
          (double) result.getFinalCheckpoint().getSizeBytes() / result.getSparseCheckpoint().getSizeBytes()));
    }
    if (result.getSafetensors() != null) {
      out.append("for PyTorch: ").append(result.getSafetensors().getUri()).append('\n');
    }
    QuantizationReport q = result.getQuantization();
    if (q != null) {
      out.append(String.format("int8: accuracy %.4f -> %.4f (%+.2f points) in ONNX Runtime, weights %d -> %d bytes "
          + "(%.1fx), calibrated on %d images%n", q.getAccuracyFloat(), q.getAccuracyInt8(),
          (q.getAccuracyInt8() - q.getAccuracyFloat()) * 100, q.getWeightBytesFloat(), q.getWeightBytesInt8(),
          (double) q.getWeightBytesFloat() / q.getWeightBytesInt8(), q.getCalibrationImages()));
    }
    if (!result.getArtifacts().isEmpty()) {
      out.append(String.format("%-15s %10s %9s %11s %13s  %-15s %s%n", "artifact", "bytes", "accuracy", "batch 1 ms",
          "batch 256 ms", "measured by", "file"));
      for (ModelArtifact a : result.getArtifacts()) {
        out.append(String.format("%-15s %10d %9s %11s %13s  %-15s %s%n", a.getKind(), a.getFile().getSizeBytes(),
            figure(a.getTestAccuracy(), "%.4f"), figure(a.getLatencyMsBatch1(), "%.3f"),
            figure(a.getLatencyMsBatch256(), "%.2f"), a.getRuntime() == null ? "-" : a.getRuntime(), a.getFile().getUri()));
      }
      ModelMetrics teacher = result.getTeacher();
      result.getArtifacts().stream().filter(a -> a.getTestAccuracy() != null)
          .min(Comparator.comparingLong(a -> a.getFile().getSizeBytes()))
          .filter(smallest -> teacher != null)
          .ifPresent(smallest -> out.append(String.format("smallest measured (%s): %.1fx fewer bytes than the teacher's "
              + "checkpoint, %+.2f points against the teacher%n", smallest.getKind(),
              (double) teacher.getCheckpointBytes() / smallest.getFile().getSizeBytes(),
              (smallest.getTestAccuracy() - teacher.getTestAccuracy()) * 100)));
    }
    return out.toString();
  }

  private static String figure(Double value, String format) {
    return value == null ? "-" : String.format(format, value);
  }

  private static void row(StringBuilder out, String name, ModelMetrics m) {
    if (m == null) {
      return;
    }
    out.append(String.format("%-8s %-9s %6.2f %10.4f %10d %10d %12d%n", name, m.getArchitecture(), m.getWidth(),
        m.getTestAccuracy(), m.getParameters(), m.getNonZeroParameters(), m.getCheckpointBytes()));
  }
}
