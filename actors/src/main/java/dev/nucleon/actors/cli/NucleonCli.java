package dev.nucleon.actors.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code nucleon} command: every user-facing entry point of the project. */
@Command(
    name = "nucleon",
    mixinStandardHelpOptions = true,
    versionProvider = NucleonCli.Version.class,
    description = "Asynchronous RL post-training of language models on Apache Pekko.",
    subcommands = {TrainCommand.class, NodeCommand.class, PretrainCommand.class, GenerateCommand.class, LogitsCommand.class, MergeCommand.class, BenchCommand.class, ScoreCommand.class, StatusCommand.class, PlotCommand.class, VerifyRunCommand.class, ServeCommand.class,
        CommandLine.HelpCommand.class})
public final class NucleonCli {

  public static void main(String[] args) {
    System.exit(run(args));
  }

  /** Runs the command line and returns the exit code (0 ok, 1 failure, 2 usage error). */
  public static int run(String... args) {
    return commandLine().execute(args);
  }

  /** The configured command line (tests call it with their own output writers). */
  public static CommandLine commandLine() {
    CommandLine cli = new CommandLine(new NucleonCli());
    cli.setExecutionExceptionHandler((ex, line, parsed) -> {
      // a user error (bad file, bad value) gets its message, not a stack trace
      line.getErr().println("nucleon " + line.getCommandName() + ": " + ex.getMessage());
      if (Boolean.getBoolean("nucleon.debug")) {
        ex.printStackTrace(line.getErr());
      }
      return 1;
    });
    return cli;
  }

  static final class Version implements CommandLine.IVersionProvider {
    @Override
    public String[] getVersion() {
      String v = NucleonCli.class.getPackage().getImplementationVersion();
      return new String[] {"nucleon " + (v == null ? "dev" : v)};
    }
  }
}
