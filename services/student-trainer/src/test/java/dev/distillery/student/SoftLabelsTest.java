package dev.distillery.student;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.DatasetSpec;
import dev.distillery.schemas.DistillationSettings;
import dev.distillery.schemas.JobContext;
import dev.distillery.schemas.ModelFormat;
import dev.distillery.schemas.PruningMethod;
import dev.distillery.schemas.PruningSettings;
import dev.distillery.schemas.SoftLabelBatch;
import dev.distillery.schemas.StudentSpec;
import dev.distillery.schemas.TeacherSpec;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class SoftLabelsTest {
  private static final JobContext CONTEXT = JobContext.newBuilder()
      .setRequest(CompressionRequest.newBuilder().setJobId("j")
          .setTeacher(TeacherSpec.newBuilder().setFormat(ModelFormat.BUILT_IN).setArchitecture("convnet").setWidth(1.0)
            .setCheckpointUri("/t").build())
          .setDataset(DatasetSpec.newBuilder().setLocation("/d").setTrainLimit(0).setTestLimit(0).build())
          .setStudent(StudentSpec.newBuilder().setArchitecture("lenet5").setWidth(1.0).build())
          .setDistillation(DistillationSettings.newBuilder().build())
          .setPruning(PruningSettings.newBuilder().setMethod(PruningMethod.L1_UNSTRUCTURED).setTargetSparsity(0.5).setFineTuneEpochs(1).setLearningRate(0.001).build())
          .setStages(List.of()).build())
      .setStageSeconds(Map.of()).build();

  /** Batch {@code index} of 3: samples 2*index and 2*index+1 (the last holds one), 2 classes. */
  private static SoftLabelBatch batch(int index, float value) {
    int count = index == 2 ? 1 : 2;
    ByteBuffer logits = ByteBuffer.allocate(count * 2 * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < count * 2; i++) {
      logits.putFloat(value + i);
    }
    return new SoftLabelBatch("j", CONTEXT, index, 3, 5, index * 2, count, 2, 4.0, logits.flip());
  }

  @Test
  void assemblesOutOfOrderBatchesAndKeepsTheFirstOfDuplicates() {
    SoftLabels labels = new SoftLabels(batch(2, 40f));
    assertThat(labels.add(batch(2, 40f))).isTrue();
    assertThat(labels.add(batch(0, 0f))).isTrue();
    assertThat(labels.complete()).isFalse();
    assertThat(labels.add(batch(0, 99f))).isFalse();
    assertThat(labels.add(batch(1, 20f))).isTrue();
    assertThat(labels.complete()).isTrue();
    assertThat(labels.samples()).isEqualTo(5);
    assertThat(labels.rows(new int[] {4, 0, 3})).containsExactly(40f, 41f, 0f, 1f, 22f, 23f);
  }

  @Test
  void rejectsABatchThatDisagreesWithTheJob() {
    SoftLabels labels = new SoftLabels(batch(0, 0f));
    SoftLabelBatch otherTemperature = SoftLabelBatch.newBuilder(batch(1, 0f)).setTemperature(2.0).build();
    assertThatThrownBy(() -> labels.add(otherTemperature)).hasMessageContaining("disagrees");
    SoftLabelBatch truncated = SoftLabelBatch.newBuilder(batch(1, 0f)).setScaledLogits(ByteBuffer.allocate(4)).build();
    assertThatThrownBy(() -> labels.add(truncated)).hasMessageContaining("holds 4 bytes, expected 16");
  }

  /** Sizes a crafted batch claims are checked, in long arithmetic, before anything is allocated. */
  @Test
  void refusesBatchesThatClaimMoreThanTheBoundsBeforeAllocating() {
    // 43 classes x 50M samples overflowed int arithmetic; 2^31-1 samples x 256 classes is ~2 TB.
    SoftLabelBatch manyClasses = SoftLabelBatch.newBuilder(batch(0, 0f)).setNumClasses(300).build();
    assertThatThrownBy(() -> new SoftLabels(manyClasses)).hasMessageContaining("300 classes");
    SoftLabelBatch huge = SoftLabelBatch.newBuilder(batch(0, 0f)).setNumClasses(256)
        .setTotalSamples(Integer.MAX_VALUE).build();
    assertThatThrownBy(() -> new SoftLabels(huge)).hasMessageContaining("at most 256 classes");
    SoftLabels labels = new SoftLabels(SoftLabelBatch.newBuilder(batch(0, 0f)).setTotalSamples(0).build());
    SoftLabelBatch farOut = SoftLabelBatch.newBuilder(batch(1, 0f)).setTotalSamples(0)
        .setFirstSample(Integer.MAX_VALUE - 1).build();
    assertThatThrownBy(() -> labels.add(farOut)).hasMessageContaining("out of range");
    SoftLabelBatch pastTheSet = SoftLabelBatch.newBuilder(batch(1, 0f)).setFirstSample(4).build();
    assertThatThrownBy(() -> new SoftLabels(batch(0, 0f)).add(pastTheSet)).hasMessageContaining("out of range");
  }
}
