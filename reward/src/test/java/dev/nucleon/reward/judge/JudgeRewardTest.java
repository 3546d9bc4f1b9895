package dev.nucleon.reward.judge;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.sun.net.httpserver.HttpServer;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.model.Engines;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.ModelFiles;
import dev.nucleon.model.generate.Generator;
import dev.nucleon.model.tokenizer.TextTokenizer;
import dev.nucleon.serve.OpenAiServer;
import dev.nucleon.serve.ServedModel;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntFunction;
import org.junit.jupiter.api.Test;

/**
 * The judge against {@code nucleon serve} running the quickstart's arithmetic model, and against scripted servers
 * for what a real one rarely does (fail, stall, answer without a score).
 */
class JudgeRewardTest {

  private static final Path QUICKSTART = Path.of("..", "conf", "models", "quickstart-base").toAbsolutePath()
      .normalize();
  private static final ObjectMapper JSON = new ObjectMapper();

  private static RewardFunction judge(String url, String extra) {
    return new JudgeReward.Factory().create(ConfigFactory.parseString(extra)
        .withFallback(ConfigFactory.parseMap(Map.of("url", url, "retries", 2, "backoff", "10ms"))));
  }

  private static RewardRequest request(String completion, String reference) {
    return new RewardRequest("", completion, new int[0], reference, Map.of());
  }

  /**
   * End to end: the served arithmetic model is the judge, asked "{reference}+{response}=" through the completions
   * route; its answer (a number) is the score, normalized by the largest sum. The same call made by hand gives the
   * same number, a second round is answered from the cache, and a batch is judged concurrently.
   */
  @Test
  void judgesThroughNucleonServeWithTheServedModelsAnswer() throws Exception {
    Engines.start();
    ModelFiles.Checkpoint ckpt = ModelFiles.read(QUICKSTART);
    try (NDManager manager = NDManager.newBaseManager();
        TextTokenizer tok = ModelFiles.tokenizer(QUICKSTART, null, ckpt.config());
        LlamaModel model = ckpt.instantiate(manager);
        Generator generator = new Generator(model, 0);
        OpenAiServer server = new OpenAiServer(ServedModel.of("arith", QUICKSTART, tok,
            ModelFiles.stopIds(tok, ckpt.config()),
            model.config().vocabSize(), model.maxPositions(), 8), generator, "127.0.0.1", 0, 8, 16)) {
      String url = "http://127.0.0.1:" + server.port() + "/v1";
      RewardFunction judge = judge(url, "endpoint = completions, model = \"\", prompt = \"{reference}+{response}=\", "
          + "regex = \"^(\\\\d+)\", max-score = 198, max-tokens = 4, temperature = 0");
      List<RewardRequest> batch = new ArrayList<>();
      for (int i = 0; i < 6; i++) {
        batch.add(request(String.valueOf(10 + 7 * i), String.valueOf(3 + 11 * i)));
      }
      long[] before = server.batchCounts();
      List<RewardResult> results = judge.score(batch);
      long[] after = server.batchCounts();
      HttpClient http = HttpClient.newHttpClient();
      for (int i = 0; i < batch.size(); i++) {
        RewardRequest r = batch.get(i);
        String body = "{\"model\": \"arith\", \"prompt\": \"" + r.groundTruth() + "+" + r.completion()
            + "=\", \"max_tokens\": 4, \"temperature\": 0}";
        JsonNode answer = JSON.readTree(http.send(HttpRequest.newBuilder(URI.create(url + "/completions"))
            .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString()).body());
        String text = answer.path("choices").path(0).path("text").asText();
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("^(\\d+)").matcher(text);
        RewardResult got = results.get(i);
        if (m.find() && Double.parseDouble(m.group(1)) <= 198) {
          double score = Double.parseDouble(m.group(1));
          assertEquals(RewardResult.ok(score / 198, Map.of("judge_score", score)), got, "the model said " + text);
        } else {
          assertFalse(got.isOk(), "no score in '" + text + "' fails the request: " + got);
        }
      }
      assertTrue(results.stream().filter(RewardResult::isOk).count() >= 3, "the model mostly answers numbers: "
          + results);
      assertEquals(batch.size(), after[1] - before[1], "one call per request");
      long[] again = server.batchCounts();
      List<RewardResult> cached = judge.score(batch.subList(0, 3));
      assertEquals(results.subList(0, 3).stream().filter(RewardResult::isOk).count(),
          cached.stream().filter(RewardResult::isOk).count());
      long okCalls = results.subList(0, 3).stream().filter(RewardResult::isOk).count();
      assertEquals(3 - okCalls, server.batchCounts()[1] - again[1], "judged prompts come from the cache");
      judge.close();
    }
  }

  /** A scripted OpenAI-compatible server: {@code answer} maps the call's number to a status and a body. */
  private static HttpServer scripted(AtomicInteger calls, IntFunction<Object[]> answer) throws Exception {
    HttpServer s = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 16);
    s.createContext("/", ex -> {
      ex.getRequestBody().readAllBytes();
      Object[] a = answer.apply(calls.getAndIncrement());
      byte[] bytes = ((String) a[1]).getBytes(StandardCharsets.UTF_8);
      ex.sendResponseHeaders((Integer) a[0], bytes.length);
      ex.getResponseBody().write(bytes);
      ex.close();
    });
    s.start();
    return s;
  }

  private static String chat(String content) throws Exception {
    return "{\"choices\": [{\"index\": 0, \"message\": {\"role\": \"assistant\", \"content\": "
        + JSON.writeValueAsString(content) + "}}]}";
  }

  @Test
  void retriesOverloadAndFailsWhatCannotBeJudgedNamingWhy() throws Exception {
    AtomicInteger calls = new AtomicInteger();
    // two 503s and a 429, then an answer: retried; later calls answer as their content says
    HttpServer s = scripted(calls, n -> {
      try {
        return n < 2 ? new Object[] {503, "busy"} : n == 2 ? new Object[] {429, "slow down"}
            : new Object[] {200, chat("Reasoning... Score: 7")};
      } catch (Exception e) {
        throw new IllegalStateException(e);
      }
    });
    try {
      String url = "http://127.0.0.1:" + s.getAddress().getPort() + "/v1";
      RewardResult r = judge(url, "model = m, retries = 3").scoreOne(request("x", "y"));
      assertEquals(RewardResult.ok(0.7, Map.of("judge_score", 7.0)), r);
      assertEquals(4, calls.get(), "three retried failures, then the answer");
    } finally {
      s.stop(0);
    }
    AtomicInteger none = new AtomicInteger();
    List<String> contents = List.of("I cannot decide.", "Score: 12",
        "Verdict: {\"detail\": {\"score\": 1}, \"score\": 4, \"why\": \"close\"} (final)");
    HttpServer t = scripted(none, n -> {
      try {
        return n == 3 ? new Object[] {400, "{\"error\": {\"message\": \"bad model\"}}"}
            : new Object[] {200, chat(contents.get(n % 3))};
      } catch (Exception e) {
        throw new IllegalStateException(e);
      }
    });
    try {
      String url = "http://127.0.0.1:" + t.getAddress().getPort() + "/v1";
      RewardFunction regex = judge(url, "model = m, max-concurrent = 1, cache-size = 0");
      RewardResult unclear = regex.scoreOne(request("a", "b"));
      assertTrue(!unclear.isOk() && unclear.reason().contains("no score") && unclear.reason().contains("decide"),
          unclear.reason());
      RewardResult outside = regex.scoreOne(request("c", "d"));
      assertTrue(!outside.isOk() && outside.reason().contains("outside [0.0, 10.0]"), outside.reason());
      RewardResult json = judge(url, "model = m, parse = json").scoreOne(request("e", "f"));
      assertEquals(RewardResult.ok(0.4, Map.of("judge_score", 4.0)), json);
      RewardResult refused = regex.scoreOne(request("g", "h"));
      assertTrue(!refused.isOk() && refused.reason().contains("400") && refused.reason().contains("bad model"),
          refused.reason());
      assertEquals(4, none.get(), "a 400 is not retried");
    } finally {
      t.stop(0);
    }
    // nobody listening: fails after its retries
    int port;
    try (java.net.ServerSocket free = new java.net.ServerSocket(0)) {
      port = free.getLocalPort();
    }
    RewardResult down = judge("http://127.0.0.1:" + port + "/v1", "model = m, retries = 1")
        .scoreOne(request("x", "y"));
    assertTrue(!down.isOk() && down.reason().contains("cannot reach") && down.reason().contains("2 attempts"),
        down.reason());
  }

  @Test
  void thePromptIsRenderedOnceWithThinkingDropped() {
    JudgeReward j = (JudgeReward) judge("http://127.0.0.1:9/v1", "model = m, question-field = q, "
        + "prompt = \"Q={question} R={response} A={reference} {\\\"keep\\\": 1}\"");
    RewardRequest r = new RewardRequest("templated prompt", "<think>hmm {reference}</think> 42 {question}",
        new int[0], "41", Map.of("q", "What is 6*7?"));
    assertEquals("Q=What is 6*7? R=42 {question} A=41 {\"keep\": 1}", j.render(r));
    j.close();
  }

  @Test
  void badConfigIsNamed() {
    for (String[] bad : new String[][] {{"url = \"\"", "url"}, {"prompt = \"no completion\"", "prompt"},
        {"regex = \"score\"", "regex"}, {"max-score = 0", "max-score"}, {"parse = vibes", "parse"},
        {"endpoint = embeddings", "endpoint"}, {"url = \"ftp://x\"", "url"}, {"headers { Host = x }", "headers"}}) {
      ConfigException e = assertThrows(ConfigException.class, () -> new JudgeReward.Factory().create(
          ConfigFactory.parseString(bad[0]).withFallback(ConfigFactory.parseString("url = \"http://h/v1\""))));
      assertTrue(e.getMessage().contains(bad[1]), e.getMessage() + " names " + bad[1]);
    }
  }
}
