package dev.distillery.cli;

import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;
import picocli.CommandLine.ScopeType;

/** The command line's grammar (picocli); each command hands its work to {@link Cli}. */
final class Commands {
  private Commands() {}

  @Command(name = "distillery", mixinStandardHelpOptions = true, version = "distillery 0.1.0",
      description = "Submit, follow, list and cancel Distillery compression jobs, straight from Kafka.",
      subcommands = {Submit.class, Watch.class, ListJobs.class, Result.class, Cancel.class},
      exitCodeListHeading = "%nExit status:%n",
      exitCodeList = {"0:done (cancel: sent, or cancelled already)", "1:the job failed",
          "2:bad usage or an invalid request", "3:no such job, or no result yet", "4:the job was cancelled",
          "5:nothing to cancel: the job had ended", "6:no Kafka broker answered within 5 s"},
      footerHeading = "%nEnvironment:%n",
      footer = {"KAFKA_* (any Kafka client property, e.g. KAFKA_SECURITY_PROTOCOL), and"
          + " DISTILLERY_SCHEMA_REGISTRY_URL (with DISTILLERY_SCHEMA_REGISTRY_USER_INFO) when the services write"
          + " Confluent's wire format through a schema registry."})
  static final class Root implements Callable<Integer> {
    final Cli cli;

    Root(Cli cli) {
      this.cli = cli;
    }

    @Option(names = "--bootstrap-servers", scope = ScopeType.INHERIT, paramLabel = "HOST:PORT",
        description = "Kafka brokers (default: $KAFKA_BOOTSTRAP_SERVERS, else localhost:9092)")
    void bootstrapServers(String servers) {
      cli.bootstrapServers(servers);
    }

    @Option(names = "--output", scope = ScopeType.INHERIT, paramLabel = "text|json", defaultValue = "text",
        description = "text for people (default), json for scripts (list, result, submit)")
    void output(Cli.Output output) {
      cli.output(output);
    }

    @Override
    public Integer call() {
      cli.out().println("a command is needed: submit, watch, list, result, cancel (distillery --help)");
      return 2;
    }
  }

  /** A command that needs the broker: it checks that one answers first. */
  abstract static class KafkaCommand implements Callable<Integer> {
    @ParentCommand
    Root root;

    @Override
    public Integer call() throws Exception {
      return root.cli.brokerAnswers() ? run(root.cli) : Cli.NO_BROKER;
    }

    abstract int run(Cli cli) throws Exception;
  }

  @Command(name = "submit", mixinStandardHelpOptions = true,
      description = "Validate a request (JSON or YAML) and publish it; print its job id.")
  static final class Submit extends KafkaCommand {
    @Parameters(paramLabel = "FILE", description = "the request, FILE.json or FILE.yaml; jobId may be left out")
    Path file;

    @Option(names = "--watch", description = "then follow the job to its end")
    boolean watch;

    @Override
    int run(Cli cli) throws Exception {
      return cli.submit(file, watch);
    }
  }

  @Command(name = "watch", mixinStandardHelpOptions = true,
      description = "Follow a job's progress (fraction done, time left) until it ends; print its results.")
  static final class Watch extends KafkaCommand {
    @Parameters(paramLabel = "JOB")
    String jobId;

    @Override
    int run(Cli cli) throws Exception {
      return cli.watch(jobId);
    }
  }

  @Command(name = "list", mixinStandardHelpOptions = true, description = "Every job and its state.")
  static final class ListJobs extends KafkaCommand {
    @Override
    int run(Cli cli) {
      return cli.list();
    }
  }

  @Command(name = "result", mixinStandardHelpOptions = true, description = "A finished job's results.")
  static final class Result extends KafkaCommand {
    @Parameters(paramLabel = "JOB")
    String jobId;

    @Override
    int run(Cli cli) {
      return cli.result(jobId);
    }
  }

  @Command(name = "cancel", mixinStandardHelpOptions = true,
      description = "Ask every stage to stop a job that has not ended.")
  static final class Cancel extends KafkaCommand {
    @Parameters(paramLabel = "JOB")
    String jobId;

    @Option(names = "--reason", paramLabel = "TEXT", defaultValue = "", description = "why, shown with the job")
    String reason;

    @Option(names = "--watch", description = "then wait for the job's outcome")
    boolean watch;

    @Override
    int run(Cli cli) throws Exception {
      return cli.cancel(jobId, reason, watch);
    }
  }
}
