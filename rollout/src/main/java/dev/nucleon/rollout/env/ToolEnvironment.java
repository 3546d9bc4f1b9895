package dev.nucleon.rollout.env;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import dev.nucleon.core.env.EnvMessage;
import dev.nucleon.core.env.Environment;
import dev.nucleon.core.env.EnvironmentFactory;
import dev.nucleon.core.env.Episode;
import dev.nucleon.core.env.EpisodeStart;
import dev.nucleon.core.env.StepResult;
import dev.nucleon.core.sandbox.Sandbox;
import dev.nucleon.rollout.tools.CalculatorTool;
import dev.nucleon.rollout.tools.PythonTool;
import dev.nucleon.rollout.tools.Tool;
import dev.nucleon.rollout.tools.ToolCall;
import dev.nucleon.rollout.tools.ToolCallFormat;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Tool use: the model's turn is parsed for calls in its family's format ({@link ToolCallFormat}); each call runs
 * (with a timeout) and its result comes back as a {@code tool} message, after which the model takes another turn. A
 * call that cannot be read, names an unknown tool, has bad arguments, fails or times out comes back as an error
 * message the model can act on (never a crash), and is counted. A turn without calls is the model's answer: the
 * episode ends and the run's reward scores it.
 */
public final class ToolEnvironment implements Environment {

  /** The built-in tools' names. */
  static final List<String> BUILT_IN = List.of("calculator", "python");

  /** Built-in tool {@code name}, configured by the environment's block. */
  static Tool builtIn(String name, Config c) {
    return switch (name) {
      case "calculator" -> new CalculatorTool();
      case "python" -> {
        Config p = c.getConfig("python");
        String dir = p.getString("work-dir").trim();
        Path root = dir.isEmpty() ? Path.of(System.getProperty("java.io.tmpdir")) : Path.of(dir);
        long output = p.getBytes("max-output");
        if (output < 1 || output > 1 << 20) {
          throw new ConfigException.BadValue(p.origin(), "python.max-output", "must be between 1 B and 1 MiB, got "
              + output);
        }
        Duration timeout = p.getDuration("timeout");
        if (timeout.isNegative() || timeout.isZero()) {
          throw new ConfigException.BadValue(p.origin(), "python.timeout", "must be positive, got " + timeout);
        }
        yield new PythonTool(p.getStringList("command"), timeout, root, Sandbox.fromConfig(p), (int) output);
      }
      default -> throw new ConfigException.BadValue(c.origin(), "tools", "unknown tool '" + name + "'; built in: "
          + BUILT_IN);
    };
  }

  private final ToolCallFormat format;
  private final Map<String, Tool> tools;
  private final int maxCalls;
  private final Duration callTimeout;
  private final ExecutorService threads;

  public ToolEnvironment(ToolCallFormat format, List<Tool> tools, int maxCalls, Duration callTimeout) {
    this.format = format;
    this.tools = new LinkedHashMap<>();
    for (Tool t : tools) {
      if (this.tools.put(t.name(), t) != null) {
        throw new IllegalArgumentException("tool '" + t.name() + "' is declared twice");
      }
    }
    this.maxCalls = maxCalls;
    this.callTimeout = callTimeout;
    AtomicInteger n = new AtomicInteger();
    this.threads = Executors.newCachedThreadPool(r -> {
      Thread t = new Thread(r, "nucleon-tool-" + n.incrementAndGet());
      t.setDaemon(true);
      return t;
    });
  }

  /** The declarations the chat template's {@code tools} takes, in order. */
  public List<Map<String, Object>> declarations() {
    return tools.values().stream().map(Tool::declaration).toList();
  }

  @Override
  public Episode start(EpisodeStart start) {
    return new Episode() {
      private long calls;
      private long failed;

      @Override
      public StepResult step(String modelTurn) {
        ToolCallFormat.Parsed parsed = format.parse(modelTurn);
        if (parsed.isAnswer()) {
          return StepResult.end(null, "answered");
        }
        List<EnvMessage> out = new ArrayList<>();
        for (String error : parsed.errors) {
          failed++;
          out.add(EnvMessage.tool("error", "error: " + error));
        }
        int n = 0;
        for (ToolCall call : parsed.calls) {
          if (++n > maxCalls) {
            failed++;
            out.add(EnvMessage.tool(call.name(), "error: at most " + maxCalls + " calls per turn; this one was not "
                + "run"));
            continue;
          }
          calls++;
          String result = run(call);
          if (result.startsWith("error: ")) {
            failed++;
          }
          out.add(EnvMessage.tool(call.name(), result));
        }
        return StepResult.observe(out.toArray(EnvMessage[]::new));
      }

      @Override
      public Map<String, Long> counters() {
        return Map.of("tool_calls", calls, "tool_errors", failed);
      }
    };
  }

  /** The tool's answer, or {@code error: ...} saying what went wrong. */
  private String run(ToolCall call) {
    Tool tool = tools.get(call.name());
    if (tool == null) {
      return "error: unknown tool '" + call.name() + "'; the tools are " + tools.keySet();
    }
    Future<String> f = threads.submit(() -> tool.call(call.arguments()));
    try {
      return f.get(callTimeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (TimeoutException e) {
      f.cancel(true);
      return "error: " + call.name() + " timed out after " + callTimeout.toMillis() + " ms";
    } catch (java.util.concurrent.ExecutionException e) {
      Throwable c = e.getCause();
      return "error: " + (c instanceof IllegalArgumentException ? c.getMessage() : call.name() + " failed: " + c);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      f.cancel(true);
      return "error: interrupted";
    }
  }

  @Override
  public List<String> turnStops() {
    return format.turnStops();
  }

  @Override
  public void close() {
    threads.shutdownNow();
  }

  /** {@code nucleon.environment.tools { format, tools, max-calls, call-timeout }}. */
  public static final class Factory implements EnvironmentFactory {
    @Override
    public String identifier() {
      return "tools";
    }

    @Override
    public ToolEnvironment create(Config config) {
      Config c = config.withFallback(ConfigFactory.defaultReference().getConfig("nucleon.environment.tools"));
      ToolCallFormat format;
      try {
        format = ToolCallFormat.of(c.getString("format"));
      } catch (IllegalArgumentException e) {
        throw new ConfigException.BadValue(c.origin(), "format", e.getMessage());
      }
      List<Tool> tools = new ArrayList<>();
      for (String name : c.getStringList("tools")) {
        tools.add(builtIn(name, c));
      }
      if (tools.isEmpty()) {
        throw new ConfigException.BadValue(c.origin(), "tools", "name at least one tool");
      }
      int maxCalls = c.getInt("max-calls");
      if (maxCalls < 1) {
        throw new ConfigException.BadValue(c.origin(), "max-calls", "must be >= 1, got " + maxCalls);
      }
      Duration timeout = c.getDuration("call-timeout");
      if (timeout.isNegative() || timeout.isZero()) {
        throw new ConfigException.BadValue(c.origin(), "call-timeout", "must be positive, got " + timeout);
      }
      try {
        return new ToolEnvironment(format, tools, maxCalls, timeout);
      } catch (IllegalArgumentException e) {
        throw new ConfigException.BadValue(c.origin(), "tools", e.getMessage());
      }
    }
  }
}
