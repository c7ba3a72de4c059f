package dev.distillery.student;

import dev.distillery.schemas.JobContext;
import dev.distillery.schemas.SoftLabelBatch;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.BitSet;

/**
 * One job's soft labels as they arrive, batch by batch. A batch seen twice (a redelivery) is
 * kept once; the set is complete when every batch index arrived.
 */
final class SoftLabels {
  /**
   * Bounds checked before anything is allocated, in long arithmetic, so a corrupt or crafted batch
   * cannot claim gigabytes or overflow an index: labels are bytes (at most 256 classes), and one
   * job's soft labels may hold at most 2^27 floats (512 MB; Fashion-MNIST's are 600,000).
   */
  static final int MAX_CLASSES = 256;
  static final long MAX_FLOATS = 1L << 27;

  private final JobContext context;
  private final int batchCount;
  private final int classes;
  private final int totalSamples;
  private final double temperature;
  private final BitSet received = new BitSet();
  private final long firstArrivalNanos = System.nanoTime();
  private long lastArrivalNanos = firstArrivalNanos;
  private float[] scaledLogits = new float[0];
  private int samples;
  private long receivedSamples;

  SoftLabels(SoftLabelBatch first) {
    if (first.getBatchCount() < 1 || first.getNumClasses() < 1 || first.getNumClasses() > MAX_CLASSES
        || first.getTotalSamples() < 0 || (long) first.getTotalSamples() * first.getNumClasses() > MAX_FLOATS
        || first.getBatchCount() > (first.getTotalSamples() > 0 ? first.getTotalSamples() : MAX_FLOATS / first.getNumClasses())
        || !(first.getTemperature() > 0)) {
      throw new IllegalArgumentException("soft-label batch of job " + first.getJobId()
          + " has batch count " + first.getBatchCount() + ", " + first.getNumClasses() + " classes, "
          + first.getTotalSamples() + " samples, temperature " + first.getTemperature()
          + " (at most " + MAX_CLASSES + " classes and " + MAX_FLOATS + " values)");
    }
    this.context = first.getContext();
    this.batchCount = first.getBatchCount();
    this.classes = first.getNumClasses();
    this.totalSamples = first.getTotalSamples();
    this.temperature = first.getTemperature();
  }

  /** Adds a batch; returns false when this batch index was already here. */
  boolean add(SoftLabelBatch batch) {
    if (batch.getBatchCount() != batchCount || batch.getNumClasses() != classes
        || batch.getTotalSamples() != totalSamples || batch.getTemperature() != temperature) {
      throw new IllegalArgumentException("soft-label batch " + batch.getBatchIndex() + " of job "
          + batch.getJobId() + " disagrees with the job's first batch on count, samples, classes or temperature");
    }
    int index = batch.getBatchIndex();
    long end = batch.getFirstSample() + (long) batch.getSampleCount();
    if (index < 0 || index >= batchCount || batch.getFirstSample() < 0 || batch.getSampleCount() < 1
        || end * classes > MAX_FLOATS || (totalSamples > 0 && end > totalSamples)) {
      throw new IllegalArgumentException("soft-label batch " + index + " of job " + batch.getJobId()
          + " is out of range: samples " + batch.getFirstSample() + "+" + batch.getSampleCount()
          + ", batch count " + batchCount);
    }
    if (received.get(index)) {
      return false;
    }
    FloatBuffer values = batch.getScaledLogits().duplicate().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
    long expected = (long) batch.getSampleCount() * classes;
    if (values.remaining() != expected || batch.getScaledLogits().remaining() % Float.BYTES != 0) {
      throw new IllegalArgumentException("soft-label batch " + batch.getBatchIndex() + " of job "
          + batch.getJobId() + " holds " + batch.getScaledLogits().remaining() + " bytes, expected "
          + expected * Float.BYTES);
    }
    int needed = Math.toIntExact(end * classes);
    if (needed > scaledLogits.length) {
      // Grow by doubling (within the bound), or to the whole set when its size is known.
      int target = totalSamples > 0 ? totalSamples * classes
          : (int) Math.min(MAX_FLOATS, Math.max(needed, 2L * scaledLogits.length));
      scaledLogits = java.util.Arrays.copyOf(scaledLogits, Math.max(needed, target));
    }
    values.get(scaledLogits, batch.getFirstSample() * classes, values.remaining());
    samples = Math.max(samples, (int) end);
    receivedSamples += batch.getSampleCount();
    lastArrivalNanos = System.nanoTime();
    received.set(batch.getBatchIndex());
    return true;
  }

  /** The floats this job's soft labels will take once complete, as its first batch declared (0: not known). */
  long declaredFloats() {
    return (long) totalSamples * classes;
  }

  /** Samples labelled so far (each counted once). */
  long receivedSamples() {
    return receivedSamples;
  }

  /** Seconds from the first batch to the latest: the labelling span as the trainer saw it. */
  double arrivalSeconds() {
    return (lastArrivalNanos - firstArrivalNanos) / 1e9;
  }

  boolean complete() {
    return received.cardinality() == batchCount;
  }

  JobContext context() {
    return context;
  }

  int classes() {
    return classes;
  }

  int samples() {
    return samples;
  }

  /** The scaled logits of the samples {@code indices}, row after row. */
  float[] rows(int[] indices) {
    float[] rows = new float[indices.length * classes];
    for (int i = 0; i < indices.length; i++) {
      System.arraycopy(scaledLogits, indices[i] * classes, rows, i * classes, classes);
    }
    return rows;
  }
}
