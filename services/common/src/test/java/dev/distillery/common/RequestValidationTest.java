package dev.distillery.common;

import static org.assertj.core.api.Assertions.assertThat;

import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.DatasetFormat;
import dev.distillery.schemas.DatasetSpec;
import dev.distillery.schemas.DistillationSettings;
import dev.distillery.schemas.ModelFormat;
import dev.distillery.schemas.PruningMethod;
import dev.distillery.schemas.PruningSettings;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.StudentSpec;
import dev.distillery.schemas.TeacherSpec;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class RequestValidationTest {
  @TempDir
  Path dir;

  private CompressionRequest valid() throws Exception {
    Path teacher = Files.writeString(dir.resolve("teacher.params"), "weights");
    return CompressionRequest.newBuilder()
        .setJobId("job-1")
        .setTeacher(TeacherSpec.newBuilder().setFormat(ModelFormat.BUILT_IN).setArchitecture("convnet").setWidth(1.0)
            .setCheckpointUri(teacher.toUri().toString()).build())
        .setDataset(new DatasetSpec(DatasetFormat.IDX, dir.toString(), 0, 0))
        .setStudent(new StudentSpec("lenet5", 0.5))
        .setDistillation(new DistillationSettings(4.0, 0.9, 3, 64, 0.001, 42L))
        .setPruning(new PruningSettings(PruningMethod.L1_UNSTRUCTURED, 0.5, 1, 0.0005))
        .setStages(List.of(Stage.TEACHER_INFERENCE, Stage.DISTILLATION, Stage.PRUNING))
        .build();
  }

  @Test
  void aValidRequestHasNoViolations() throws Exception {
    assertThat(RequestValidation.validate(valid())).isEmpty();
  }

  @Test
  void eachProblemNamesItsField() throws Exception {
    CompressionRequest request = CompressionRequest.newBuilder(valid())
        .setJobId("../etc")
        .setStudent(new StudentSpec("resnet-9000", 0.0))
        .setDistillation(new DistillationSettings(4.0, 1.5, 0, 64, 0.001, 42L))
        .setPruning(new PruningSettings(PruningMethod.UNSUPPORTED, 1.2, 1, 0.0005))
        .setStages(List.of(Stage.DISTILLATION))
        .build();
    assertThat(RequestValidation.validate(request)).extracting(RequestValidation.Violation::field)
        .containsExactly("jobId", "student.architecture", "student.width", "distillation.alpha",
            "distillation.epochs", "pruning.method", "pruning.targetSparsity", "stages");
  }

  @Test
  void missingFilesAreReportedBeforeAnyWork() throws Exception {
    CompressionRequest request = CompressionRequest.newBuilder(valid())
        .setTeacher(TeacherSpec.newBuilder().setFormat(ModelFormat.BUILT_IN).setArchitecture("convnet").setWidth(1.0)
            .setCheckpointUri(dir.resolve("nope.params").toString()).build())
        .setDataset(new DatasetSpec(DatasetFormat.IDX, dir.resolve("no-data").toString(), 0, 0))
        .build();
    assertThat(RequestValidation.validate(request)).extracting(RequestValidation.Violation::field)
        .containsExactly("teacher.checkpointUri", "dataset.location");
  }
}
