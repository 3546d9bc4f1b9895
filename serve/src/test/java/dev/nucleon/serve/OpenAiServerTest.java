package dev.nucleon.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.http.StreamResponse;
import com.openai.errors.BadRequestException;
import com.openai.errors.NotFoundException;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionChunk;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.chat.completions.ChatCompletionTokenLogprob;
import com.openai.models.completions.Completion;
import com.openai.models.completions.CompletionCreateParams;
import dev.nucleon.core.rollout.FinishReason;
import dev.nucleon.model.Engines;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.ModelFiles;
import dev.nucleon.model.generate.GenerationRequest;
import dev.nucleon.model.generate.GenerationResult;
import dev.nucleon.model.generate.Generator;
import dev.nucleon.model.generate.SamplingParams;
import dev.nucleon.model.tokenizer.TextTokenizer;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The server over the quickstart's arithmetic model (a copy with a chat template added), called through OpenAI's
 * official Java client: what it answers is what the model generates when asked directly.
 */
class OpenAiServerTest {

  private static final Path BASE = Path.of("..", "conf", "models", "quickstart-base").toAbsolutePath().normalize();
  private static final String NAME = "quickstart";

  @TempDir
  static Path dir;

  private static NDManager manager;
  private static TextTokenizer tokenizer;
  private static LlamaModel model;
  private static Generator generator;
  private static ServedModel served;
  private static OpenAiServer server;
  private static OpenAIClient client;

  @BeforeAll
  static void serve() throws Exception {
    Path folder = Files.createDirectories(dir.resolve("model"));
    for (String f : List.of("config.json", "model.safetensors", "tokenizer.json")) {
      Files.copy(BASE.resolve(f), folder.resolve(f));
    }
    // the template writes BOS, as real ones do: a chat prompt is then the completion prompt with BOS
    Files.writeString(folder.resolve("tokenizer_config.json"), "{\"bos_token\": \"<s>\", \"eos_token\": \"$\", "
        + "\"chat_template\": \"{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}\"}");
    Engines.start();
    ModelFiles.Checkpoint ckpt = ModelFiles.read(folder);
    manager = NDManager.newBaseManager();
    tokenizer = ModelFiles.tokenizer(folder, null, ckpt.config());
    model = ckpt.instantiate(manager);
    generator = new Generator(model, 0);
    served = ServedModel.of(NAME, folder, tokenizer, ModelFiles.stopIds(tokenizer, ckpt.config()),
        model.config().vocabSize(),
        model.maxPositions(), 8);
    server = new OpenAiServer(served, generator, "127.0.0.1", 0, 8, 16);
    client = OpenAIOkHttpClient.builder().baseUrl("http://127.0.0.1:" + server.port() + "/v1").apiKey("unused")
        .maxRetries(0).build();
  }

  @AfterAll
  static void stop() throws Exception {
    client.close();
    server.close();
    generator.close();
    model.close();
    tokenizer.close();
    manager.close();
  }

  /** What the model itself generates greedily for a prompt: its tokens (stop token dropped) and log-probs. */
  private static GenerationResult direct(String prompt, int maxNew) {
    int[] ids = tokenizer.encode(prompt, true);
    return generator.generate(List.of(new GenerationRequest(ids, new SamplingParams(0f, 0, 1f, maxNew,
        served.stopIds()), 0))).get(0);
  }

  private static String text(GenerationResult r) {
    int[] t = r.finishReason() == FinishReason.STOP ? Arrays.copyOf(r.tokens(), r.tokens().length - 1) : r.tokens();
    return tokenizer.decode(t, true);
  }

  @Test
  void answersAsTheModelDoesThroughTheOfficialClient() {
    assertEquals(List.of(NAME), client.models().list().data().stream().map(m -> m.id()).toList());
    for (String prompt : List.of("12+34=", "7+8=", "50+49=")) {
      GenerationResult expected = direct(prompt, 8);
      Completion c = client.completions().create(CompletionCreateParams.builder().model(NAME).prompt(prompt)
          .maxTokens(8).temperature(0.0).build());
      assertEquals(text(expected), c.choices().get(0).text(), prompt);
      assertEquals(expected.finishReason() == FinishReason.STOP ? "stop" : "length",
          c.choices().get(0).finishReason().asString());
      assertEquals(tokenizer.encode(prompt, true).length, c.usage().orElseThrow().promptTokens());
      assertEquals(expected.tokens().length, c.usage().orElseThrow().completionTokens());

      ChatCompletion chat = client.chat().completions().create(ChatCompletionCreateParams.builder().model(NAME)
          .addUserMessage(prompt).maxCompletionTokens(8).temperature(0.0).logprobs(true).build());
      ChatCompletion.Choice choice = chat.choices().get(0);
      assertEquals(text(expected), choice.message().content().orElseThrow(), "chat: " + prompt);
      List<ChatCompletionTokenLogprob> lp = choice.logprobs().orElseThrow().content().orElseThrow();
      int n = expected.tokens().length - (expected.finishReason() == FinishReason.STOP ? 1 : 0);
      assertEquals(n, lp.size(), "one log-prob per token of the text");
      for (int i = 0; i < n; i++) {
        assertEquals(expected.modelLogProbs()[i], lp.get(i).logprob(), 1e-5, "the model's log-prob of token " + i);
        assertEquals(tokenizer.decode(new int[] {expected.tokens()[i]}, false), lp.get(i).token());
      }
    }
  }

  @Test
  void streamsWhatItWouldAnswerWhole() {
    ChatCompletionCreateParams params = ChatCompletionCreateParams.builder().model(NAME).addUserMessage("23+45=")
        .maxCompletionTokens(8).temperature(0.0)
        .streamOptions(com.openai.models.chat.completions.ChatCompletionStreamOptions.builder().includeUsage(true)
            .build()).build();
    String whole = client.chat().completions().create(params).choices().get(0).message().content().orElseThrow();
    StringBuilder streamed = new StringBuilder();
    List<String> finishes = new ArrayList<>();
    long[] usage = {-1};
    int[] chunks = {0};
    try (StreamResponse<ChatCompletionChunk> stream = client.chat().completions().createStreaming(params)) {
      stream.stream().forEach(chunk -> {
        chunks[0]++;
        chunk.choices().forEach(c -> {
          c.delta().content().ifPresent(streamed::append);
          c.finishReason().ifPresent(f -> finishes.add(f.asString()));
        });
        chunk.usage().ifPresent(u -> usage[0] = u.completionTokens());
      });
    }
    assertEquals(whole, streamed.toString());
    assertEquals(1, finishes.size(), "one finish reason: " + finishes);
    assertTrue(chunks[0] >= whole.length(), "token by token: " + chunks[0] + " chunks for '" + whole + "'");
    assertTrue(usage[0] > 0, "the last chunk carries the usage");

    // several prompts and choices in one streamed completion request, each choice's text in order
    CompletionCreateParams two = CompletionCreateParams.builder().model(NAME)
        .prompt(CompletionCreateParams.Prompt.ofArrayOfStrings(List.of("12+34=", "7+8="))).n(2).maxTokens(8)
        .temperature(0.0).build();
    StringBuilder[] texts = {new StringBuilder(), new StringBuilder(), new StringBuilder(), new StringBuilder()};
    try (StreamResponse<Completion> stream = client.completions().createStreaming(two)) {
      stream.stream().forEach(chunk -> chunk.choices().forEach(c -> texts[(int) c.index()].append(c.text())));
    }
    assertEquals(text(direct("12+34=", 8)), texts[0].toString());
    assertEquals(texts[0].toString(), texts[1].toString(), "greedy: both choices of a prompt agree");
    assertEquals(text(direct("7+8=", 8)), texts[2].toString());
  }

  @Test
  void aStopStringEndsTheTextBeforeIt() {
    String full = text(direct("12+34=", 8));
    assertTrue(full.length() >= 2, "the model answers with at least two characters: " + full);
    String stop = full.substring(1, 2);
    Completion c = client.completions().create(CompletionCreateParams.builder().model(NAME).prompt("12+34=")
        .maxTokens(8).temperature(0.0).stop(stop).build());
    assertEquals(full.substring(0, full.indexOf(stop)), c.choices().get(0).text());
    assertEquals("stop", c.choices().get(0).finishReason().asString());
  }

  @Test
  void givesAlternativesAndScoresEchoedPromptsAsEvaluationHarnessesAsk() throws Exception {
    // chat: with greedy decoding every chosen token is the first of its alternatives
    ChatCompletion chat = client.chat().completions().create(ChatCompletionCreateParams.builder().model(NAME)
        .addUserMessage("12+34=").maxCompletionTokens(8).temperature(0.0).logprobs(true).topLogprobs(3).build());
    List<ChatCompletionTokenLogprob> lp = chat.choices().get(0).logprobs().orElseThrow().content().orElseThrow();
    assertTrue(!lp.isEmpty());
    for (ChatCompletionTokenLogprob t : lp) {
      assertEquals(3, t.topLogprobs().size());
      assertEquals(t.token(), t.topLogprobs().get(0).token(), "greedy picks the most likely token");
      assertEquals(t.logprob(), t.topLogprobs().get(0).logprob(), 1e-5);
      assertTrue(t.topLogprobs().get(0).logprob() >= t.topLogprobs().get(1).logprob());
    }
    // completions, as lm-evaluation-harness scores a continuation: echo, one new token, logprobs = 1
    HttpClient http = HttpClient.newHttpClient();
    String url = "http://127.0.0.1:" + server.port() + "/v1/completions";
    com.fasterxml.jackson.databind.ObjectMapper json = new com.fasterxml.jackson.databind.ObjectMapper();
    for (int maxTokens : new int[] {0, 1}) {
      com.fasterxml.jackson.databind.JsonNode answer = json.readTree(http.send(HttpRequest.newBuilder(URI.create(url))
          .POST(HttpRequest.BodyPublishers.ofString("{\"prompt\": \"12+34=46\", \"echo\": true, \"max_tokens\": "
              + maxTokens + ", \"logprobs\": 1, \"temperature\": 0}")).build(),
          HttpResponse.BodyHandlers.ofString()).body()).path("choices").path(0);
      assertTrue(answer.path("text").asText().startsWith("12+34=46"), answer.toString());
      com.fasterxml.jackson.databind.JsonNode values = answer.path("logprobs").path("token_logprobs");
      int[] ids = tokenizer.encode("12+34=46", true);
      // the new token, the stop token too (which adds no text): one entry after the prompt's
      assertEquals(ids.length + maxTokens, values.size(), answer.toString());
      assertEquals(0, answer.path("logprobs").path("text_offset").get(1).asInt(), "BOS adds no text");
      assertTrue(values.get(0).isNull(), "the first token has no log-prob");
      // the model's own log-prob of each prompt token given the ones before it
      float[] expected;
      try (NDManager m = manager.newSubManager()) {
        expected = model.tokenLogProbs(m, new int[][] {ids}, 1f).toFloatArray();
      }
      for (int i = 1; i < ids.length; i++) {
        assertEquals(expected[i - 1], values.get(i).floatValue(), 1e-4, "prompt token " + i);
        com.fasterxml.jackson.databind.JsonNode top = answer.path("logprobs").path("top_logprobs").get(i);
        assertEquals(1, top.size());
        assertTrue(top.elements().next().floatValue() >= values.get(i).floatValue() - 1e-6);
      }
    }
  }

  @Test
  void refusesWhatItDoesNotDoNamingTheParameter() throws Exception {
    NotFoundException missing = assertThrows(NotFoundException.class, () -> client.completions().create(
        CompletionCreateParams.builder().model("gpt-4o").prompt("1+1=").build()));
    assertTrue(missing.getMessage().contains(NAME), missing.getMessage());
    BadRequestException top = assertThrows(BadRequestException.class, () -> client.chat().completions().create(
        ChatCompletionCreateParams.builder().model(NAME).addUserMessage("1+1=").logprobs(true).topLogprobs(30)
            .build()));
    assertTrue(top.getMessage().contains("top_logprobs"), top.getMessage());
    BadRequestException tooLong = assertThrows(BadRequestException.class, () -> client.completions().create(
        CompletionCreateParams.builder().model(NAME).prompt("1+1=").maxTokens(1000).build()));
    assertTrue(tooLong.getMessage().contains("max_tokens"), tooLong.getMessage());
    HttpClient http = HttpClient.newHttpClient();
    String base = "http://127.0.0.1:" + server.port();
    for (String[] bad : new String[][] {{"/v1/completions", "{not json", "not JSON"},
        {"/v1/completions", "{\"prompt\": [999999]}", "outside the model's vocabulary"},
        {"/v1/chat/completions", "{\"messages\": []}", "messages"},
        {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"1\"}], \"tools\": [{}]}",
            "tools"},
        {"/v1/completions", "{\"prompt\": \"1\", \"temperature\": 9}", "temperature"},
        {"/v1/completions", "{\"prompt\": \"1\", \"echo\": true, \"stream\": true}", "echo"},
        {"/v1/completions", "{\"prompt\": \"1\", \"max_tokens\": 0}", "max_tokens"}}) {
      HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(base + bad[0]))
          .POST(HttpRequest.BodyPublishers.ofString(bad[1])).build(), HttpResponse.BodyHandlers.ofString());
      assertEquals(400, r.statusCode(), bad[1] + " -> " + r.body());
      assertTrue(r.body().contains(bad[2]), r.body() + " names " + bad[2]);
    }
    assertEquals(404, http.send(HttpRequest.newBuilder(URI.create(base + "/v1/embeddings"))
        .POST(HttpRequest.BodyPublishers.ofString("{}")).build(), HttpResponse.BodyHandlers.ofString()).statusCode());
  }

  @Test
  void concurrentRequestsShareBatchesAndGetTheirOwnAnswers() throws Exception {
    List<String> prompts = List.of("11+22=", "3+4=", "60+7=", "25+25=", "9+9=", "44+10=", "1+80=", "33+33=");
    List<String> expected = prompts.stream().map(p -> text(direct(p, 8))).toList();
    // hold the generator's thread so that the requests meet in the queue: a request that waits on a latch
    CountDownLatch release = new CountDownLatch(1);
    generator.generateAsync(List.of(new GenerationRequest(tokenizer.encode("1+1=", true),
        SamplingParams.greedy(1), 0, (token, logProb, finish) -> {
          try {
            release.await();
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
          }
          return true;
        })));
    long[] before = server.batchCounts();
    ExecutorService pool = Executors.newFixedThreadPool(prompts.size());
    try {
      List<Future<String>> answers = new ArrayList<>();
      for (String p : prompts) {
        answers.add(pool.submit(() -> client.completions().create(CompletionCreateParams.builder().model(NAME)
            .prompt(p).maxTokens(8).temperature(0.0).build()).choices().get(0).text()));
      }
      long deadline = System.nanoTime() + 60_000_000_000L;
      while (waiting(before) < prompts.size()) {
        assertTrue(System.nanoTime() < deadline, "the requests reached the batcher: " + waiting(before));
        Thread.sleep(10);
      }
      release.countDown();
      for (int i = 0; i < prompts.size(); i++) {
        assertEquals(expected.get(i), answers.get(i).get(), prompts.get(i));
      }
    } finally {
      release.countDown();
      pool.shutdownNow();
    }
    long[] after = server.batchCounts();
    assertEquals(prompts.size(), after[1] - before[1], "every request generated once");
    assertTrue(after[0] - before[0] <= 2, (after[0] - before[0]) + " batches for " + prompts.size()
        + " concurrent requests: the first may start alone, the rest wait together");
  }

  /** Requests queued or taken by the batcher since {@code before}. */
  private static long waiting(long[] before) {
    return server.queued() + server.batchCounts()[1] - before[1];
  }
}
