package dev.distillery.launcher;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import dev.distillery.common.config.AllowedRoots;
import dev.distillery.cli.Cli;
import dev.distillery.common.artifacts.ArtifactStore;
import dev.distillery.common.kafka.KafkaTopics;
import dev.distillery.common.ml.Datasets;
import dev.distillery.common.ml.DjlRuntime;
import dev.distillery.common.ml.TrainingLoop;
import dev.distillery.kafka.embedded.EmbeddedKafkaBroker;
import dev.distillery.kafka.embedded.EmbeddedKafkaExtension;
import dev.distillery.schemas.CompressionRequest;
import dev.distillery.schemas.DatasetSpec;
import dev.distillery.schemas.DistillationSettings;
import dev.distillery.schemas.PruningMethod;
import dev.distillery.schemas.PruningSettings;
import dev.distillery.schemas.StudentSpec;
import dev.distillery.schemas.TeacherSpec;
import dev.distillery.schemas.json.PlainJson;
import io.vertx.core.json.JsonObject;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import org.openqa.selenium.By;
import org.openqa.selenium.Dimension;
import org.openqa.selenium.JavascriptExecutor;
import org.openqa.selenium.OutputType;
import org.openqa.selenium.WebElement;
import org.openqa.selenium.chrome.ChromeDriver;
import org.openqa.selenium.chrome.ChromeDriverService;
import org.openqa.selenium.chrome.ChromeOptions;
import org.openqa.selenium.support.ui.Select;
import org.openqa.selenium.support.ui.WebDriverWait;

/**
 * Watching jobs as users do, against the real services and broker, one pipeline for both tests:
 *
 * <ul>
 *   <li>the CLI submits a request from a YAML file and watches it to its results, lists it and
 *       prints its result, and refuses an invalid file naming the field;
 *   <li>the CLI cancels a job the services are running ({@code distillery cancel JOB --watch}), and
 *       job-status, {@code list} and {@code result} show it CANCELLED with its reason. Whether the
 *       stages stop its work is their tests' matter: here only the status is asserted;
 *   <li>the dashboard in a real headless Chromium: it asks for the API token (again when a wrong one
 *       is entered) or takes it from the {@code #token=} link the demo prints; a request is submitted
 *       from the page, an invalid one shows its field, and the job is watched live to DONE with its
 *       results, the event stream read with the token (leaves {@code
 *       target/screenshots/dashboard.png}); then another job is cancelled with its Cancel button and
 *       shown CANCELLED with the reason typed. Skipped where Debian's chromium and chromium-driver are
 *       not installed ({@code .ci/run} installs them).
 * </ul>
 */
class WatchingJobsTest {
  private static final Path CHROMIUM = Path.of("/usr/bin/chromium");
  private static final Path CHROMEDRIVER = Path.of("/usr/bin/chromedriver");
  private static final Path SCREENSHOT = Path.of("target/screenshots/dashboard.png");

  @RegisterExtension
  static final EmbeddedKafkaExtension KAFKA = EmbeddedKafkaExtension.perClass(Map.of());

  @TempDir static Path work;
  private static String bootstrapServers;
  private static CompressionRequest example;
  private static LocalPipeline pipeline;
  /** The services' roots, which the CLI is given too, as its environment would give them. */
  private static AllowedRoots roots;

  @BeforeAll
  static void start(EmbeddedKafkaBroker broker) throws Exception {
    DjlRuntime.start(2);
    bootstrapServers = broker.bootstrapServers();
    KafkaTopics.ensure(bootstrapServers, 2);
    ArtifactStore store = new ArtifactStore(work.resolve("artifacts"));
    DatasetSpec data = DatasetSpec.newBuilder().setLocation(PipelineScenario.SUBSET.toString()).setTrainLimit(2000).build();
    Datasets.TrainTest sets = Datasets.load(data);
    TeacherTraining.Teacher teacher = TeacherTraining.train("convnet", 0.5, sets.train(), sets.test(),
        TrainingLoop.Plan.adam(2, 64, 0.002, 1), store, "teacher.params", line -> {});
    // A small job that still shows everything: two distillation epochs, gradual structured pruning.
    example = CompressionRequest.newBuilder()
        .setJobId("example")
        .setTeacher(TeacherSpec.newBuilder().setArchitecture("convnet").setWidth(0.5)
            .setCheckpointUri(teacher.checkpoint().toUri().toString()).build())
        .setDataset(data)
        .setStudent(StudentSpec.newBuilder().setArchitecture("lenet5").setWidth(1.0).build())
        .setDistillation(DistillationSettings.newBuilder().setEpochs(2).setBatchSize(64).setLearningRate(0.002)
            .setHardLabelBaseline(true).build())
        .setPruning(PruningSettings.newBuilder().setMethod(PruningMethod.LN_STRUCTURED).setTargetSparsity(0.5)
            .setSteps(2).setFineTuneEpochs(1).build())
        .build();
    roots = new AllowedRoots(List.of(store.root().resolve("teachers")), List.of(PipelineScenario.SUBSET.getParent()),
        List.of(store.root()));
    pipeline = LocalPipeline.start(LocalPipeline.keys(bootstrapServers, store.root(), 2, roots.models(),
        roots.datasets()), 0, example);
  }

  @AfterAll
  static void stop() throws Exception {
    if (pipeline != null) {
      pipeline.close();
    }
  }

  @Test
  void theCliSubmitsAYamlRequestWatchesItListsItAndPrintsItsResult() throws Exception {
    JsonNode json = PlainJson.write(example);
    ((ObjectNode) json).put("jobId", "cli-job");
    ((ObjectNode) json).remove("submittedAtMs");
    Path yaml = Files.writeString(work.resolve("request.yaml"), new YAMLMapper().writeValueAsString(json));

    Output submit = cli("submit", yaml.toString(), "--watch");
    assertThat(submit.status()).as(submit.text()).isZero();
    assertThat(submit.text()).contains("submitted cli-job", "DISTILLATION", "[####", "PRUNING",
        "channels removed; hidden layers now [3, 8, 60, 42]", "final checkpoint:");

    Output list = cli("list");
    assertThat(list.text()).containsPattern("cli-job +DONE .*TEACHER_INFERENCE done, DISTILLATION done, PRUNING done");
    Output result = cli("result", "cli-job");
    assertThat(result.status()).isZero();
    assertThat(result.text()).contains("pruned", "sparsity of prunable weights: 0.5000");
    assertThat(cli("result", "no-such-job").status()).isEqualTo(3);
    // The same id again: refused before it is sent, and the finished job's result is not its answer.
    Output reused = cli("submit", yaml.toString(), "--watch");
    assertThat(reused.status()).isEqualTo(2);
    assertThat(reused.text()).contains("jobId: 'cli-job' is already used").doesNotContain("final checkpoint:");

    Path bad = Files.writeString(work.resolve("bad.yaml"),
        new YAMLMapper().writeValueAsString(((ObjectNode) json).put("jobId", "bad-cli-job")).replace("lenet5", "resnet-9000"));
    Output invalid = cli("submit", bad.toString());
    assertThat(invalid.status()).isEqualTo(2);
    assertThat(invalid.text()).contains("student.architecture", "resnet-9000");
  }

  @Test
  void theCliCancelsAJobTheServicesAreRunning() throws Exception {
    JsonNode json = PlainJson.write(example);
    ((ObjectNode) json).put("jobId", "cli-cancelled");
    ((ObjectNode) json).remove("submittedAtMs");
    Path request = Files.writeString(work.resolve("cancelled.json"), json.toString());
    Output submit = cli("submit", request.toString());
    assertThat(submit.status()).as(submit.text()).isZero();
    awaitStatus("cli-cancelled", status -> !status.path("state").asText().equals("ACCEPTED"), Duration.ofMinutes(2));

    Output cancel = cli("cancel", "cli-cancelled", "--reason", "not needed after all", "--watch");
    assertThat(cancel.status()).as(cancel.text()).isZero();
    assertThat(cancel.text()).contains("job cli-cancelled CANCELLED by cli: not needed after all");
    JsonNode status = awaitStatus("cli-cancelled", s -> s.path("state").asText().equals("CANCELLED"),
        Duration.ofSeconds(30));
    assertThat(status.get("cancellation").get("requestedBy").asText()).isEqualTo("cli");
    assertThat(status.get("cancellation").get("reason").asText()).isEqualTo("not needed after all");
    assertThat(cli("list").text()).containsPattern("cli-cancelled +CANCELLED ");
    Output result = cli("result", "cli-cancelled");
    assertThat(result.status()).isEqualTo(4);
    assertThat(result.text()).contains("CANCELLED by cli: not needed after all");
  }

  /** Polls the job-status API until the job's status satisfies {@code wanted}; returns that status. */
  private static JsonNode awaitStatus(String jobId, java.util.function.Predicate<JsonNode> wanted, Duration timeout)
      throws Exception {
    HttpClient http = HttpClient.newHttpClient();
    HttpRequest get = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + pipeline.dashboardPort() + "/api/jobs/"
        + jobId)).header("Authorization", "Bearer " + pipeline.dashboardToken()).build();
    long deadline = System.nanoTime() + timeout.toNanos();
    while (true) {
      HttpResponse<String> response = http.send(get, HttpResponse.BodyHandlers.ofString());
      JsonNode status = response.statusCode() == 200 ? PlainJson.MAPPER.readTree(response.body()) : null;
      if (status != null && wanted.test(status)) {
        return status;
      }
      if (System.nanoTime() > deadline) {
        throw new AssertionError("job " + jobId + " not as wanted within " + timeout + "; last: " + response.body());
      }
      Thread.sleep(200);
    }
  }

  private record Output(int status, String text) {}

  private static Output cli(String... words) {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    int status = new Cli(Map.of("bootstrap.servers", bootstrapServers), roots,
        new PrintStream(bytes, true, StandardCharsets.UTF_8)).run(List.of(words));
    String text = bytes.toString(StandardCharsets.UTF_8);
    System.out.print(text);
    return new Output(status, text);
  }

  @Test
  void theDashboardSubmitsAJobShowsItLiveToDoneWithItsResultsAndCancelsAnother() throws Exception {
    assumeTrue(Files.isExecutable(CHROMIUM) && Files.isExecutable(CHROMEDRIVER),
        "needs Debian's chromium and chromium-driver");
    ChromeDriver browser = chromium();
    try {
      browser.manage().window().setSize(new Dimension(1300, 1500));
      String dashboard = "http://127.0.0.1:" + pipeline.dashboardPort() + "/";
      WebDriverWait wait = new WebDriverWait(browser, Duration.ofSeconds(30));

      // Without a token the page asks for one, and asks again when the one entered is refused.
      browser.get(dashboard);
      WebElement tokenForm = browser.findElement(By.id("token-form"));
      wait.until(b -> tokenForm.isDisplayed());
      browser.findElement(By.id("token")).sendKeys("not-the-token");
      browser.findElement(By.id("token-save")).click();
      wait.until(b -> b.findElement(By.id("token-problem")).getText().contains("refused") && tokenForm.isDisplayed());
      browser.findElement(By.id("token")).sendKeys(pipeline.dashboardToken());
      browser.findElement(By.id("token-save")).click();
      wait.until(b -> !tokenForm.isDisplayed() && b.findElement(By.id("connection")).getText().equals("live"));

      // As the demo prints it: the token in the fragment, which the page keeps and takes off the address bar.
      ((JavascriptExecutor) browser).executeScript("sessionStorage.clear();");
      browser.get("about:blank");
      browser.get(dashboard + "#token=" + pipeline.dashboardToken());
      WebElement request = browser.findElement(By.id("request"));
      wait.until(b -> !request.getAttribute("value").isBlank()); // the example request arrived
      wait.until(b -> b.findElement(By.id("connection")).getText().equals("live"));
      assertThat(browser.getCurrentUrl()).isEqualTo(dashboard);
      assertThat(browser.findElement(By.id("token-form")).isDisplayed()).isFalse();

      // The form shows the request's common choices and writes what is chosen into its JSON.
      String good = request.getAttribute("value");
      assertThat(new Select(browser.findElement(By.id("f-student"))).getFirstSelectedOption().getText()).isEqualTo("lenet5");
      assertThat(browser.findElement(By.cssSelector("#choices [data-stage='PRUNING']")).isSelected()).isTrue();
      Select method = new Select(browser.findElement(By.id("f-pruning-method")));
      assertThat(method.getFirstSelectedOption().getAttribute("value")).isEqualTo("LN_STRUCTURED");
      method.selectByValue("GLOBAL_UNSTRUCTURED");
      browser.findElement(By.cssSelector("#choices [data-stage='QUANTIZATION']")).click();
      JsonObject chosen = new JsonObject(request.getAttribute("value"));
      assertThat(chosen.getJsonObject("pruning").getString("method")).isEqualTo("GLOBAL_UNSTRUCTURED");
      assertThat(chosen.getJsonArray("stages").getList()).containsExactly("TEACHER_INFERENCE", "DISTILLATION", "PRUNING",
          "QUANTIZATION");

      // An invalid request is answered on the page, naming the field.
      setValue(browser, request, good.replace("\"lenet5\"", "\"resnet-9000\""));
      browser.findElement(By.id("submit")).click();
      wait.until(b -> b.findElement(By.id("submit-result")).getText().contains("student.architecture"));

      setValue(browser, request, good);
      browser.findElement(By.id("submit")).click();
      wait.until(b -> b.findElement(By.id("submit-result")).getText().startsWith("submitted "));
      String jobId = browser.findElement(By.id("submit-result")).getAttribute("data-job-id");
      By card = By.cssSelector(".job[data-job-id='" + jobId + "']");
      wait.until(b -> !b.findElements(card).isEmpty());

      // Watched live to the end, without a reload.
      new WebDriverWait(browser, Duration.ofMinutes(10))
          .until(b -> "DONE".equals(b.findElement(card).getAttribute("data-state")));
      WebElement job = browser.findElement(card);
      assertThat(job.findElement(By.cssSelector(".state")).getText()).isEqualTo("DONE");
      assertThat(job.findElements(By.cssSelector(".stage.done"))).extracting(e -> e.getAttribute("data-stage"))
          .containsExactly("TEACHER_INFERENCE", "DISTILLATION", "PRUNING");
      // A loss and an accuracy chart for each stage that reports them.
      assertThat(job.findElements(By.cssSelector("canvas.chart-loss, canvas.chart-accuracy")))
          .extracting(e -> e.getAttribute("class") + " " + e.getAttribute("data-stage"))
          .containsExactly("chart-loss DISTILLATION", "chart-accuracy DISTILLATION", "chart-loss PRUNING",
              "chart-accuracy PRUNING");
      List<String> models = job.findElements(By.cssSelector("table.results tr[data-model]")).stream()
          .map(e -> e.getAttribute("data-model")).toList();
      assertThat(models).containsExactly("teacher", "baseline", "student", "pruned");
      WebElement pruned = job.findElement(By.cssSelector("tr[data-model='pruned']"));
      assertThat(pruned.getText()).contains("lenet5 [3, 8, 60, 42]").contains("%").contains("(sparse)");
      assertThat(job.getText()).contains("speed-up at batch 256");

      Files.createDirectories(SCREENSHOT.getParent());
      Files.copy(browser.getScreenshotAs(OutputType.FILE).toPath(), SCREENSHOT, StandardCopyOption.REPLACE_EXISTING);
      System.out.println("screenshot: " + SCREENSHOT.toAbsolutePath());
      assertThat(job.findElements(By.cssSelector("button.cancel"))).as("no Cancel on a finished job").isEmpty();

      // Another job, cancelled with its button: shown CANCELLED with the reason, the button gone.
      browser.findElement(By.id("submit")).click();
      wait.until(b -> b.findElement(By.id("submit-result")).getText().startsWith("submitted ")
          && !jobId.equals(b.findElement(By.id("submit-result")).getAttribute("data-job-id")));
      String other = browser.findElement(By.id("submit-result")).getAttribute("data-job-id");
      By otherCard = By.cssSelector(".job[data-job-id='" + other + "']");
      wait.until(b -> !b.findElements(otherCard).isEmpty()
          && !b.findElement(otherCard).findElements(By.cssSelector("button.cancel")).isEmpty());
      browser.findElement(otherCard).findElement(By.cssSelector("input.cancel-reason")).sendKeys("changed my mind");
      browser.findElement(otherCard).findElement(By.cssSelector("button.cancel")).click();
      wait.until(b -> "CANCELLED".equals(b.findElement(otherCard).getAttribute("data-state")));
      WebElement cancelled = browser.findElement(otherCard);
      assertThat(cancelled.findElement(By.cssSelector(".state")).getText()).isEqualTo("CANCELLED");
      assertThat(cancelled.findElement(By.cssSelector(".cancellation")).getText())
          .isEqualTo("Cancelled by api: changed my mind");
      assertThat(cancelled.findElements(By.cssSelector("button.cancel"))).isEmpty();
    } finally {
      browser.quit();
    }
  }

  private static ChromeDriver chromium() {
    ChromeOptions options = new ChromeOptions();
    options.setBinary(CHROMIUM.toFile());
    // As root in a container, with no network beyond localhost (see the machine notes in README).
    options.addArguments("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync");
    ChromeDriverService service = new ChromeDriverService.Builder()
        .usingDriverExecutable(new File(CHROMEDRIVER.toString())).build();
    return new ChromeDriver(service, options);
  }

  /** Replaces a textarea's text as a paste would, firing no key events per character. */
  private static void setValue(ChromeDriver browser, WebElement element, String value) {
    // As typing would: the form above the JSON follows it.
    ((JavascriptExecutor) browser).executeScript(
        "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'));", element, value);
  }
}
