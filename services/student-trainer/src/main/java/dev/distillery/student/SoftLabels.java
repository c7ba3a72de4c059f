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
  /** A bound on one job's training set, so a corrupt batch cannot claim gigabytes. */
  private static final long MAX_SAMPLES = 50_000_000;

  private final JobContext context;
  private final int batchCount;
  private final int classes;
  private final double temperature;
  private final BitSet received = new BitSet();
  private final long firstArrivalNanos = System.nanoTime();
  private long lastArrivalNanos = firstArrivalNanos;
  private float[] scaledLogits = new float[0];
  private int samples;
  private long receivedSamples;

  SoftLabels(SoftLabelBatch first) {
    if (first.getBatchCount() < 1 || first.getNumClasses() < 1 || !(first.getTemperature() > 0)) {
      throw new IllegalArgumentException("soft-label batch of job " + first.getJobId()
          + " has batch count " + first.getBatchCount() + ", " + first.getNumClasses()
          + " classes, temperature " + first.getTemperature());
    }
    this.context = first.getContext();
    this.batchCount = first.getBatchCount();
    this.classes = first.getNumClasses();
    this.temperature = first.getTemperature();
  }

  /** Adds a batch; returns false when this batch index was already here. */
  boolean add(SoftLabelBatch batch) {
    if (batch.getBatchCount() != batchCount || batch.getNumClasses() != classes
        || batch.getTemperature() != temperature) {
      throw new IllegalArgumentException("soft-label batch " + batch.getBatchIndex() + " of job "
          + batch.getJobId() + " disagrees with the job's first batch on count, classes or temperature");
    }
    int index = batch.getBatchIndex();
    if (index < 0 || index >= batchCount || batch.getFirstSample() < 0 || batch.getSampleCount() < 1
        || batch.getFirstSample() + (long) batch.getSampleCount() > MAX_SAMPLES) {
      throw new IllegalArgumentException("soft-label batch " + index + " of job " + batch.getJobId()
          + " is out of range: samples " + batch.getFirstSample() + "+" + batch.getSampleCount()
          + ", batch count " + batchCount);
    }
    if (received.get(index)) {
      return false;
    }
    int end = (batch.getFirstSample() + batch.getSampleCount()) * classes;
    if (end > scaledLogits.length) {
      scaledLogits = java.util.Arrays.copyOf(scaledLogits, Math.max(end, scaledLogits.length * 2));
    }
    FloatBuffer values = batch.getScaledLogits().duplicate().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
    if (values.remaining() != batch.getSampleCount() * classes) {
      throw new IllegalArgumentException("soft-label batch " + batch.getBatchIndex() + " of job "
          + batch.getJobId() + " holds " + values.remaining() + " floats, expected " + batch.getSampleCount() * classes);
    }
    values.get(scaledLogits, batch.getFirstSample() * classes, values.remaining());
    samples = Math.max(samples, batch.getFirstSample() + batch.getSampleCount());
    receivedSamples += batch.getSampleCount();
    lastArrivalNanos = System.nanoTime();
    received.set(batch.getBatchIndex());
    return true;
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
