package dev.nucleon.serve;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import dev.nucleon.core.rollout.FinishReason;
import dev.nucleon.model.generate.Generator;
import dev.nucleon.model.generate.SamplingParams;
import dev.nucleon.rollout.data.ChatTemplate;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeoutException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An OpenAI-compatible HTTP server over one model: {@code GET /v1/models}, {@code POST /v1/completions} and
 * {@code POST /v1/chat/completions}, answered whole or streamed as server-sent events, with the chosen tokens'
 * log-probs on request. Concurrent requests are batched onto the model ({@link Batcher}).
 *
 * <p>A request asking for what this server does not do (tool calls, penalties, logit bias, a JSON response format,
 * alternatives or {@code echo} while streaming) is refused with a 400 naming the parameter, never
 * answered as if it had been honoured. Errors use OpenAI's shape: {@code {"error": {"message", "type", "param",
 * "code"}}}.
 */
public final class OpenAiServer implements AutoCloseable {

  private static final Logger log = LoggerFactory.getLogger(OpenAiServer.class);
  private static final ObjectMapper JSON = new ObjectMapper();
  /** Request bodies larger than this are refused (413). */
  private static final int MAX_BODY = 16 << 20;
  /** How long a request waits for its next token before it gives up (a stuck generator). */
  private static final long TOKEN_WAIT_MILLIS = 600_000;
  /** Sequences one request may ask for (prompts x n). */
  private static final int MAX_SEQUENCES = 256;

  static {
    // a client that trickles its request body does not hold an HTTP thread forever (read by the JDK server)
    if (System.getProperty("sun.net.httpserver.maxReqTime") == null) {
      System.setProperty("sun.net.httpserver.maxReqTime", "60");
    }
  }

  private final ServedModel model;
  private final Generator generator;
  private final Batcher batcher;
  private final HttpServer http;
  private final ExecutorService executor;
  private final long created = System.currentTimeMillis() / 1000;

  /**
   * Starts serving at once.
   *
   * @param generator the model's generator (the server closes neither it nor the model)
   * @param slots sequences decoded at once
   * @param threads HTTP threads: the most requests answered at once (a streaming request holds one to its end)
   */
  public OpenAiServer(ServedModel model, Generator generator, String host, int port, int slots, int threads)
      throws IOException {
    this.model = model;
    this.generator = generator;
    this.batcher = new Batcher(generator, slots, Math.max(slots, threads));
    this.http = HttpServer.create(new InetSocketAddress(host, port), 128);
    this.executor = Executors.newFixedThreadPool(threads, r -> {
      Thread t = new Thread(r, "nucleon-serve-http");
      t.setDaemon(true);
      return t;
    });
    http.setExecutor(executor);
    http.createContext("/", this::handle);
    http.start();
    log.info("serving {} at http://{}:{}/v1 ({} sequences at once)", model.name(), host, port(), slots);
  }

  /** The port it listens on (the one chosen when 0 was given). */
  public int port() {
    return http.getAddress().getPort();
  }

  /** Batches generated so far and the sequences in them. */
  public long[] batchCounts() {
    return batcher.counts();
  }

  /** Requests waiting for a batch. */
  int queued() {
    return batcher.queued();
  }

  @Override
  public void close() {
    http.stop(0);
    batcher.close();
    executor.shutdownNow();
  }

  // ------------------------------------------------------------------------------------------------ routing

  /** A request the server refuses, with its HTTP status and OpenAI's error fields. */
  static final class ApiError extends RuntimeException {
    final int status;
    final String type;
    final String param;
    /** Already sent to the client (as an event of a stream that had begun). */
    boolean reported;

    ApiError(int status, String type, String param, String message) {
      super(message);
      this.status = status;
      this.type = type;
      this.param = param;
    }

    static ApiError invalid(String param, String message) {
      return new ApiError(400, "invalid_request_error", param, message);
    }
  }

  private void handle(HttpExchange ex) {
    try (ex) {
      String path = ex.getRequestURI().getPath().replaceAll("/+$", "");
      String method = ex.getRequestMethod();
      try {
        switch (path) {
          case "/v1/models" -> {
            requireMethod(method, "GET");
            sendJson(ex, 200, models());
          }
          case "/health" -> {
            requireMethod(method, "GET");
            sendJson(ex, 200, JSON.createObjectNode().put("status", "ok"));
          }
          case "/v1/completions" -> {
            requireMethod(method, "POST");
            complete(ex, body(ex), false);
          }
          case "/v1/chat/completions" -> {
            requireMethod(method, "POST");
            complete(ex, body(ex), true);
          }
          default -> throw new ApiError(404, "not_found_error", null, "no route " + method + " " + path
              + "; this server has GET /v1/models, POST /v1/completions and POST /v1/chat/completions");
        }
      } catch (ApiError e) {
        if (!e.reported) {
          sendError(ex, e);
        }
      } catch (IOException e) {
        log.debug("client {} went away: {}", ex.getRemoteAddress(), e.toString());
      } catch (RuntimeException e) {
        log.warn("request {} {} failed", method, path, e);
        sendError(ex, new ApiError(500, "server_error", null, e.toString()));
      }
    }
  }

  private static void requireMethod(String method, String allowed) {
    if (!method.equals(allowed)) {
      throw new ApiError(405, "invalid_request_error", null, "method " + method + " not allowed; use " + allowed);
    }
  }

  private ObjectNode models() {
    ObjectNode out = JSON.createObjectNode().put("object", "list");
    out.putArray("data").addObject().put("id", model.name()).put("object", "model").put("created", created)
        .put("owned_by", "nucleon").put("max_model_len", model.maxPositions());
    return out;
  }

  private static JsonNode body(HttpExchange ex) throws IOException {
    byte[] bytes;
    try (InputStream in = ex.getRequestBody()) {
      bytes = in.readNBytes(MAX_BODY + 1);
    }
    if (bytes.length > MAX_BODY) {
      throw new ApiError(413, "invalid_request_error", null, "request body over " + (MAX_BODY >> 20) + " MiB");
    }
    try {
      JsonNode node = JSON.readTree(bytes);
      if (node == null || !node.isObject()) {
        throw ApiError.invalid(null, "the body must be a JSON object");
      }
      return node;
    } catch (JsonProcessingException e) {
      throw ApiError.invalid(null, "the body is not JSON: " + e.getOriginalMessage());
    }
  }

  // ------------------------------------------------------------------------------------------------ requests

  /** The generation settings of one request, checked. */
  private record Params(int n, float temperature, float topP, int topK, Integer maxTokens, List<String> stop,
      Long seed, boolean stream, boolean includeUsage, boolean logprobs, int topLogprobs, boolean echo) {}

  private Params params(JsonNode b, boolean chat) {
    String requested = b.path("model").asText("");
    if (!requested.isEmpty() && !requested.equals(model.name())) {
      throw new ApiError(404, "invalid_request_error", "model", "the model '" + requested + "' does not exist; "
          + "this server serves '" + model.name() + "'");
    }
    for (String unsupported : List.of("tools", "functions", "tool_choice", "logit_bias", "suffix")) {
      JsonNode v = b.get(unsupported);
      if (v != null && !v.isNull() && !(v.isContainerNode() && v.isEmpty())
          && !(unsupported.equals("tool_choice") && v.asText().equals("none"))) {
        throw ApiError.invalid(unsupported, unsupported + " is not supported by this server");
      }
    }
    for (String penalty : List.of("presence_penalty", "frequency_penalty")) {
      if (b.path(penalty).asDouble(0) != 0) {
        throw ApiError.invalid(penalty, penalty + " is not supported by this server (only 0)");
      }
    }
    boolean echo = b.path("echo").asBoolean(false);
    if (echo && chat) {
      throw ApiError.invalid("echo", "echo is a parameter of /v1/completions");
    }
    String format = b.path("response_format").path("type").asText("text");
    if (!format.equals("text")) {
      throw ApiError.invalid("response_format", "response_format " + format + " is not supported (only text)");
    }
    int n = intIn(b, "n", 1, 1, 64);
    float temperature = (float) numberIn(b, "temperature", 1.0, 0, 2);
    float topP = (float) numberIn(b, "top_p", 1.0, 0, 1);
    if (topP == 0f) {
      throw ApiError.invalid("top_p", "top_p must be above 0");
    }
    int topK = b.has("top_k") && b.get("top_k").asInt() == -1 ? 0 : intIn(b, "top_k", 0, 0, Integer.MAX_VALUE);
    Integer maxTokens = null;
    for (String key : List.of("max_completion_tokens", "max_tokens")) {
      if (b.hasNonNull(key)) {
        maxTokens = intIn(b, key, 1, 0, Integer.MAX_VALUE);
        break;
      }
    }
    List<String> stop = new ArrayList<>();
    JsonNode s = b.get("stop");
    if (s != null && !s.isNull()) {
      if (s.isTextual()) {
        stop.add(s.asText());
      } else if (s.isArray()) {
        s.forEach(x -> stop.add(x.asText()));
      } else {
        throw ApiError.invalid("stop", "stop must be a string or a list of strings");
      }
      if (stop.stream().anyMatch(String::isEmpty)) {
        throw ApiError.invalid("stop", "a stop string must not be empty");
      }
    }
    Long seed = b.hasNonNull("seed") ? b.get("seed").asLong() : null;
    boolean stream = b.path("stream").asBoolean(false);
    boolean usage = b.path("stream_options").path("include_usage").asBoolean(false);
    boolean logprobs;
    int top;
    if (chat) {
      logprobs = b.path("logprobs").asBoolean(false);
      top = intIn(b, "top_logprobs", 0, 0, 20);
      if (top > 0 && !logprobs) {
        throw ApiError.invalid("top_logprobs", "top_logprobs needs logprobs = true");
      }
    } else {
      JsonNode lp = b.get("logprobs");
      logprobs = lp != null && !lp.isNull();
      top = logprobs ? intIn(b, "logprobs", 0, 0, 5) : 0;
    }
    if (maxTokens != null && maxTokens == 0 && !echo) {
      throw ApiError.invalid("max_tokens", "max_tokens must be at least 1 (0 only with echo, to score a prompt)");
    }
    if (stream && (top > 0 || echo)) {
      throw ApiError.invalid(top > 0 ? (chat ? "top_logprobs" : "logprobs") : "echo", (top > 0
          ? "alternatives (top log-probs)" : "echo") + " are given with whole answers only, not while streaming");
    }
    return new Params(n, temperature, topP, topK, maxTokens, stop, seed, stream, usage, logprobs, top, echo);
  }

  private static int intIn(JsonNode b, String key, int otherwise, int min, int max) {
    JsonNode v = b.get(key);
    if (v == null || v.isNull()) {
      return otherwise;
    }
    if (!v.isIntegralNumber() || v.asLong() < min || v.asLong() > max) {
      throw ApiError.invalid(key, key + " must be an integer in [" + min + ", " + max + "], got " + v);
    }
    return v.asInt();
  }

  private static double numberIn(JsonNode b, String key, double otherwise, double min, double max) {
    JsonNode v = b.get(key);
    if (v == null || v.isNull()) {
      return otherwise;
    }
    if (!v.isNumber() || v.asDouble() < min || v.asDouble() > max) {
      throw ApiError.invalid(key, key + " must be a number in [" + min + ", " + max + "], got " + v);
    }
    return v.asDouble();
  }

  /** The prompts of a request as token ids: the rendered chat, or the completion prompt(s). */
  private List<int[]> prompts(JsonNode b, boolean chat) {
    if (chat) {
      ChatTemplate template = model.chatTemplate();
      if (template == null) {
        throw ApiError.invalid("messages", "the model " + model.name() + " has no chat template; use "
            + "/v1/completions");
      }
      JsonNode messages = b.get("messages");
      if (messages == null || !messages.isArray() || messages.isEmpty()) {
        throw ApiError.invalid("messages", "messages must be a non-empty list");
      }
      List<ChatTemplate.Message> list = new ArrayList<>();
      for (int i = 0; i < messages.size(); i++) {
        JsonNode m = messages.get(i);
        String role = m.path("role").asText("");
        if (role.isEmpty()) {
          throw ApiError.invalid("messages[" + i + "].role", "a message needs a role");
        }
        list.add(new ChatTemplate.Message(role, content(m.get("content"), i)));
      }
      String text;
      try {
        text = template.render(list, true);
      } catch (ChatTemplate.ChatTemplateException e) {
        throw ApiError.invalid("messages", "the chat template refused the messages: " + e.getMessage());
      }
      // the template writes the special tokens (BOS included) itself
      return checked(List.of(model.tokenizer().encode(text, false)), "messages");
    }
    JsonNode p = b.get("prompt");
    if (p == null || p.isNull()) {
      throw ApiError.invalid("prompt", "prompt is required");
    }
    boolean bos = model.tokenizer().bosId() >= 0;
    List<int[]> out = new ArrayList<>();
    if (p.isTextual()) {
      out.add(model.tokenizer().encode(p.asText(), bos));
    } else if (p.isArray() && !p.isEmpty() && p.get(0).isIntegralNumber()) {
      out.add(ids(p));
    } else if (p.isArray() && !p.isEmpty()) {
      for (JsonNode x : p) {
        if (x.isTextual()) {
          out.add(model.tokenizer().encode(x.asText(), bos));
        } else if (x.isArray()) {
          out.add(ids(x));
        } else {
          throw ApiError.invalid("prompt", "prompt must be a string, a list of strings, or token ids");
        }
      }
    } else {
      throw ApiError.invalid("prompt", "prompt must be a string, a list of strings, or token ids");
    }
    return checked(out, "prompt");
  }

  /** Prompts the generator takes: not empty, every id in the vocabulary (else the whole batch would fail). */
  private List<int[]> checked(List<int[]> prompts, String param) {
    for (int[] ids : prompts) {
      if (ids.length == 0) {
        throw ApiError.invalid(param, "a prompt encodes to no tokens");
      }
      for (int t : ids) {
        if (t < 0 || t >= model.vocabSize()) {
          throw ApiError.invalid(param, "token id " + t + " is outside the model's vocabulary of "
              + model.vocabSize());
        }
      }
    }
    return prompts;
  }

  private static String content(JsonNode c, int i) {
    if (c == null || c.isNull()) {
      return "";
    }
    if (c.isTextual()) {
      return c.asText();
    }
    if (c.isArray()) {
      StringBuilder text = new StringBuilder();
      for (JsonNode part : c) {
        if (!part.path("type").asText().equals("text")) {
          throw ApiError.invalid("messages[" + i + "].content", "only text content parts are supported, got "
              + part.path("type").asText("?"));
        }
        text.append(part.path("text").asText());
      }
      return text.toString();
    }
    throw ApiError.invalid("messages[" + i + "].content", "content must be a string or a list of text parts");
  }

  private static int[] ids(JsonNode array) {
    int[] ids = new int[array.size()];
    for (int i = 0; i < ids.length; i++) {
      if (!array.get(i).isIntegralNumber() || !array.get(i).canConvertToInt()) {
        throw ApiError.invalid("prompt", "token ids must be integers, got " + array.get(i));
      }
      ids[i] = array.get(i).asInt();
    }
    return ids;
  }

  // ------------------------------------------------------------------------------------------------ generation

  /** One choice being generated: its completion and its text so far. */
  private final class Choice {
    final int index;
    final Completion completion;
    final List<Integer> tokens = new ArrayList<>();
    final List<Float> logProbs = new ArrayList<>();
    final List<String> stop;
    final boolean streamed;
    final int[] prompt;
    final String promptText;
    /** The model's scores of prompt and completion (for alternatives and echo), or null. */
    Generator.Scored scored;
    String text = "";
    int sent; // characters of text already streamed
    int sentTokens; // tokens whose log-probs were streamed
    String finish;
    boolean roleSent;
    boolean stopToken; // it ended on a stop token (not part of its text)
    int stopId = -1; // that token

    Choice(int index, Completion completion, List<String> stop, boolean streamed, int[] prompt, String promptText) {
      this.index = index;
      this.streamed = streamed;
      this.completion = completion;
      this.stop = stop;
      this.prompt = prompt;
      this.promptText = promptText;
    }

    /** Takes the next event; returns false when the choice is over. */
    boolean take(long millis) throws InterruptedException, TimeoutException {
      if (completion == null) { // max_tokens 0: the prompt is only scored
        finish = "length";
        return false;
      }
      Completion.Event e = completion.next(millis);
      if (e.error() != null) {
        throw e.error();
      }
      stopToken = e.finish() == FinishReason.STOP;
      if (stopToken) {
        stopId = e.token();
      } else {
        tokens.add(e.token());
        logProbs.add(e.logProb());
      }
      // the text so far is needed only to stream it or to find a stop string; otherwise once, at the end
      if (!streamed && stop.isEmpty() && e.finish() == null) {
        return true;
      }
      text = model.tokenizer().decode(tokens.stream().mapToInt(Integer::intValue).toArray(), true);
      for (String s : stop) {
        int at = text.indexOf(s);
        if (at >= 0) {
          text = text.substring(0, at);
          finish = "stop";
          completion.cancel();
          return false;
        }
      }
      if (e.finish() != null) {
        finish = stopToken ? "stop" : "length";
        return false;
      }
      return true;
    }

    /** Tokens generated, its stop token included. */
    int generated() {
      return tokens.size() + (stopToken ? 1 : 0);
    }

    /** Text that is safe to stream: not the start of a stop string, not half a character. */
    String ready(boolean end) {
      int upto = text.length();
      if (!end) {
        for (String s : stop) {
          for (int k = Math.min(s.length() - 1, text.length()); k > 0; k--) {
            if (text.endsWith(s.substring(0, k))) {
              upto = Math.min(upto, text.length() - k);
              break;
            }
          }
        }
        while (upto > 0 && text.charAt(upto - 1) == '\uFFFD') {
          upto--;
        }
      }
      if (upto <= sent) {
        return "";
      }
      String delta = text.substring(sent, upto);
      sent = upto;
      return delta;
    }
  }

  private void complete(HttpExchange ex, JsonNode b, boolean chat) throws IOException {
    Params p = params(b, chat);
    List<int[]> prompts = prompts(b, chat);
    List<String> promptTexts = new ArrayList<>();
    for (int i = 0; i < prompts.size(); i++) { // what echo gives back: the prompt as sent, or its ids decoded
      JsonNode pr = b.get("prompt");
      JsonNode one = pr == null ? null : pr.isArray() && !pr.isEmpty() && !pr.get(0).isIntegralNumber() ? pr.get(i)
          : pr;
      promptTexts.add(one != null && one.isTextual() ? one.asText() : model.tokenizer().decode(prompts.get(i), true));
    }
    if ((long) prompts.size() * p.n() > MAX_SEQUENCES) {
      throw ApiError.invalid("n", prompts.size() + " prompts x n = " + p.n() + " is more than the "
          + MAX_SEQUENCES + " sequences one request may ask for");
    }
    // every prompt is checked before any is queued: a refused request generates nothing
    List<SamplingParams> sampling = new ArrayList<>();
    int promptTokens = 0;
    for (int[] prompt : prompts) {
      int room = model.maxPositions() - prompt.length;
      boolean scoreOnly = p.maxTokens() != null && p.maxTokens() == 0;
      if (room < (scoreOnly ? 0 : 1) || (p.maxTokens() != null && p.maxTokens() > room)) {
        throw ApiError.invalid(p.maxTokens() != null ? "max_tokens" : "prompt", "the prompt has " + prompt.length
            + " tokens" + (p.maxTokens() != null ? " and max_tokens is " + p.maxTokens() : "") + "; the model "
            + "takes " + model.maxPositions() + " in all");
      }
      int maxNew = p.maxTokens() != null ? p.maxTokens() : Math.min(room, model.defaultMaxTokens());
      sampling.add(maxNew == 0 ? null : new SamplingParams(p.temperature(), p.topK(), p.topP(), maxNew,
          model.stopIds()));
      promptTokens += prompt.length;
    }
    long seed = p.seed() != null ? p.seed() : ThreadLocalRandom.current().nextLong();
    List<Choice> choices = new ArrayList<>();
    String id = (chat ? "chatcmpl-" : "cmpl-") + UUID.randomUUID().toString().replace("-", "");
    boolean[] streaming = {false};
    try {
      for (int i = 0; i < prompts.size(); i++) {
        for (int j = 0; j < p.n(); j++) {
          Completion generated = sampling.get(i) == null ? null
              : batcher.submit(prompts.get(i), sampling.get(i), seed + choices.size());
          choices.add(new Choice(choices.size(), generated, p.stop(), p.stream(), prompts.get(i),
              promptTexts.get(i)));
        }
      }
      if (p.stream()) {
        streaming[0] = true;
        stream(ex, id, chat, p, choices, promptTokens);
      } else {
        for (Choice c : choices) {
          while (c.take(TOKEN_WAIT_MILLIS)) {
            // until the choice ends
          }
          if (p.logprobs() && (p.topLogprobs() > 0 || p.echo())) {
            // alternatives and the prompt's log-probs: one scoring pass over prompt and completion
            // echo lists the stop token too (as evaluation harnesses expect one generated token at the end)
            int[] all = java.util.stream.IntStream.concat(java.util.stream.IntStream.concat(
                java.util.Arrays.stream(c.prompt), c.tokens.stream().mapToInt(Integer::intValue)),
                p.echo() && c.stopToken ? java.util.stream.IntStream.of(c.stopId)
                    : java.util.stream.IntStream.empty()).toArray();
            c.scored = generator.score(all, p.topLogprobs());
          }
        }
        sendJson(ex, 200, whole(id, chat, p, choices, promptTokens));
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw failed(ex, streaming[0], new ApiError(503, "server_error", null, "interrupted"));
    } catch (TimeoutException e) {
      throw failed(ex, streaming[0], new ApiError(504, "server_error", null, "generation stalled: "
          + e.getMessage()));
    } catch (RuntimeException e) {
      throw failed(ex, streaming[0], e instanceof ApiError a ? a : new ApiError(500, "server_error", null,
          "generation failed: " + e.getMessage()));
    } finally {
      choices.stream().filter(c -> c.completion != null).forEach(c -> c.completion.cancel()); // a client gone
    }
  }

  /**
   * A failure after the answer began streaming cannot change its status: it goes out as an error event (and no
   * {@code [DONE]}), so the client does not take the text so far for a whole answer. Returns the error to throw when
   * nothing was sent yet.
   */
  private static ApiError failed(HttpExchange ex, boolean streaming, ApiError e) {
    if (!streaming) {
      return e;
    }
    log.warn("a streamed answer failed: {}", e.getMessage());
    try {
      ObjectNode body = JSON.createObjectNode();
      body.putObject("error").put("message", e.getMessage()).put("type", e.type).putNull("param").putNull("code");
      send(ex.getResponseBody(), body);
    } catch (IOException io) {
      log.debug("the client of the failed stream went away too: {}", io.toString());
    }
    e.reported = true;
    return e;
  }

  private ObjectNode whole(String id, boolean chat, Params p, List<Choice> choices, int promptTokens) {
    ObjectNode out = JSON.createObjectNode().put("id", id).put("object", chat ? "chat.completion" : "text_completion")
        .put("created", System.currentTimeMillis() / 1000).put("model", model.name());
    ArrayNode array = out.putArray("choices");
    int completionTokens = 0;
    for (Choice c : choices) {
      completionTokens += c.generated();
      ObjectNode o = array.addObject().put("index", c.index);
      if (chat) {
        o.putObject("message").put("role", "assistant").put("content", c.text);
        o.set("logprobs", p.logprobs() ? chatLogProbs(c, 0, c.tokens.size()) : null);
      } else {
        o.put("text", p.echo() ? c.promptText + c.text : c.text);
        o.set("logprobs", p.logprobs() ? completionLogProbs(c, 0, c.tokens.size(), p.echo()) : null);
      }
      o.put("finish_reason", c.finish);
    }
    out.set("usage", usage(promptTokens, completionTokens));
    return out;
  }

  private void stream(HttpExchange ex, String id, boolean chat, Params p, List<Choice> choices, int promptTokens)
      throws IOException, InterruptedException, TimeoutException {
    ex.getResponseHeaders().set("Content-Type", "text/event-stream; charset=utf-8");
    ex.getResponseHeaders().set("Cache-Control", "no-cache");
    ex.sendResponseHeaders(200, 0);
    OutputStream out = ex.getResponseBody();
    long created = System.currentTimeMillis() / 1000;
    List<Choice> live = new ArrayList<>(choices);
    long lastToken = System.currentTimeMillis();
    while (!live.isEmpty()) {
      boolean progressed = false;
      for (java.util.Iterator<Choice> it = live.iterator(); it.hasNext(); ) {
        Choice c = it.next();
        boolean going = true;
        boolean took = false;
        try {
          while (going) {
            going = c.take(took ? 0 : (live.size() == 1 ? TOKEN_WAIT_MILLIS : 5));
            took = true;
          }
        } catch (TimeoutException e) {
          // nothing more from this choice for now
        }
        if (!took) {
          continue;
        }
        progressed = true;
        String delta = c.ready(!going);
        int upto = c.tokens.size();
        if (!delta.isEmpty() || !going || (chat && !c.roleSent)) {
          send(out, chunk(id, created, chat, p, c, delta, upto, going ? null : c.finish));
        }
        if (!going) {
          it.remove();
        }
      }
      if (progressed) {
        lastToken = System.currentTimeMillis();
      } else if (System.currentTimeMillis() - lastToken > TOKEN_WAIT_MILLIS) {
        throw new TimeoutException("no token in " + TOKEN_WAIT_MILLIS + " ms");
      }
    }
    if (p.includeUsage()) {
      int completionTokens = choices.stream().mapToInt(Choice::generated).sum();
      ObjectNode u = JSON.createObjectNode().put("id", id)
          .put("object", chat ? "chat.completion.chunk" : "text_completion").put("created", created)
          .put("model", model.name());
      u.putArray("choices");
      u.set("usage", usage(promptTokens, completionTokens));
      send(out, u);
    }
    out.write("data: [DONE]\n\n".getBytes(StandardCharsets.UTF_8));
    out.flush();
  }

  private ObjectNode chunk(String id, long created, boolean chat, Params p, Choice c, String delta, int upto,
      String finish) {
    ObjectNode o = JSON.createObjectNode().put("id", id)
        .put("object", chat ? "chat.completion.chunk" : "text_completion").put("created", created)
        .put("model", model.name());
    ObjectNode choice = o.putArray("choices").addObject().put("index", c.index);
    JsonNode logprobs = null;
    if (p.logprobs() && upto > c.sentTokens) {
      logprobs = chat ? chatLogProbs(c, c.sentTokens, upto) : completionLogProbs(c, c.sentTokens, upto, false);
      c.sentTokens = upto;
    }
    if (chat) {
      ObjectNode d = choice.putObject("delta");
      if (!c.roleSent) {
        d.put("role", "assistant");
        c.roleSent = true;
      }
      if (!delta.isEmpty() || finish == null) {
        d.put("content", delta);
      }
    } else {
      choice.put("text", delta);
    }
    choice.set("logprobs", logprobs);
    choice.put("finish_reason", finish);
    return o;
  }

  private static void send(OutputStream out, JsonNode event) throws IOException {
    out.write(("data: " + JSON.writeValueAsString(event) + "\n\n").getBytes(StandardCharsets.UTF_8));
    out.flush();
  }

  private String tokenText(int token) {
    return model.tokenizer().decode(new int[] {token}, false);
  }

  /** Characters a token adds to the text (special tokens such as BOS add none). */
  private int textLength(int token) {
    return model.tokenizer().decode(new int[] {token}, true).length();
  }

  /** Completion token {@code i}'s log-prob: from the scoring pass when there was one, else as it was sampled. */
  private static float logProb(Choice c, int i) {
    return c.scored != null ? c.scored.logProbs()[c.prompt.length - 1 + i] : c.logProbs.get(i);
  }

  private ObjectNode chatLogProbs(Choice c, int from, int to) {
    ObjectNode o = JSON.createObjectNode();
    ArrayNode content = o.putArray("content");
    for (int i = from; i < to; i++) {
      ObjectNode entry = tokenEntry(content.addObject(), c.tokens.get(i), logProb(c, i));
      ArrayNode top = entry.putArray("top_logprobs");
      if (c.scored != null && c.scored.topIds().length > 0 && c.scored.topIds()[0] != null) {
        int at = c.prompt.length - 1 + i;
        for (int j = 0; j < c.scored.topIds()[at].length; j++) {
          tokenEntry(top.addObject(), c.scored.topIds()[at][j], c.scored.topLogProbs()[at][j]);
        }
      }
    }
    return o;
  }

  private ObjectNode tokenEntry(ObjectNode entry, int token, float logProb) {
    String t = tokenText(token);
    entry.put("token", t).put("logprob", logProb);
    ArrayNode bytes = entry.putArray("bytes");
    for (byte x : t.getBytes(StandardCharsets.UTF_8)) {
      bytes.add(x & 0xff);
    }
    return entry;
  }

  /**
   * The legacy completions log-probs: tokens, their log-probs and text offsets, with {@code echo} the prompt's
   * tokens first (the first one has none), and the most likely alternatives per position when asked.
   */
  private ObjectNode completionLogProbs(Choice c, int from, int to, boolean echo) {
    ObjectNode o = JSON.createObjectNode();
    ArrayNode tokens = o.putArray("tokens");
    ArrayNode values = o.putArray("token_logprobs");
    ArrayNode offsets = o.putArray("text_offset");
    boolean alternatives = c.scored != null && c.scored.topIds().length > 0 && c.scored.topIds()[0] != null;
    ArrayNode top = alternatives ? JSON.createArrayNode() : null;
    int offset = 0;
    if (echo) {
      for (int i = 0; i < c.prompt.length; i++) {
        tokens.add(tokenText(c.prompt[i]));
        offsets.add(offset);
        if (i == 0) {
          values.addNull();
          if (top != null) {
            top.addNull();
          }
        } else {
          values.add(c.scored.logProbs()[i - 1]);
          if (top != null) {
            top.add(alternatives(c, i - 1));
          }
        }
        offset += textLength(c.prompt[i]);
      }
    }
    for (int i = 0; i < to; i++) {
      if (i >= from) {
        tokens.add(tokenText(c.tokens.get(i)));
        values.add(logProb(c, i));
        offsets.add(offset);
        if (top != null) {
          top.add(alternatives(c, c.prompt.length - 1 + i));
        }
      }
      offset += textLength(c.tokens.get(i));
    }
    if (echo && c.stopToken && c.scored != null) { // the stop token, which adds no text
      int at = c.prompt.length - 1 + c.tokens.size();
      tokens.add(tokenText(c.stopId));
      values.add(c.scored.logProbs()[at]);
      offsets.add(offset);
      if (top != null) {
        top.add(alternatives(c, at));
      }
    }
    o.set("top_logprobs", top);
    return o;
  }

  /** {token: log-prob} of the most likely tokens at a scored position. */
  private ObjectNode alternatives(Choice c, int at) {
    ObjectNode m = JSON.createObjectNode();
    for (int j = 0; j < c.scored.topIds()[at].length; j++) {
      String t = tokenText(c.scored.topIds()[at][j]);
      if (!m.has(t)) { // two ids that decode alike: the likelier one stands
        m.put(t, c.scored.topLogProbs()[at][j]);
      }
    }
    return m;
  }

  private static ObjectNode usage(int prompt, int completion) {
    return JSON.createObjectNode().put("prompt_tokens", prompt).put("completion_tokens", completion)
        .put("total_tokens", prompt + completion);
  }

  private static void sendJson(HttpExchange ex, int status, JsonNode body) throws IOException {
    byte[] bytes = JSON.writeValueAsBytes(body);
    ex.getResponseHeaders().set("Content-Type", "application/json");
    ex.sendResponseHeaders(status, bytes.length);
    try (OutputStream out = ex.getResponseBody()) {
      out.write(bytes);
    }
  }

  private static void sendError(HttpExchange ex, ApiError e) {
    ObjectNode body = JSON.createObjectNode();
    ObjectNode err = body.putObject("error").put("message", e.getMessage()).put("type", e.type);
    err.put("param", e.param);
    err.putNull("code");
    try {
      sendJson(ex, e.status, body);
    } catch (IOException | RuntimeException io) {
      log.debug("could not send an error ({}) to {}: {}", e.getMessage(), ex.getRemoteAddress(), io.toString());
    }
  }
}
