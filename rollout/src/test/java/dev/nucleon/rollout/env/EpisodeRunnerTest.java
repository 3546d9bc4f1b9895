package dev.nucleon.rollout.env;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import dev.nucleon.core.env.EnvMessage;
import dev.nucleon.core.env.Environment;
import dev.nucleon.core.env.Episode;
import dev.nucleon.core.env.StepResult;
import dev.nucleon.core.rollout.PromptGroup;
import dev.nucleon.core.rollout.Trajectory;
import dev.nucleon.model.Engines;
import dev.nucleon.model.LlamaConfig;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.generate.Generator;
import dev.nucleon.model.generate.SamplingParams;
import dev.nucleon.model.tokenizer.TextTokenizer;
import dev.nucleon.rollout.RolloutEngine;
import dev.nucleon.rollout.data.ChatTemplate;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Multi-turn rollouts through an environment: the model's turns and the environment's rendered answers alternate in
 * one trajectory whose loss mask is 0 exactly on the environment's tokens; episodes end by the environment (with its
 * reason and reward), by the turn limit, or by a failure that the trajectory carries; chat templates are followed
 * turn by turn.
 */
class EpisodeRunnerTest {

  /** One id per printable ASCII character after the specials 0 (unknown), 1 (BOS), 2 (EOS). */
  static final class Chars implements TextTokenizer {
    @Override
    public int[] encode(String text, boolean addSpecialTokens) {
      int[] ids = new int[text.length() + (addSpecialTokens ? 1 : 0)];
      int k = 0;
      if (addSpecialTokens) {
        ids[k++] = 1;
      }
      for (char c : text.toCharArray()) {
        ids[k++] = c >= 32 && c < 127 ? c - 29 : 0;
      }
      return ids;
    }

    @Override
    public String decode(int[] ids, boolean skipSpecialTokens) {
      StringBuilder out = new StringBuilder();
      for (int id : ids) {
        if (id >= 3) {
          out.append((char) (id + 29));
        }
      }
      return out.toString();
    }

    @Override
    public int vocabSize() {
      return 98;
    }

    @Override
    public int bosId() {
      return 1;
    }

    @Override
    public int[] eosIds() {
      return new int[] {2};
    }
  }

  static NDManager manager;
  static RolloutEngine engine;
  static final Chars CHARS = new Chars();

  @BeforeAll
  static void setUp() {
    Engines.start();
    manager = NDManager.newBaseManager();
    LlamaModel model = LlamaModel.random(LlamaConfig.llama(98, 32, 64, 2, 4, 2, 256, true), manager, 3);
    engine = new RolloutEngine(new Generator(model, 0), CHARS, SamplingParams.sample(1f, 5));
  }

  @AfterAll
  static void tearDown() {
    engine.close();
    manager.close();
  }

  static List<PromptGroup> groups() {
    return List.of(new PromptGroup(1, 0, "12+30=", "42", Map.of(), 3, 5),
        new PromptGroup(2, 0, "7+8=", "15", Map.of(), 2, 6));
  }

  /** Answers every turn with feedback that names the turn, ends at turn 3 with a reward of 0.25 x its prompt id. */
  static final class Scripted implements Environment {
    @Override
    public Episode start(dev.nucleon.core.env.EpisodeStart start) {
      return new Episode() {
        int turns;

        @Override
        public StepResult step(String modelTurn) {
          turns++;
          if (turns == 3) {
            return StepResult.end(0.25 * start.promptId(), "scripted end");
          }
          return StepResult.observe(EnvMessage.user("no#" + turns));
        }
      };
    }
  }

  @Test
  void turnsAlternateWithTheEnvironmentsAnswersWhichCarryNoLoss() {
    String format = "|{content}|{prompt}";
    try (EpisodeRunner runner = new EpisodeRunner(new GuardedEnvironment(new Scripted(), "scripted",
        Duration.ofSeconds(5)), TurnFormat.plain(format), 5, 0)) {
      List<List<Trajectory>> out = runner.generate(engine, groups()).join();
      assertEquals(2, out.size());
      assertEquals(3, out.get(0).size());
      for (List<Trajectory> group : out) {
        for (Trajectory t : group) {
          assertEquals(3, t.episode().turns());
          assertEquals("scripted end", t.episode().endReason());
          assertEquals(0.25 * t.promptId(), t.episode().reward());
          assertNull(t.episode().failure());
          // the environment's tokens are exactly its two rendered answers, untrained, in place
          String prompt = t.promptId() == 1 ? "12+30=" : "7+8=";
          List<int[]> answers = List.of(CHARS.encode("|no#1|" + prompt, false), CHARS.encode("|no#2|" + prompt,
              false));
          List<Integer> untrained = new ArrayList<>();
          int runs = 0;
          for (int j = 0; j < t.completionTokens().length; j++) {
            if (!t.trained(j)) {
              if (j == 0 || t.trained(j - 1)) {
                runs++;
              }
              untrained.add(t.completionTokens()[j]);
            }
          }
          assertEquals(2, runs, "two answers between three turns");
          int[] expected = new int[answers.get(0).length + answers.get(1).length];
          System.arraycopy(answers.get(0), 0, expected, 0, answers.get(0).length);
          System.arraycopy(answers.get(1), 0, expected, answers.get(0).length, answers.get(1).length);
          assertArrayEquals(expected, untrained.stream().mapToInt(Integer::intValue).toArray());
          // the completion text is the last model turn
          int lastAnswer = 0;
          for (int j = 0; j < t.completionTokens().length; j++) {
            lastAnswer = t.trained(j) ? lastAnswer : j + 1;
          }
          int[] lastTurn = Arrays.copyOfRange(t.completionTokens(), lastAnswer, t.completionTokens().length);
          if (t.finishReason() == dev.nucleon.core.rollout.FinishReason.STOP) {
            lastTurn = Arrays.copyOf(lastTurn, lastTurn.length - 1);
          }
          assertEquals(CHARS.decode(lastTurn, true), t.completionText());
        }
      }
    }
  }

  @Test
  void theTurnLimitAndAFailingEnvironmentEndEpisodesWithTheirReason() {
    try (EpisodeRunner runner = new EpisodeRunner(new GuardedEnvironment(new Scripted(), "scripted",
        Duration.ofSeconds(5)), TurnFormat.plain("{content}"), 2, 0)) {
      for (Trajectory t : runner.generate(engine, groups()).join().get(0)) {
        assertEquals(2, t.episode().turns());
        assertEquals("max_turns", t.episode().endReason());
        assertNull(t.episode().reward(), "the run's reward scores the last turn");
      }
    }
    Environment failing = start -> modelTurn -> {
      throw new IllegalStateException("the simulator crashed");
    };
    try (EpisodeRunner runner = new EpisodeRunner(new GuardedEnvironment(failing, "crashy", Duration.ofSeconds(5)),
        TurnFormat.plain("{content}"), 3, 0)) {
      for (Trajectory t : runner.generate(engine, groups()).join().get(1)) {
        assertEquals(1, t.episode().turns());
        assertEquals("failed", t.episode().endReason());
        assertTrue(t.episode().failure().contains("the simulator crashed"), t.episode().failure());
      }
    }
  }

  /** Holds at most two episodes at once, as a remote environment with two servers; counts what it saw. */
  static final class TwoAtATime implements Environment {
    final java.util.concurrent.atomic.AtomicInteger open = new java.util.concurrent.atomic.AtomicInteger();
    final java.util.concurrent.atomic.AtomicInteger most = new java.util.concurrent.atomic.AtomicInteger();

    @Override
    public int capacity() {
      return 2;
    }

    @Override
    public Episode start(dev.nucleon.core.env.EpisodeStart start) {
      most.accumulateAndGet(open.incrementAndGet(), Math::max);
      if (start.sampleIndex() == 1 && start.promptId() == 2) {
        open.decrementAndGet();
        throw new IllegalStateException("no server for this one");
      }
      return new Episode() {
        int turns;

        @Override
        public StepResult step(String modelTurn) {
          return ++turns == 2 ? StepResult.end(1.0, "two turns") : StepResult.observe(EnvMessage.user("again"));
        }

        @Override
        public Map<String, Long> counters() {
          return Map.of("steps", (long) turns);
        }

        @Override
        public void close() {
          open.decrementAndGet();
        }
      };
    }
  }

  @Test
  void episodesRunWithinTheEnvironmentsCapacityAndKeepTheirCounters() {
    TwoAtATime env = new TwoAtATime();
    try (EpisodeRunner runner = new EpisodeRunner(new GuardedEnvironment(env, "two", Duration.ofSeconds(5)),
        TurnFormat.plain("{content}"), 0, 0)) {
      List<List<Trajectory>> out = runner.generate(engine, groups()).join();
      int failed = 0;
      for (List<Trajectory> group : out) {
        for (Trajectory t : group) {
          if (t.episode().failure() != null) {
            failed++;
            assertTrue(t.episode().failure().contains("no server for this one"), t.episode().failure());
            assertEquals(1, t.completionTokens().length, "an episode that could not start takes one token");
          } else {
            assertEquals("two turns", t.episode().endReason());
            assertEquals(Map.of("steps", 2L), t.episode().counters());
          }
        }
      }
      assertEquals(1, failed);
    }
    assertEquals(2, env.most.get(), "at most the environment's capacity at once");
    assertEquals(0, env.open.get(), "every episode closed");
  }

  @Test
  void theTokenBudgetEndsLongEpisodes() {
    try (EpisodeRunner runner = new EpisodeRunner(new GuardedEnvironment(new Scripted(), "scripted",
        Duration.ofSeconds(5)), TurnFormat.plain("{content} and a long answer that does not fit"), 5, 24)) {
      for (Trajectory t : runner.generate(engine, groups()).join().get(0)) {
        assertEquals("max_tokens", t.episode().endReason());
        assertTrue(t.completionTokens().length <= 24);
      }
    }
  }

  /**
   * A prompt, the model's turns each with its stop token, and what the format feeds after each (feedback, a tool's
   * result) = the template's rendering of the whole conversation.
   */
  @Test
  void chatTemplatesAreFollowedTurnByTurn() {
    String[][] templates = {
        {"hf-real/tokenizers/TinyLlama-1.1B-Chat-v1.0/tokenizer_config.json", "</s>"},
        {"hf-real/extra/DeepSeek-R1/tokenizer_config.json", "<\uff5cend\u2581of\u2581sentence\uff5c>"}};
    for (String[] t : templates) {
      ChatTemplate template = ChatTemplate.fromTokenizerConfig(t[0], resource(t[0]), null, "chat_template.jinja");
      TurnFormat format = TurnFormat.chat(template);
      List<ChatTemplate.Message> conversation = new ArrayList<>(List.of(ChatTemplate.Message.user("What is 2+3?")));
      StringBuilder fed = new StringBuilder(template.render(conversation, true));
      String[] turns = {"It is 6.", "Let me compute 2+3.", "It is 5."};
      for (int k = 0; k < turns.length; k++) {
        String turn = turns[k];
        conversation.add(ChatTemplate.Message.assistant(turn));
        fed.append(turn).append(t[1]);
        // feedback as the user, then a tool's result
        EnvMessage answer = k == 1 ? EnvMessage.tool("calculator", "5") : EnvMessage.user("Check " + turn.length());
        conversation.add(new ChatTemplate.Message(answer.role(), answer.content()));
        fed.append(format.after("What is 2+3?", List.of(answer), t[1]));
      }
      assertEquals(template.render(conversation, true), fed.toString(), t[0]);
    }
  }

  /**
   * gpt-oss's template renders a tool result only after an assistant message calling that tool: the model's call
   * (ended by its stop token {@code <|call|>}), the tool's result, a second call, its result and feedback on an
   * answer are fed as the template renders the whole conversation, and the model's turns parse as the calls they
   * are.
   */
  @Test
  void harmonyToolResultsFollowTheCallsTheModelMade() {
    String config = "hf-real/extra/gpt-oss-20b/tokenizer_config.json";
    ChatTemplate template = ChatTemplate.fromTokenizerConfig(config, resource(config),
        resource("hf-real/extra/gpt-oss-20b/chat_template.jinja"), "chat_template.jinja")
        .withClock(java.time.Clock.fixed(java.time.Instant.parse("2025-06-28T12:00:00Z"), java.time.ZoneOffset.UTC));
    TurnFormat format = TurnFormat.chat(template);
    List<ChatTemplate.Message> conversation = new ArrayList<>(List.of(ChatTemplate.Message.user("What is 2+3?")));
    StringBuilder fed = new StringBuilder(template.render(conversation, true));
    for (String expression : List.of("2+3", "5*1")) {
      Map<String, Object> arguments = Map.of("expression", expression);
      ChatTemplate.Message call = ChatTemplate.Message.assistantCalling("",
          List.of(new ChatTemplate.ToolCall("calculator", arguments)));
      // what the model writes after the generation prompt: the template's rendering of its call
      String before = template.render(conversation, true);
      conversation.add(call);
      String rendered = template.render(conversation, false);
      assertTrue(rendered.startsWith(before) && rendered.endsWith("<|call|>"), rendered);
      String turn = rendered.substring(before.length(), rendered.length() - "<|call|>".length());
      var parsed = dev.nucleon.rollout.tools.ToolCallFormat.HARMONY.parse(turn + "<|call|>");
      assertEquals(1, parsed.calls.size(), turn);
      assertEquals(expression, parsed.calls.get(0).arguments().get("expression").asText());
      fed.append(turn).append("<|call|>");
      EnvMessage result = EnvMessage.tool("calculator", "5");
      conversation.add(new ChatTemplate.Message(result.role(), result.content()));
      fed.append(format.after("What is 2+3?", List.of(result), "<|call|>"));
    }
    assertEquals(template.render(conversation, true), fed.toString());
    // an answer, then feedback as the user: the plain rendering (gpt-oss closes earlier answers with <|end|>)
    conversation.add(ChatTemplate.Message.assistant("It is 5."));
    fed.append("<|channel|>final<|message|>It is 5.<|end|>");
    conversation.add(ChatTemplate.Message.user("Are you sure?"));
    fed.append(format.after("What is 2+3?", List.of(EnvMessage.user("Are you sure?")), "<|end|>"));
    assertEquals(template.render(conversation, true), fed.toString());
  }

  private static String resource(String path) {
    try (var in = EpisodeRunnerTest.class.getClassLoader().getResourceAsStream(path)) {
      return new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
    } catch (java.io.IOException | NullPointerException e) {
      throw new IllegalStateException("test resource " + path, e);
    }
  }
}
