package dev.nucleon.actors.cli;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import com.typesafe.config.ConfigParseOptions;
import com.typesafe.config.ConfigValueFactory;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.reward.GuardedReward;
import dev.nucleon.reward.Rewards;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code nucleon score}: scores JSON lines with a reward, as a run would.
 *
 * <p>Input, one JSON object per line: {@code response} (the completion, required), {@code gold} (the reference
 * answer), optional {@code prompt}, optional {@code tokens} (completion token ids); every other field becomes request
 * metadata (lists and objects as JSON text, as dataset fields carry them: Countdown's {@code numbers}, the code
 * reward's {@code tests}). Output, one line per scored input: {@code {"line": N, "reward": R, "components": {...},
 * "outcome": "ok"|"failed", "reason": ...}}; a failed score has {@code "reward": null}. A malformed input line is reported on stderr with its number and skipped; the
 * exit code is then 1.
 */
@Command(name = "score", mixinStandardHelpOptions = true,
    description = {"Scores JSON lines {\"response\", \"gold\", \"prompt\"?} with a reward and prints one JSON "
        + "line per input: {\"line\", \"reward\", \"components\", \"outcome\", \"reason\"}."})
final class ScoreCommand implements Callable<Integer> {

  private static final ObjectMapper JSON = new ObjectMapper();

  @Spec
  CommandSpec spec;

  @Option(names = "--reward", required = true, paramLabel = "NAME",
      description = "reward identifier (gsm8k, math, countdown, format, length, composite, match, http, process, "
          + "or a third-party one on the classpath)")
  String reward;

  @Option(names = "--config", paramLabel = "FILE",
      description = "HOCON file with nucleon.reward settings (e.g. nucleon.reward.gsm8k.mode = strict)")
  Path config;

  @Option(names = "--in", required = true, paramLabel = "FILE", description = "JSON lines to score; - for stdin")
  String in;

  @Option(names = "--batch-size", defaultValue = "64",
      description = "requests scored per batch (default: ${DEFAULT-VALUE})")
  int batchSize;

  /** One parsed input line. */
  private record Item(int line, RewardRequest request) {}

  @Override
  public Integer call() throws IOException {
    if (batchSize < 1) {
      throw new IllegalArgumentException("--batch-size must be >= 1, got " + batchSize);
    }
    PrintWriter out = spec.commandLine().getOut();
    PrintWriter err = spec.commandLine().getErr();
    int malformed = 0;
    try (GuardedReward scorer = Rewards.fromConfig(loadConfig()); BufferedReader reader = open()) {
      List<Item> batch = new ArrayList<>();
      String text;
      int lineNo = 0;
      while ((text = reader.readLine()) != null) {
        lineNo++;
        if (text.isBlank()) {
          continue;
        }
        try {
          batch.add(new Item(lineNo, parse(text)));
        } catch (IllegalArgumentException e) {
          err.println("line " + lineNo + ": " + e.getMessage() + "; skipped");
          err.flush();
          malformed++;
          continue;
        }
        if (batch.size() == batchSize) {
          write(scorer, batch, out);
        }
      }
      write(scorer, batch, out);
    }
    return malformed == 0 ? 0 : 1;
  }

  private Config loadConfig() {
    Config base = ConfigFactory.empty();
    if (config != null) {
      if (!Files.isRegularFile(config)) {
        throw new IllegalArgumentException("--config " + config + ": no such file");
      }
      base = ConfigFactory.parseFile(config.toFile(), ConfigParseOptions.defaults().setAllowMissing(false));
    }
    return base.withValue("nucleon.reward.name", ConfigValueFactory.fromAnyRef(reward))
        .withFallback(ConfigFactory.defaultReference()).resolve();
  }

  private BufferedReader open() throws IOException {
    if (in.equals("-")) {
      return new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    }
    try {
      return Files.newBufferedReader(Path.of(in), StandardCharsets.UTF_8);
    } catch (NoSuchFileException e) {
      throw new IllegalArgumentException("--in " + in + ": no such file");
    }
  }

  /** A request from one JSON line; a malformed line throws with what is wrong. */
  static RewardRequest parse(String text) {
    JsonNode node;
    try {
      node = JSON.readTree(text);
    } catch (JsonProcessingException e) {
      throw new IllegalArgumentException("not JSON (" + e.getOriginalMessage() + ")");
    }
    if (node == null || !node.isObject()) {
      throw new IllegalArgumentException("expected a JSON object");
    }
    JsonNode response = node.get("response");
    if (response == null || !response.isTextual()) {
      throw new IllegalArgumentException("missing string field \"response\"");
    }
    String gold = scalar(node.get("gold"), "gold");
    String prompt = scalar(node.get("prompt"), "prompt");
    int[] tokens = new int[0];
    JsonNode t = node.get("tokens");
    if (t != null && !t.isNull()) {
      if (!t.isArray()) {
        throw new IllegalArgumentException("\"tokens\" must be an array of integers");
      }
      tokens = new int[t.size()];
      for (int i = 0; i < t.size(); i++) {
        if (!t.get(i).canConvertToInt() || !t.get(i).isIntegralNumber()) {
          throw new IllegalArgumentException("\"tokens\"[" + i + "] is not an integer");
        }
        tokens[i] = t.get(i).intValue();
      }
    }
    Map<String, String> metadata = new LinkedHashMap<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> f = it.next();
      String key = f.getKey();
      if (key.equals("response") || key.equals("gold") || key.equals("prompt") || key.equals("tokens")) {
        continue;
      }
      JsonNode v = f.getValue();
      if (!v.isNull()) {
        // lists and objects as JSON text, as a dataset's metadata fields carry them (the code reward's tests)
        metadata.put(key, v.isValueNode() ? v.asText() : v.toString());
      }
    }
    return new RewardRequest(prompt, response.asText(), tokens, gold, metadata);
  }

  private static String scalar(JsonNode v, String field) {
    if (v == null || v.isNull()) {
      return "";
    }
    if (!v.isValueNode()) {
      throw new IllegalArgumentException("\"" + field + "\" must be a string or a number");
    }
    return v.asText();
  }

  private static void write(GuardedReward scorer, List<Item> batch, PrintWriter out) {
    if (batch.isEmpty()) {
      return;
    }
    List<RewardResult> results = scorer.score(batch.stream().map(Item::request).toList());
    for (int i = 0; i < batch.size(); i++) {
      RewardResult r = results.get(i);
      ObjectNode o = JSON.createObjectNode();
      o.put("line", batch.get(i).line());
      if (r.isOk()) {
        o.put("reward", r.reward());
      } else {
        o.putNull("reward");
      }
      ObjectNode c = o.putObject("components");
      r.components().forEach(c::put);
      o.put("outcome", r.outcome().label());
      if (r.reason() == null) {
        o.putNull("reason");
      } else {
        o.put("reason", r.reason());
      }
      try {
        out.println(JSON.writeValueAsString(o));
      } catch (JsonProcessingException e) {
        throw new UncheckedIOException(e);
      }
    }
    out.flush();
    batch.clear();
  }
}
