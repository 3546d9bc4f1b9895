package dev.nucleon.rollout.tools;

import com.fasterxml.jackson.databind.JsonNode;
import dev.nucleon.core.sandbox.Sandbox;
import dev.nucleon.core.sandbox.Workspace;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Runs a Python program the model wrote, in the same process sandbox as the {@code process} and {@code code}
 * rewards: a fresh folder deleted afterwards, the kernel's limits on CPU time, memory, output and processes, no
 * network where the OS allows it, every child killed at the wall-clock limit, programs run as nobody when the JVM is
 * root (and refused when it cannot drop root). The model reads back the exit status, what the program printed (the
 * first {@code maxOutput} bytes) and the end of its standard error.
 */
public final class PythonTool implements Tool {

  private final List<String> command;
  private final Duration timeout;
  private final Path workRoot;
  private final Sandbox sandbox;
  private final Sandbox.Support support;
  private final int maxOutput;

  /**
   * @param command the interpreter and its flags; the program's file name is appended
   * @param maxOutput bytes of standard output the model reads back (standard error: its last 1,000 characters)
   */
  public PythonTool(List<String> command, Duration timeout, Path workRoot, Sandbox sandbox, int maxOutput) {
    if (command.isEmpty()) {
      throw new IllegalArgumentException("python: the command is empty");
    }
    this.command = List.copyOf(command);
    this.timeout = timeout;
    this.workRoot = workRoot;
    this.sandbox = sandbox;
    this.maxOutput = maxOutput;
    this.support = sandbox.prepareForUntrustedCode("python tool", workRoot);
  }

  @Override
  public String name() {
    return "python";
  }

  @Override
  public String description() {
    return "Runs a Python 3 program and returns its exit status and what it printed. No network, no input; "
        + "limited time, memory and output.";
  }

  @Override
  public Map<String, Object> parameters() {
    return Map.of("type", "object", "properties", Map.of("code", Map.of("type", "string",
        "description", "The program; print what you want to read back")), "required", List.of("code"));
  }

  @Override
  public String call(JsonNode arguments) {
    JsonNode code = arguments.get("code");
    if (code == null || !code.isTextual()) {
      throw new IllegalArgumentException("python takes {\"code\": \"...\"}, got " + arguments);
    }
    try (Workspace ws = Workspace.create(workRoot, "nucleon-tool-", support.dropRoot(), false)) {
      Path program = ws.write(ws.work().resolve("main.py"), code.asText());
      Path out = ws.outputFile("stdout");
      Path err = ws.outputFile("stderr");
      List<String> run = new ArrayList<>(command);
      run.add(program.getFileName().toString());
      Workspace.Exit exit = ws.run(sandbox.wrap(run, support), true, Map.of(), null, out, err, timeout);
      if (exit.timedOut()) {
        throw new IllegalArgumentException("python: the program ran past " + timeout.toMillis() + " ms and was "
            + "killed");
      }
      StringBuilder answer = new StringBuilder("exit status ").append(exit.exitCode()).append('\n');
      String printed = Workspace.readAtMost(out, maxOutput, false);
      answer.append(printed);
      if (Files.size(out) > maxOutput) {
        answer.append("\n[output cut at ").append(maxOutput).append(" bytes]");
      }
      String errors = Workspace.tail(err, 1000);
      if (!errors.isEmpty()) {
        answer.append(printed.endsWith("\n") || printed.isEmpty() ? "" : "\n").append("stderr:\n").append(errors);
      }
      return answer.toString();
    } catch (IOException e) {
      throw new IllegalStateException("python: cannot prepare or start the program: " + e.getMessage(), e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalArgumentException("python: interrupted; the program was killed");
    }
  }
}
