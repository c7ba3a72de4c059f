package dev.distillery.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.distillery.common.config.AllowedRoots;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The command line's grammar, help, completion and exit statuses, through its real entry point, with no broker. */
class CliCommandsTest {
  private record Output(int status, String text, long millis) {}

  private static Output cli(String bootstrapServers, String... words) {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    long start = System.nanoTime();
    int status = new Cli(Map.of("bootstrap.servers", bootstrapServers), new AllowedRoots(List.of(), List.of(), List.of()),
        new PrintStream(bytes, true, StandardCharsets.UTF_8)).run(List.of(words));
    return new Output(status, bytes.toString(StandardCharsets.UTF_8), (System.nanoTime() - start) / 1_000_000);
  }

  @Test
  void everyCommandHasItsHelpAndTheExitStatusesAreListed() {
    Output help = cli("localhost:9092", "--help");
    assertThat(help.status()).isZero();
    assertThat(help.text()).contains("submit", "watch", "list", "result", "cancel", "generate-completion",
        "Exit status", "6   no Kafka broker answered within 5 s");
    Output cancel = cli("localhost:9092", "cancel", "--help");
    assertThat(cancel.status()).isZero();
    assertThat(cancel.text()).contains("Usage: distillery cancel", "--reason=TEXT", "--watch", "--bootstrap-servers");
    assertThat(cli("localhost:9092", "frobnicate").status()).isEqualTo(2);
    assertThat(cli("localhost:9092", "cancel").status()).as("a missing job id").isEqualTo(2);
    assertThat(cli("localhost:9092", "--output", "yaml", "list").status()).isEqualTo(2);
  }

  @Test
  void bashCompletionIsGenerated() {
    Output completion = cli("localhost:9092", "generate-completion");
    assertThat(completion.status()).isZero();
    assertThat(completion.text()).contains("complete -F", "submit", "cancel");
  }

  /** A port nobody listens on: the answer comes within seconds, and says what to do. */
  @Test
  void anUnreachableBrokerIsReportedWithinSeconds() throws Exception {
    int port;
    try (ServerSocket socket = new ServerSocket(0)) {
      port = socket.getLocalPort();
    }
    for (String command : List.of("list", "result")) {
      Output output = command.equals("list") ? cli("127.0.0.1:" + port, "list")
          : cli("127.0.0.1:" + port, "result", "some-job");
      assertThat(output.status()).as(command).isEqualTo(Cli.NO_BROKER);
      assertThat(output.text()).contains("no Kafka broker answered at 127.0.0.1:" + port + " within 5 s",
          "--bootstrap-servers");
      assertThat(output.millis()).as(command + " took").isLessThan(15_000);
    }
  }
}
