package dev.distillery.common;

import static org.assertj.core.api.Assertions.assertThat;

import dev.distillery.common.config.AllowedRoots;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.Augmentation;
import dev.distillery.schemas.DatasetSpec;
import dev.distillery.schemas.DistillationSettings;
import dev.distillery.schemas.LearningRateSchedule;
import dev.distillery.schemas.OptimizerKind;
import dev.distillery.schemas.ModelFormat;
import dev.distillery.schemas.PruningMethod;
import dev.distillery.schemas.PruningSettings;
import dev.distillery.schemas.QuantizationSettings;
import dev.distillery.schemas.SoftLabelSource;
import dev.distillery.schemas.Stage;
import dev.distillery.schemas.StudentSpec;
import dev.distillery.schemas.TeacherSpec;
import dev.distillery.schemas.TransferSettings;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class RequestValidationTest {
  @TempDir
  Path dir;
  /** The artifact root: apart from the model root, as outputs must be. */
  @TempDir
  Path out;

  private RequestValidation validation() {
    return new RequestValidation(new AllowedRoots(List.of(dir), List.of(dir), List.of(out)));
  }

  private CompressionRequest valid() throws Exception {
    Path teacher = Files.writeString(dir.resolve("teacher.params"), "weights");
    return CompressionRequest.newBuilder()
        .setJobId("job-1")
        .setTeacher(TeacherSpec.newBuilder().setFormat(ModelFormat.BUILT_IN).setArchitecture("convnet").setWidth(1.0)
            .setCheckpointUri(teacher.toUri().toString()).build())
        .setDataset(DatasetSpec.newBuilder().setLocation(dir.toString()).setTrainLimit(0).setTestLimit(0).build())
        .setStudent(StudentSpec.newBuilder().setArchitecture("lenet5").setWidth(0.5).build())
        .setDistillation(DistillationSettings.newBuilder().setTemperature(4.0).setAlpha(0.9).setEpochs(3).setBatchSize(64).setLearningRate(0.001).setSeed(42L).build())
        .setPruning(PruningSettings.newBuilder().setMethod(PruningMethod.L1_UNSTRUCTURED).setTargetSparsity(0.5).setFineTuneEpochs(1).setLearningRate(0.0005).build())
        .setStages(List.of(Stage.TEACHER_INFERENCE, Stage.DISTILLATION, Stage.PRUNING))
        .build();
  }

  @Test
  void aValidRequestHasNoViolations() throws Exception {
    assertThat(validation().validate(valid())).isEmpty();
  }

  @Test
  void eachProblemNamesItsField() throws Exception {
    CompressionRequest request = CompressionRequest.newBuilder(valid())
        .setJobId("../etc")
        .setStudent(StudentSpec.newBuilder().setArchitecture("resnet-9000").setWidth(0.0).build())
        .setDistillation(DistillationSettings.newBuilder().setTemperature(4.0).setAlpha(1.5).setEpochs(0).setBatchSize(64).setLearningRate(0.001).setSeed(42L).build())
        .setPruning(PruningSettings.newBuilder().setMethod(PruningMethod.UNSUPPORTED).setTargetSparsity(1.2).setFineTuneEpochs(1).setLearningRate(0.0005).build())
        .setStages(List.of(Stage.DISTILLATION))
        .build();
    assertThat(validation().validate(request)).extracting(RequestValidation.Violation::field)
        .containsExactly("jobId", "student.architecture", "student.width", "distillation.alpha",
            "distillation.epochs", "pruning.method", "pruning.targetSparsity", "stages");
  }

  @Test
  void trainingSettingsAreChecked() throws Exception {
    CompressionRequest request = CompressionRequest.newBuilder(valid())
        .setDistillation(DistillationSettings.newBuilder(valid().getDistillation())
            .setOptimizer(OptimizerKind.UNSUPPORTED).setMomentum(1.5).setSchedule(LearningRateSchedule.UNSUPPORTED)
            .setStepEpochs(0).setValidationSplit(0.9).build())
        .setDataset(DatasetSpec.newBuilder(valid().getDataset()).setClasses(List.of(3, 3)).build())
        .build();
    assertThat(validation().validate(request)).extracting(RequestValidation.Violation::field)
        .containsExactly("dataset.classes", "distillation.optimizer", "distillation.momentum", "distillation.schedule",
            "distillation.stepEpochs", "distillation.validationSplit");
  }

  @Test
  void transferKeepsThePretrainedArchitectureAndNeedsNoTeacherStages() throws Exception {
    CompressionRequest transfer = CompressionRequest.newBuilder(valid())
        .setStudent(StudentSpec.newBuilder().setArchitecture("convnet").setWidth(1.0).build())
        .setDataset(DatasetSpec.newBuilder(valid().getDataset()).setClasses(List.of(5, 6, 7, 8, 9)).build())
        .setTransfer(TransferSettings.newBuilder().setPretrainedClasses(5).build())
        .setStages(List.of(Stage.TRANSFER, Stage.PRUNING))
        .build();
    assertThat(validation().validate(transfer)).isEmpty();
    CompressionRequest wrong = CompressionRequest.newBuilder(transfer)
        .setStudent(StudentSpec.newBuilder().setArchitecture("lenet5").setWidth(1.0).build())
        .setTransfer(TransferSettings.newBuilder().setPretrainedClasses(0).setBackboneLearningRateFactor(-1).build())
        .setStages(List.of(Stage.TEACHER_INFERENCE, Stage.TRANSFER))
        .build();
    assertThat(validation().validate(wrong)).extracting(RequestValidation.Violation::field)
        .containsExactly("stages", "student.architecture", "transfer.pretrainedClasses",
            "transfer.backboneLearningRateFactor");
  }

  @Test
  void torchScriptModelsAreCheckedWhereTheyAreUsed() throws Exception {
    String file = valid().getTeacher().getCheckpointUri();
    TeacherSpec module = TeacherSpec.newBuilder().setFormat(ModelFormat.TORCHSCRIPT).setArchitecture(null)
        .setCheckpointUri(file).build();
    // Pruning a TorchScript teacher: the student is not used, whatever it says.
    CompressionRequest pruneOnly = CompressionRequest.newBuilder(valid()).setTeacher(module)
        .setStudent(StudentSpec.newBuilder().setArchitecture("").setFormat(ModelFormat.UNSUPPORTED).build())
        .setStages(List.of(Stage.TEACHER_INFERENCE, Stage.PRUNING)).build();
    assertThat(validation().validate(pruneOnly)).isEmpty();
    CompressionRequest structured = CompressionRequest.newBuilder(pruneOnly)
        .setPruning(PruningSettings.newBuilder(valid().getPruning()).setMethod(PruningMethod.LN_STRUCTURED).build()).build();
    assertThat(validation().validate(structured)).extracting(RequestValidation.Violation::field)
        .containsExactly("pruning.method");
    CompressionRequest quantized = CompressionRequest.newBuilder(pruneOnly)
        .setStages(List.of(Stage.TEACHER_INFERENCE, Stage.PRUNING, Stage.QUANTIZATION)).build();
    assertThat(validation().validate(quantized)).extracting(RequestValidation.Violation::field)
        .containsExactly("teacher.format");
    CompressionRequest distilledModule = CompressionRequest.newBuilder(valid())
        .setStudent(StudentSpec.newBuilder().setFormat(ModelFormat.TORCHSCRIPT).setArchitecture("mine")
            .setCheckpointUri(file).build())
        .setStages(List.of(Stage.TEACHER_INFERENCE, Stage.DISTILLATION, Stage.QUANTIZATION)).build();
    assertThat(validation().validate(distilledModule)).extracting(RequestValidation.Violation::field)
        .containsExactly("student.format");
    CompressionRequest noCalibration = CompressionRequest.newBuilder(valid())
        .setQuantization(new QuantizationSettings(0))
        .setStages(List.of(Stage.TEACHER_INFERENCE, Stage.DISTILLATION, Stage.QUANTIZATION)).build();
    assertThat(validation().validate(noCalibration)).extracting(RequestValidation.Violation::field)
        .containsExactly("quantization.calibrationImages");
    CompressionRequest noModule = CompressionRequest.newBuilder(valid())
        .setStudent(StudentSpec.newBuilder().setFormat(ModelFormat.TORCHSCRIPT).setArchitecture("mine").build()).build();
    assertThat(validation().validate(noModule)).extracting(RequestValidation.Violation::field)
        .containsExactly("student.checkpointUri");
    CompressionRequest transferWithoutHead = CompressionRequest.newBuilder(valid()).setTeacher(module)
        .setStages(List.of(Stage.TRANSFER)).build();
    assertThat(validation().validate(transferWithoutHead)).extracting(RequestValidation.Violation::field)
        .containsExactly("transfer.headParameters");
    CompressionRequest builtInWithHead = CompressionRequest.newBuilder(valid())
        .setStudent(StudentSpec.newBuilder(valid().getStudent()).setArchitecture(valid().getTeacher().getArchitecture())
            .setWidth(valid().getTeacher().getWidth()).build())
        .setTransfer(TransferSettings.newBuilder().setHeadParameters(List.of("fc.weight")).build())
        .setStages(List.of(Stage.TRANSFER)).build();
    assertThat(validation().validate(builtInWithHead)).extracting(RequestValidation.Violation::field)
        .containsExactly("transfer.headParameters");
  }

  @Test
  void pruningSettingsAreChecked() throws Exception {
    CompressionRequest request = CompressionRequest.newBuilder(valid())
        .setPruning(PruningSettings.newBuilder().setMethod(PruningMethod.GLOBAL_UNSTRUCTURED).setTargetSparsity(0.5)
            .setNorm(0).setSteps(0).setInitialSparsity(0.6).setLayerSparsity(java.util.Map.of("01Conv2d_weight", 0.3))
            .build())
        .build();
    assertThat(validation().validate(request)).extracting(RequestValidation.Violation::field)
        .containsExactly("pruning.norm", "pruning.steps", "pruning.initialSparsity", "pruning.layerSparsity");
  }

  @Test
  void budgetsSoftLabelsSmoothingAndAugmentationAreChecked() throws Exception {
    CompressionRequest request = CompressionRequest.newBuilder(valid())
        .setDistillation(DistillationSettings.newBuilder(valid().getDistillation()).setLabelSmoothing(1.0)
            .setAugmentation(Augmentation.UNSUPPORTED).build())
        .setPruning(PruningSettings.newBuilder(valid().getPruning()).setDistillFrom(SoftLabelSource.UNSUPPORTED)
            .setMaxAccuracyLoss(Double.NaN).build())
        .build();
    assertThat(validation().validate(request)).extracting(RequestValidation.Violation::field)
        .containsExactly("distillation.labelSmoothing", "distillation.augmentation", "pruning.distillFrom",
            "pruning.maxAccuracyLoss");
    CompressionRequest noValidationSplit = CompressionRequest.newBuilder(valid())
        .setDistillation(DistillationSettings.newBuilder(valid().getDistillation()).setValidationSplit(0).build())
        .setPruning(PruningSettings.newBuilder(valid().getPruning()).setMaxAccuracyLoss(0.5).build())
        .build();
    assertThat(validation().validate(noValidationSplit)).extracting(RequestValidation.Violation::problem)
        .containsExactly("is judged on held-out samples: needs distillation.validationSplit above 0, was 0.0");
    CompressionRequest transferFromTeacher = CompressionRequest.newBuilder(valid())
        .setStudent(StudentSpec.newBuilder(valid().getStudent()).setArchitecture(valid().getTeacher().getArchitecture())
            .setWidth(valid().getTeacher().getWidth()).build())
        .setPruning(PruningSettings.newBuilder(valid().getPruning()).setDistillFrom(SoftLabelSource.TEACHER).build())
        .setStages(List.of(Stage.TRANSFER, Stage.PRUNING)).build();
    assertThat(validation().validate(transferFromTeacher)).extracting(RequestValidation.Violation::field)
        .containsExactly("pruning.distillFrom");
  }

  @Test
  void missingFilesAreReportedBeforeAnyWork() throws Exception {
    CompressionRequest request = CompressionRequest.newBuilder(valid())
        .setTeacher(TeacherSpec.newBuilder().setFormat(ModelFormat.BUILT_IN).setArchitecture("convnet").setWidth(1.0)
            .setCheckpointUri(dir.resolve("nope.params").toString()).build())
        .setDataset(DatasetSpec.newBuilder().setLocation(dir.resolve("no-data").toString()).setTrainLimit(0).setTestLimit(0).build())
        .build();
    assertThat(validation().validate(request)).extracting(RequestValidation.Violation::field)
        .containsExactly("teacher.checkpointUri", "dataset.location");
  }

  /** Outside the roots: the same answer whether the file exists or not, so nothing can be probed. */
  @Test
  void pathsOutsideTheRootsAreRefusedWithoutSayingWhetherTheyExist(@TempDir Path elsewhere) throws Exception {
    Path secret = Files.writeString(elsewhere.resolve("secret.params"), "weights");
    Files.createSymbolicLink(dir.resolve("link.params"), secret);
    Files.createSymbolicLink(dir.resolve("linked-dir"), elsewhere);
    List<String> outside = List.of(
        secret.toString(),                                   // absolute, exists
        elsewhere.resolve("missing.params").toString(),      // absolute, does not exist
        secret.toUri().toString(),                           // file: URI
        dir.resolve("../" + dir.relativize(secret.getParent().getParent()) + "/secret.params").toString(),
        dir + "/nothing/../../" + elsewhere.getFileName() + "/secret.params", // .. through a missing directory
        dir.resolve("link.params").toString(),               // a symbolic link out of the root
        dir.resolve("linked-dir/secret.params").toString(),  // through a linked directory
        "http://example.com/teacher.params", "jar:file:/x.jar!/a", "file://host/share/teacher.params");
    for (String uri : outside) {
      CompressionRequest request = CompressionRequest.newBuilder(valid())
          .setTeacher(TeacherSpec.newBuilder(valid().getTeacher()).setCheckpointUri(uri).build()).build();
      assertThat(validation().validate(request)).as(uri).extracting(Object::toString).singleElement()
          .asString().startsWith("teacher.checkpointUri: ").doesNotContain("no file", uri);
    }
    Path inside = Files.writeString(dir.resolve("in.params"), "w");
    for (String uri : List.of(inside.toString(), inside.toUri().toString(), dir + "/sub/../in.params")) {
      CompressionRequest request = CompressionRequest.newBuilder(valid())
          .setTeacher(TeacherSpec.newBuilder(valid().getTeacher()).setCheckpointUri(uri).build()).build();
      assertThat(validation().validate(request)).as(uri).isEmpty();
    }
    CompressionRequest relative = CompressionRequest.newBuilder(valid())
        .setDataset(DatasetSpec.newBuilder(valid().getDataset()).setLocation("datasets/fashion-mnist").build()).build();
    assertThat(validation().validate(relative)).extracting(Object::toString)
        .containsExactly("dataset.location: must be an absolute path or file: URI");
  }

  @Test
  void outputsGoOnlyUnderTheArtifactRoots() throws Exception {
    for (String uri : List.of("file:///tmp/anything", dir.toString(), out.resolve("../elsewhere").toString())) {
      CompressionRequest request = CompressionRequest.newBuilder(valid()).setOutputUri(uri).build();
      assertThat(validation().validate(request)).as(uri).extracting(Object::toString)
          .containsExactly("outputUri: outside the allowed roots");
    }
    CompressionRequest inside = CompressionRequest.newBuilder(valid()).setOutputUri(out.resolve("mine").toUri().toString()).build();
    assertThat(validation().validate(inside)).isEmpty();
    // Not the root itself, nor the store's own directories (claims, the trainer's state, teachers).
    for (Path own : List.of(out, out.resolve(".jobs/job-1.TEACHER_INFERENCE.done"), out.resolve("training/x"),
        out.resolve("teachers"))) {
      CompressionRequest request = CompressionRequest.newBuilder(valid()).setOutputUri(own.toString()).build();
      assertThat(validation().validate(request)).as(own.toString()).extracting(RequestValidation.Violation::field)
          .containsExactly("outputUri");
    }
    RequestValidation overlapping = new RequestValidation(new AllowedRoots(List.of(out.resolve("models")), List.of(dir),
        List.of(out)));
    assertThat(overlapping.validate(CompressionRequest.newBuilder(valid()).setOutputUri(out.resolve("models/m").toString())
        .setTeacher(TeacherSpec.newBuilder(valid().getTeacher()).setCheckpointUri(out.resolve("models/t").toString()).build())
        .build())).extracting(Object::toString).contains("outputUri: must be a directory of its own, not an artifact "
            + "root, a model root or the store's own [training, teachers, .jobs]");
  }

  /** What validation resolved is what a stage opens: links before "..", and a scheme in capitals. */
  @Test
  void theCheckedPathIsThePathUsed() throws Exception {
    Path runs = Files.createDirectories(out.resolve("runs/r1"));
    Files.createSymbolicLink(out.resolve("latest"), runs);
    String climbing = out.resolve("latest") + "/../../x"; // latest/.. is runs: this is <out>/x
    CompressionRequest request = CompressionRequest.newBuilder(valid()).setOutputUri(climbing).build();
    assertThat(validation().validate(request)).isEmpty();
    assertThat(new dev.distillery.common.artifacts.ArtifactStore(dir).forOutput(climbing).root())
        .isEqualTo(out.toRealPath().resolve("x"));
    String capitals = "FILE:" + out.resolve("y");
    assertThat(validation().validate(CompressionRequest.newBuilder(valid()).setOutputUri(capitals).build())).isEmpty();
    assertThat(new dev.distillery.common.artifacts.ArtifactStore(dir).forOutput(capitals).root())
        .isEqualTo(out.toRealPath().resolve("y"));
  }
}
