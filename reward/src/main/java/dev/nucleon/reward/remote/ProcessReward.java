package dev.nucleon.reward.remote;

import dev.nucleon.core.sandbox.Sandbox;
import dev.nucleon.core.sandbox.Workspace;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.typesafe.config.Config;
import dev.nucleon.core.reward.RewardFactory;
import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.reward.ConfigValues;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A reward computed by an external command, one process per batch: how to sandbox code-execution rewards.
 *
 * <ol>
 *   <li>Make a fresh directory for the call ({@code <work-dir>/nucleon-reward-*}), with {@code work/} as the
 *       process's working directory and the input, output and error streams as files beside it.
 *   <li>Write one JSON request per line (see {@link WireFormat}) and start {@code command} with that file as its
 *       standard input and the extra {@code env} variables.
 *   <li>Wait up to {@code timeout}. Past it, kill the process and all its descendants (forcibly) and fail the batch
 *       with "timed out".
 *   <li>A non-zero exit fails the batch with the exit code and the end of standard error. Otherwise read one result
 *       per request from standard output (blank lines ignored): a number or a JSON result; too few or too many
 *       lines, or a line that is neither, fail the batch, naming the line.
 *   <li>Delete the call's directory (unless {@code keep-work-dirs}).
 * </ol>
 */
public final class ProcessReward implements RewardFunction {

  private final List<String> command;
  private final Duration timeout;
  private final Path workRoot;
  private final boolean keepWorkDirs;
  private final Map<String, String> env;
  private final int maxStderr;
  private final Sandbox sandbox;
  private final Sandbox.Support support;

  public ProcessReward(List<String> command, Duration timeout, Path workRoot, boolean keepWorkDirs,
      Map<String, String> env, int maxStderr) {
    this(command, timeout, workRoot, keepWorkDirs, env, maxStderr, Sandbox.NONE);
  }

  /** @param sandbox the limits the command runs under ({@link Sandbox}) */
  public ProcessReward(List<String> command, Duration timeout, Path workRoot, boolean keepWorkDirs,
      Map<String, String> env, int maxStderr, Sandbox sandbox) {
    if (command.isEmpty()) {
      throw new IllegalArgumentException("command is empty");
    }
    this.command = List.copyOf(command);
    this.timeout = timeout;
    this.workRoot = workRoot;
    this.keepWorkDirs = keepWorkDirs;
    this.env = Map.copyOf(env);
    this.maxStderr = maxStderr;
    this.sandbox = sandbox;
    this.support = sandbox.limits() ? Sandbox.support() : new Sandbox.Support(false, false, false);
    sandbox.warnIfPartial(support, "process");
  }

  @Override
  public RewardResult scoreOne(RewardRequest request) {
    return score(List.of(request)).get(0);
  }

  @Override
  public boolean scoresBatches() {
    return true;
  }

  @Override
  public List<RewardResult> score(List<RewardRequest> batch) {
    int n = batch.size();
    Workspace ws;
    try {
      ws = Workspace.create(workRoot, "nucleon-reward-", support.dropRoot(), keepWorkDirs);
    } catch (IOException | RuntimeException e) {
      return WireFormat.allFailed(n, "process: cannot create a working directory under " + workRoot + ": " + e);
    }
    try (ws) {
      return run(batch, ws);
    }
  }

  private List<RewardResult> run(List<RewardRequest> batch, Workspace ws) {
    int n = batch.size();
    Path in = ws.dir().resolve("stdin.jsonl");
    Path out;
    Path err;
    try {
      out = ws.outputFile("stdout.txt");
      err = ws.outputFile("stderr.txt");
      StringBuilder lines = new StringBuilder();
      for (RewardRequest r : batch) {
        lines.append(WireFormat.JSON.writeValueAsString(WireFormat.request(r))).append('\n');
      }
      Files.writeString(in, lines, StandardCharsets.UTF_8);
    } catch (IOException e) {
      return WireFormat.allFailed(n, "process: cannot prepare the input: " + e);
    }
    Workspace.Exit exit;
    try {
      exit = ws.run(sandbox.wrap(command, support), sandbox.limits(), env, in, out, err, timeout);
    } catch (IOException e) {
      return WireFormat.allFailed(n, "process: cannot start " + command + ": " + e.getMessage());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return WireFormat.allFailed(n, "process: interrupted; killed " + command.get(0));
    }
    if (exit.timedOut()) {
      return WireFormat.allFailed(n, "process: timed out after " + timeout.toMillis() + " ms; killed "
          + command.get(0) + " and its children" + stderrTail(err));
    }
    if (exit.exitCode() != 0) {
      return WireFormat.allFailed(n, "process: " + command.get(0) + " exited with " + exit.exitCode()
          + stderrTail(err));
    }
    List<String> output;
    try {
      output = Files.readAllLines(out, StandardCharsets.UTF_8).stream().filter(l -> !l.isBlank()).toList();
    } catch (IOException | UncheckedIOException e) {
      return WireFormat.allFailed(n, "process: cannot read its output: " + e);
    }
    if (output.size() != n) {
      return WireFormat.allFailed(n, "process: wrote " + output.size() + " results for " + n + " requests"
          + stderrTail(err));
    }
    List<RewardResult> results = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      String line = output.get(i).strip();
      try {
        JsonNode node = WireFormat.JSON.readTree(line);
        results.add(WireFormat.result(node, "process"));
      } catch (JsonProcessingException | IllegalArgumentException e) {
        String why = e instanceof IllegalArgumentException ? e.getMessage() : "not a number or JSON";
        return WireFormat.allFailed(n, "process: output line " + (i + 1) + " is malformed ("
            + why + "): " + WireFormat.abbreviate(line));
      }
    }
    return results;
  }

  private String stderrTail(Path err) {
    String text = Workspace.tail(err, maxStderr);
    return text.isEmpty() ? "" : "; stderr: " + text;
  }

  /** {@code nucleon.reward.process { command, timeout, work-dir, keep-work-dirs, env, max-stderr }}. */
  public static final class Factory implements RewardFactory {
    @Override
    public String identifier() {
      return "process";
    }

    @Override
    public RewardFunction create(Config config) {
      Config c = ConfigValues.withDefaults(config, "process");
      List<String> command = ConfigValues.stringList(c, "command");
      if (command.isEmpty() || command.get(0).isBlank()) {
        throw ConfigValues.bad(c, "command", "is empty: give the program and its arguments, e.g. "
            + "[\"python3\", \"score.py\"]");
      }
      String dir = ConfigValues.string(c, "work-dir").trim();
      Path root = dir.isEmpty() ? Paths.get(System.getProperty("java.io.tmpdir")) : Paths.get(dir);
      Map<String, String> env = new LinkedHashMap<>();
      if (c.hasPath("env")) {
        Config e = c.getConfig("env");
        for (String key : e.root().keySet()) {
          env.put(key, e.getString("\"" + key + "\""));
        }
      }
      return new ProcessReward(command, ConfigValues.positiveDuration(c, "timeout"), root,
          ConfigValues.bool(c, "keep-work-dirs"), env, ConfigValues.intAtLeast(c, "max-stderr", 0),
          Sandbox.fromConfig(c));
    }
  }
}
