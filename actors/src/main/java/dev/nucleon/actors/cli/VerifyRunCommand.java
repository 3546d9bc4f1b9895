package dev.nucleon.actors.cli;

import dev.nucleon.actors.run.Provenance;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code nucleon verify-run RUN_DIR}: hashes a run's recorded inputs again and says what changed since. */
@Command(name = "verify-run", mixinStandardHelpOptions = true,
    description = {"Hashes the config and every model, tokenizer, adapter and dataset file a run's provenance.json "
        + "names, and prints each as unchanged, CHANGED or MISSING. Exit code 0 when nothing changed, 1 otherwise."})
final class VerifyRunCommand implements Callable<Integer> {

  @Spec
  CommandSpec spec;

  @Parameters(index = "0", paramLabel = "RUN_DIR", description = "a run directory (holds provenance.json)")
  Path runDir;

  @Override
  public Integer call() throws Exception {
    if (!Files.isDirectory(runDir)) {
      throw new NoSuchFileException(runDir.toString(), null, "not a run directory");
    }
    List<Provenance.Change> changes = Provenance.verify(runDir);
    PrintWriter out = spec.commandLine().getOut();
    int changed = 0;
    int missing = 0;
    for (Provenance.Change c : changes) {
      if (c.now().equals("missing")) {
        missing++;
        out.printf("MISSING    %-13s %s (sha256 was %s)%n", c.role(), c.path(), c.was());
      } else if (c.changed()) {
        changed++;
        out.printf("CHANGED    %-13s %s (sha256 was %s, now %s)%n", c.role(), c.path(), c.was(), c.now());
      } else {
        out.printf("unchanged  %-13s %s%n", c.role(), c.path());
      }
    }
    out.printf("%d inputs: %d unchanged, %d changed, %d missing%n", changes.size(),
        changes.size() - changed - missing, changed, missing);
    out.flush();
    return changed + missing == 0 ? 0 : 1;
  }
}
