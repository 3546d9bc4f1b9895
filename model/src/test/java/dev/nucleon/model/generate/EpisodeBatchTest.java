package dev.nucleon.model.generate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import dev.nucleon.core.rollout.FinishReason;
import dev.nucleon.model.Engines;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.TinyModels;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Multi-turn episodes ({@link Generator#generateEpisodes}): the model's turns and the handler's answers share one KV
 * cache, extended by each answer, and what the model sampled is exactly what scoring the whole episode in one pass
 * gives; answers carry no training mark, and an episode ends when its handler says so or its budget is spent.
 */
class EpisodeBatchTest {

  static NDManager manager;
  static LlamaModel model;
  static Generator generator;

  @BeforeAll
  static void setUp() {
    Engines.start();
    manager = NDManager.newBaseManager();
    model = LlamaModel.random(TinyModels.qwenLike(), manager, 11);
    generator = new Generator(model, 0);
  }

  @AfterAll
  static void tearDown() {
    generator.close();
    model.close();
    manager.close();
  }

  static final int[][] PROMPTS = {{1, 5, 9}, {1, 7, 3, 8, 20, 33, 4}, {1}, {1, 44, 12, 6, 50}};
  /** Model turns each episode takes before its handler ends it. */
  static final int[] TURNS = {3, 2, 1, 3};

  /** Answers of different lengths per episode and turn (longer than a turn, so the cache grows); records turns. */
  static final class Scripted implements TurnHandler {
    final Map<Integer, List<int[]>> turns = new ConcurrentHashMap<>();
    final Map<Integer, List<int[]>> answers = new ConcurrentHashMap<>();

    @Override
    public CompletableFuture<int[]> next(int episode, int turn, int[] turnTokens, FinishReason reason) {
      turns.computeIfAbsent(episode, k -> new ArrayList<>()).add(turnTokens);
      if (turn + 1 >= TURNS[episode]) {
        return CompletableFuture.completedFuture(null);
      }
      int[] answer = new int[1 + (episode * 3 + turn * 5) % 9];
      for (int j = 0; j < answer.length; j++) {
        answer[j] = 10 + (episode * 7 + turn * 3 + j) % 40;
      }
      answers.computeIfAbsent(episode, k -> new ArrayList<>()).add(answer);
      // answered later, from another thread, as an environment would
      return CompletableFuture.supplyAsync(() -> answer);
    }
  }

  static List<EpisodeRequest> requests(SamplingParams p, long seed, int maxTokens) {
    List<EpisodeRequest> out = new ArrayList<>();
    for (int i = 0; i < PROMPTS.length; i++) {
      out.add(new EpisodeRequest(PROMPTS[i], p, seed + i, maxTokens));
    }
    return out;
  }

  @Test
  void turnsAndAnswersShareOneCacheAndMatchScoringTheWholeEpisode() {
    float temperature = 0.8f;
    SamplingParams p = SamplingParams.sample(temperature, 6);
    Scripted handler = new Scripted();
    List<EpisodeResult> results = generator.generateEpisodes(requests(p, 7, 100), handler);
    int[][] seqs = new int[PROMPTS.length][];
    for (int i = 0; i < PROMPTS.length; i++) {
      EpisodeResult r = results.get(i);
      assertEquals(EpisodeResult.End.HANDLER, r.end(), "episode " + i);
      assertEquals(TURNS[i], r.turns(), "episode " + i);
      // the tokens are the turns the handler saw, each followed by its answer, answers untrained
      List<Integer> expected = new ArrayList<>();
      List<Byte> mask = new ArrayList<>();
      for (int t = 0; t < TURNS[i]; t++) {
        for (int x : handler.turns.get(i).get(t)) {
          expected.add(x);
          mask.add((byte) 1);
        }
        if (t + 1 < TURNS[i]) {
          for (int x : handler.answers.get(i).get(t)) {
            expected.add(x);
            mask.add((byte) 0);
          }
        }
      }
      assertArrayEquals(expected.stream().mapToInt(Integer::intValue).toArray(), r.tokens(), "episode " + i);
      byte[] m = new byte[mask.size()];
      for (int j = 0; j < m.length; j++) {
        m[j] = mask.get(j);
        if (m[j] == 0) {
          assertEquals(0f, r.samplingLogProbs()[j]);
        }
      }
      assertArrayEquals(m, r.trained(), "episode " + i);
      seqs[i] = new int[PROMPTS[i].length + r.tokens().length];
      System.arraycopy(PROMPTS[i], 0, seqs[i], 0, PROMPTS[i].length);
      System.arraycopy(r.tokens(), 0, seqs[i], PROMPTS[i].length, r.tokens().length);
    }
    // the cache extended turn by turn = the whole episode scored at once
    try (NDManager m = NDManager.newBaseManager()) {
      int width = Arrays.stream(seqs).mapToInt(s -> s.length).max().orElseThrow() - 1;
      float[] tempered = model.tokenLogProbs(m, seqs, temperature).toFloatArray();
      float[] raw = model.tokenLogProbs(m, seqs, 1f).toFloatArray();
      double maxErr = 0;
      int checked = 0;
      for (int i = 0; i < seqs.length; i++) {
        EpisodeResult r = results.get(i);
        for (int t = 0; t < r.tokens().length; t++) {
          if (r.trained()[t] == 1) {
            int col = PROMPTS[i].length - 1 + t;
            maxErr = Math.max(maxErr, Math.abs(tempered[i * width + col] - r.samplingLogProbs()[t]));
            maxErr = Math.max(maxErr, Math.abs(raw[i * width + col] - r.modelLogProbs()[t]));
            checked++;
          }
        }
      }
      assertTrue(checked > 20, "sampled tokens checked: " + checked);
      assertTrue(maxErr < 1e-4, "episode log-probs vs scoring: max abs error " + maxErr);
    }
  }

  @Test
  void anEpisodeBatchedWithOthersIsWhatItIsAlone() {
    SamplingParams p = SamplingParams.sample(1f, 5);
    List<EpisodeResult> batched = generator.generateEpisodes(requests(p, 3, 100), new Scripted());
    for (int i = 0; i < PROMPTS.length; i++) {
      int episode = i;
      TurnHandler alone = (e, turn, tokens, reason) -> new Scripted().next(episode, turn, tokens, reason);
      EpisodeResult r = generator.generateEpisodes(
          List.of(new EpisodeRequest(PROMPTS[i], p, 3 + i, 100)), alone).get(0);
      assertArrayEquals(r.tokens(), batched.get(i).tokens(), "episode " + i);
      assertArrayEquals(r.trained(), batched.get(i).trained(), "episode " + i);
    }
  }

  @Test
  void theTokenBudgetEndsAnEpisodeAfterItsHandlerSawTheLastTurn() {
    SamplingParams p = SamplingParams.sample(1f, 4);
    List<int[]> seen = new ArrayList<>();
    TurnHandler endless = (e, turn, tokens, reason) -> {
      seen.add(tokens);
      return CompletableFuture.completedFuture(new int[] {20, 21, 22});
    };
    EpisodeResult r = generator.generateEpisodes(List.of(new EpisodeRequest(PROMPTS[0], p, 1, 12)), endless).get(0);
    assertEquals(EpisodeResult.End.TOKEN_LIMIT, r.end());
    assertTrue(r.tokens().length <= 12, "within its budget: " + r.tokens().length);
    assertEquals(r.turns(), seen.size(), "the handler sees every turn");
    int trained = 0;
    for (byte b : r.trained()) {
      trained += b;
    }
    assertEquals(seen.stream().mapToInt(t -> t.length).sum(), trained);
  }

  @Test
  void badAnswersAndModelsAreRefused() {
    SamplingParams p = SamplingParams.sample(1f, 3);
    TurnHandler outside = (e, turn, tokens, reason) -> CompletableFuture.completedFuture(new int[] {1000});
    Exception e = assertThrows(Exception.class,
        () -> generator.generateEpisodes(List.of(new EpisodeRequest(PROMPTS[0], p, 1, 50)), outside));
    assertTrue(String.valueOf(e.getMessage()).contains("1000"), String.valueOf(e.getMessage()));
    assertThrows(IllegalArgumentException.class, () -> new EpisodeRequest(PROMPTS[0], p, 1, 0));
  }
}
