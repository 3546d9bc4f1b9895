package dev.nucleon.reward.judge;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.typesafe.config.Config;
import dev.nucleon.core.http.JsonPoster;
import dev.nucleon.core.reward.RewardFactory;
import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.reward.ConfigValues;
import dev.nucleon.reward.remote.RemoteSettings;
import java.net.URI;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A language model as the judge: each completion is put into a prompt with its question and reference, sent to an
 * OpenAI-compatible server ({@code ./nucleon serve}, vLLM, SGLang, OpenAI), and the score in the judge's answer is
 * the reward.
 *
 * <ol>
 *   <li>Render {@code prompt}: {@code {question}} (the row's {@code question-field}, else the prompt the policy
 *       saw), {@code {response}} (the completion, {@code <think>} sections dropped when {@code strip-thinking}) and
 *       {@code {reference}} (the ground truth).</li>
 *   <li>A rendered prompt judged before is answered from the cache ({@code cache-size} entries, least recently
 *       used dropped): a judge at temperature 0 gives the same answer again.</li>
 *   <li>Otherwise call {@code url}'s {@code /chat/completions} (the prompt as the user message after an optional
 *       {@code system} message) or {@code /completions}, with {@code model} (or the server's first model),
 *       {@code max-tokens}, {@code temperature}; up to {@code max-concurrent} calls in flight, retries with
 *       backoff on connection errors, timeouts, 429 and 5xx ({@link JsonPoster}).</li>
 *   <li>Parse the score: {@code regex} takes group 1 of the last match in the answer, {@code json} the
 *       {@code json-field} of the last JSON object in it. The reward is {@code (score - min-score) / (max-score -
 *       min-score)}; the raw score is the component {@code judge_score}.</li>
 * </ol>
 *
 * A call that fails after its retries, an answer without a score, or a score outside {@code [min-score,
 * max-score]} fails the request with the reason (and the end of the judge's answer): a judge that could not judge
 * is not a zero.
 */
public final class JudgeReward implements RewardFunction {

  private static final ObjectMapper JSON = new ObjectMapper();
  /** Refuses trailing tokens after a JSON value ({"score": 3} x is not an object). */
  private static final ObjectMapper STRICT = new ObjectMapper()
      .enable(com.fasterxml.jackson.databind.DeserializationFeature.FAIL_ON_TRAILING_TOKENS);
  private static final Pattern PLACEHOLDER = Pattern.compile("\\{(question|response|reference)}");

  /** Where the score comes from in the judge's answer. */
  public enum Parse { REGEX, JSON }

  /** Which route of the server is called. */
  public enum Endpoint { CHAT, COMPLETIONS }

  /**
   * What to send and how to read it.
   *
   * @param model the judge model's name, or "" for the server's first ({@code GET /models})
   */
  public record Settings(URI url, String model, Endpoint endpoint, String system, String prompt, int maxTokens,
      double temperature, Parse parse, Pattern regex, String jsonField, double minScore, double maxScore,
      String questionField, boolean stripThinking, int cacheSize, int maxConcurrent) {}

  private final Settings s;
  private final JsonPoster poster;
  private final ExecutorService calls;
  private final Map<String, RewardResult> cache;
  private volatile String model;

  public JudgeReward(Settings settings, JsonPoster poster) {
    this.s = settings;
    this.poster = poster;
    this.model = settings.model().isBlank() ? null : settings.model();
    this.calls = Executors.newFixedThreadPool(settings.maxConcurrent(), r -> {
      Thread t = new Thread(r, "nucleon-judge");
      t.setDaemon(true);
      return t;
    });
    int size = settings.cacheSize();
    this.cache = java.util.Collections.synchronizedMap(new LinkedHashMap<>(16, 0.75f, true) {
      @Override
      protected boolean removeEldestEntry(Map.Entry<String, RewardResult> eldest) {
        return size() > size;
      }
    });
  }

  @Override
  public boolean scoresBatches() {
    return true;
  }

  @Override
  public RewardResult scoreOne(RewardRequest request) {
    return score(List.of(request)).get(0);
  }

  @Override
  public List<RewardResult> score(List<RewardRequest> batch) {
    List<Future<RewardResult>> pending = new ArrayList<>(batch.size());
    for (RewardRequest r : batch) {
      String prompt = render(r);
      RewardResult hit = s.cacheSize() > 0 ? cache.get(prompt) : null;
      pending.add(hit != null ? java.util.concurrent.CompletableFuture.completedFuture(hit)
          : calls.submit(() -> judge(prompt)));
    }
    List<RewardResult> out = new ArrayList<>(batch.size());
    for (Future<RewardResult> f : pending) {
      try {
        out.add(f.get());
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        pending.forEach(p -> p.cancel(true));
        while (out.size() < batch.size()) {
          out.add(RewardResult.failed("judge: interrupted"));
        }
        return out;
      } catch (ExecutionException e) {
        out.add(RewardResult.failed("judge: " + e.getCause()));
      }
    }
    return out;
  }

  /** The judge's prompt for a request; a placeholder inside the filled-in text stays as it is. */
  String render(RewardRequest r) {
    String question = s.questionField().isEmpty() ? r.prompt()
        : r.metadata().getOrDefault(s.questionField(), r.prompt());
    String response = s.stripThinking() ? dev.nucleon.reward.Thinking.strip(r.completion()).strip() : r.completion();
    StringBuilder out = new StringBuilder();
    Matcher m = PLACEHOLDER.matcher(s.prompt());
    while (m.find()) {
      String value = switch (m.group(1)) {
        case "question" -> question;
        case "response" -> response;
        default -> r.groundTruth();
      };
      m.appendReplacement(out, Matcher.quoteReplacement(value));
    }
    m.appendTail(out);
    return out.toString();
  }

  private RewardResult judge(String prompt) {
    String name;
    try {
      name = model();
    } catch (IllegalStateException e) {
      return RewardResult.failed("judge: " + e.getMessage());
    }
    ObjectNode body = JSON.createObjectNode().put("model", name).put("max_tokens", s.maxTokens())
        .put("temperature", s.temperature());
    if (s.endpoint() == Endpoint.CHAT) {
      var messages = body.putArray("messages");
      if (!s.system().isEmpty()) {
        messages.addObject().put("role", "system").put("content", s.system());
      }
      messages.addObject().put("role", "user").put("content", prompt);
    } else {
      body.put("prompt", prompt);
    }
    JsonPoster.Answer answer;
    try {
      answer = poster.post(route(s.endpoint() == Endpoint.CHAT ? "chat/completions" : "completions"),
          JSON.writeValueAsBytes(body));
    } catch (JsonProcessingException e) {
      return RewardResult.failed("judge: cannot encode the call: " + e.getMessage());
    }
    if (!answer.ok()) {
      return RewardResult.failed("judge: " + answer.failure());
    }
    String text;
    try {
      JsonNode choice = JSON.readTree(answer.body()).path("choices").path(0);
      JsonNode t = s.endpoint() == Endpoint.CHAT ? choice.path("message").path("content") : choice.path("text");
      if (!t.isTextual()) {
        return RewardResult.failed("judge: the server's answer has no " + (s.endpoint() == Endpoint.CHAT
            ? "choices[0].message.content" : "choices[0].text") + ": " + abbreviate(answer.body()));
      }
      text = t.asText();
    } catch (JsonProcessingException e) {
      return RewardResult.failed("judge: the server's answer is not JSON: " + abbreviate(answer.body()));
    }
    RewardResult result = parse(text);
    if (result.isOk() && s.cacheSize() > 0) {
      cache.put(prompt, result);
    }
    return result;
  }

  /** The reward in a judge's answer, or a failed result saying why there is none. */
  RewardResult parse(String text) {
    Double score = s.parse() == Parse.REGEX ? byRegex(text) : byJson(text);
    if (score == null) {
      return RewardResult.failed("judge: no score in the judge's answer (" + (s.parse() == Parse.REGEX
          ? "regex " + s.regex().pattern() : "JSON field '" + s.jsonField() + "'") + "): " + abbreviate(text));
    }
    if (!(score >= s.minScore() && score <= s.maxScore())) {
      return RewardResult.failed("judge: score " + score + " outside [" + s.minScore() + ", " + s.maxScore()
          + "]: " + abbreviate(text));
    }
    return RewardResult.ok((score - s.minScore()) / (s.maxScore() - s.minScore()), Map.of("judge_score", score));
  }

  private Double byRegex(String text) {
    Matcher m = s.regex().matcher(text);
    String last = null;
    while (m.find()) {
      if (m.group(1) != null) {
        last = m.group(1);
      }
    }
    return number(last);
  }

  private Double byJson(String text) {
    // the last {...} that parses as a JSON object with the field, the outermost one at that end (a bounded search:
    // answers are short); trailing text after the object does not parse
    int tries = 0;
    for (int end = text.lastIndexOf('}'); end >= 0 && tries < 400; end = text.lastIndexOf('}', end - 1)) {
      for (int start = text.indexOf('{'); start >= 0 && start < end && tries++ < 400;
          start = text.indexOf('{', start + 1)) {
        try {
          JsonNode node = STRICT.readTree(text.substring(start, end + 1));
          if (node != null && node.has(s.jsonField())) {
            JsonNode v = node.get(s.jsonField());
            return v.isNumber() ? Double.valueOf(v.asDouble()) : number(v.asText());
          }
        } catch (JsonProcessingException e) {
          // not an object: try a wider one
        }
      }
    }
    return null;
  }

  private static Double number(String s) {
    if (s == null) {
      return null;
    }
    try {
      double v = Double.parseDouble(s.strip());
      return Double.isFinite(v) ? v : null;
    } catch (NumberFormatException e) {
      return null;
    }
  }

  /**
   * The model's name: configured, or the first the server lists (asked until an answer names one).
   *
   * @throws IllegalStateException saying why the server did not name one
   */
  private String model() {
    String m = model;
    if (m != null) {
      return m;
    }
    JsonPoster.Answer answer = poster.get(route("models"));
    if (!answer.ok()) {
      throw new IllegalStateException("cannot learn the model's name (set model): " + answer.failure());
    }
    String id;
    try {
      id = JSON.readTree(answer.body()).path("data").path(0).path("id").asText("");
    } catch (JsonProcessingException e) {
      id = "";
    }
    if (id.isEmpty()) {
      throw new IllegalStateException("cannot learn the model's name (set model): " + route("models")
          + " answered " + abbreviate(answer.body()));
    }
    model = id;
    return id;
  }

  private URI route(String path) {
    String base = s.url().toString();
    return URI.create((base.endsWith("/") ? base : base + "/") + path);
  }

  private static String abbreviate(String text) {
    String t = text.strip();
    return t.length() <= 300 ? t : "..." + t.substring(t.length() - 300);
  }

  @Override
  public void close() {
    calls.shutdownNow();
  }

  /** {@code nucleon.reward.judge { url, model, endpoint, prompt, parse, ... }}. */
  public static final class Factory implements RewardFactory {
    @Override
    public String identifier() {
      return "judge";
    }

    @Override
    public RewardFunction create(Config config) {
      Config c = ConfigValues.withDefaults(config, "judge");
      URI url = RemoteSettings.url(c, "url", "http://localhost:8000/v1");
      String prompt = ConfigValues.string(c, "prompt");
      if (!prompt.contains("{response}")) {
        throw ConfigValues.bad(c, "prompt", "lacks {response}: the judge would not see the completion");
      }
      Parse parse = Parse.valueOf(ConfigValues.oneOf(c, "parse", List.of("regex", "json")).toUpperCase(Locale.ROOT));
      Pattern regex;
      try {
        regex = Pattern.compile(ConfigValues.string(c, "regex"));
      } catch (java.util.regex.PatternSyntaxException e) {
        throw ConfigValues.bad(c, "regex", "is not a regular expression: " + e.getDescription());
      }
      if (parse == Parse.REGEX && regex.matcher("").groupCount() < 1) {
        throw ConfigValues.bad(c, "regex", "needs a group around the score, e.g. (\\d+)");
      }
      double min = ConfigValues.finite(c, "min-score");
      double max = ConfigValues.finite(c, "max-score");
      if (!(max > min)) {
        throw ConfigValues.bad(c, "max-score", "must be above min-score (" + min + "), got " + max);
      }
      Map<String, String> auth = new LinkedHashMap<>();
      String keyEnv = ConfigValues.string(c, "api-key-env").trim();
      if (!keyEnv.isEmpty() && System.getenv(keyEnv) != null && !System.getenv(keyEnv).isBlank()) {
        auth.put("Authorization", "Bearer " + System.getenv(keyEnv).strip());
      }
      int concurrent = ConfigValues.intAtLeast(c, "max-concurrent", 1);
      Settings settings = new Settings(url, ConfigValues.string(c, "model").trim(),
          Endpoint.valueOf(ConfigValues.oneOf(c, "endpoint", List.of("chat", "completions"))
              .toUpperCase(Locale.ROOT)),
          ConfigValues.string(c, "system"), prompt, ConfigValues.intAtLeast(c, "max-tokens", 1),
          ConfigValues.between(c, "temperature", 0, 2), parse, regex, ConfigValues.string(c, "json-field"), min, max,
          ConfigValues.string(c, "question-field").trim(), ConfigValues.bool(c, "strip-thinking"),
          ConfigValues.intAtLeast(c, "cache-size", 0), concurrent);
      return new JudgeReward(settings, RemoteSettings.poster(c, auth));
    }
  }
}
