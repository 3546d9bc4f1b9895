package dev.nucleon.model.generate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import dev.nucleon.core.rollout.FinishReason;
import dev.nucleon.model.Engines;
import dev.nucleon.model.LlamaConfig;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.TinyModels;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class GeneratorTest {

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

  static List<GenerationRequest> requests(SamplingParams p, long seed, int[]... prompts) {
    List<GenerationRequest> out = new ArrayList<>();
    for (int i = 0; i < prompts.length; i++) {
      out.add(new GenerationRequest(prompts[i], p, seed + i));
    }
    return out;
  }

  static final int[][] PROMPTS = {{1, 5, 9}, {1, 7, 3, 8, 20, 33, 4}, {1}, {1, 44, 12, 6, 50}};

  @Test
  void sameSeedSameSamplesAndOtherSeedOtherSamples() {
    SamplingParams p = SamplingParams.sample(1.0f, 16);
    var a = generator.generate(requests(p, 100, PROMPTS));
    var b = generator.generate(requests(p, 100, PROMPTS));
    var c = generator.generate(requests(p, 200, PROMPTS));
    for (int i = 0; i < PROMPTS.length; i++) {
      assertArrayEquals(a.get(i).tokens(), b.get(i).tokens());
      assertArrayEquals(a.get(i).samplingLogProbs(), b.get(i).samplingLogProbs());
    }
    boolean anyDifferent = false;
    for (int i = 0; i < PROMPTS.length; i++) {
      anyDifferent |= !Arrays.equals(a.get(i).tokens(), c.get(i).tokens());
    }
    assertTrue(anyDifferent, "a different seed should change some sample");
  }

  @Test
  void promptsOfDifferentLengthsInOneBatchGiveWhatEachGivesAlone() {
    SamplingParams p = new SamplingParams(0.9f, 20, 0.95f, 12, new int[0]);
    var batched = generator.generate(requests(p, 5, PROMPTS));
    for (int i = 0; i < PROMPTS.length; i++) {
      var alone = generator.generate(List.of(new GenerationRequest(PROMPTS[i], p, 5 + i))).get(0);
      assertArrayEquals(alone.tokens(), batched.get(i).tokens(), "prompt " + i);
      for (int t = 0; t < alone.tokens().length; t++) {
        assertEquals(alone.samplingLogProbs()[t], batched.get(i).samplingLogProbs()[t], 1e-5);
        assertEquals(alone.modelLogProbs()[t], batched.get(i).modelLogProbs()[t], 1e-5);
      }
    }
  }

  @Test
  void requestsSharingAPromptArePrefilledOnceAndEachGivesWhatItGivesAlone() {
    // a GRPO-like batch: three samples of one prompt, two of another, interleaved with a prompt of its own
    int[][] prompts = {PROMPTS[1], PROMPTS[0], PROMPTS[1], PROMPTS[3], PROMPTS[0], PROMPTS[1]};
    SamplingParams p = SamplingParams.sample(1f, 10);
    List<GenerationRequest> requests = requests(p, 40, prompts);
    long before = generator.prefilledRows();
    List<GenerationResult> batched = generator.generate(requests);
    assertEquals(3, generator.prefilledRows() - before, "one prefilled row per distinct prompt");
    for (int i = 0; i < prompts.length; i++) {
      var alone = generator.generate(List.of(requests.get(i))).get(0);
      assertArrayEquals(alone.tokens(), batched.get(i).tokens(), "request " + i);
      for (int t = 0; t < alone.tokens().length; t++) {
        assertEquals(alone.samplingLogProbs()[t], batched.get(i).samplingLogProbs()[t], 1e-5);
        assertEquals(alone.modelLogProbs()[t], batched.get(i).modelLogProbs()[t], 1e-5);
      }
    }
    assertTrue(!Arrays.equals(batched.get(0).tokens(), batched.get(2).tokens())
        || !Arrays.equals(batched.get(0).tokens(), batched.get(5).tokens()),
        "samples of one prompt draw from their own streams");
  }

  @Test
  void aContinuousBatchPrefillsEachAdmissionsSharedPromptsOnce() {
    // groups of samples side by side, as a rollout worker sends them; 4 slots: the first admission takes a group of
    // three and one of the next, later ones what finished rows free
    int[][] prompts = {PROMPTS[1], PROMPTS[1], PROMPTS[1], PROMPTS[0], PROMPTS[0], PROMPTS[3], PROMPTS[3],
        PROMPTS[3], PROMPTS[2], PROMPTS[2]};
    int[] limits = {3, 9, 5, 12, 2, 7, 4, 10, 6, 1};
    List<GenerationRequest> requests = new ArrayList<>();
    for (int i = 0; i < prompts.length; i++) {
      requests.add(new GenerationRequest(prompts[i], SamplingParams.sample(1f, limits[i]), 70 + i));
    }
    List<GenerationResult> batched = generator.generate(requests);
    long before = generator.prefilledRows();
    assertSame(batched, generator.generate(requests, 4));
    long prefilled = generator.prefilledRows() - before;
    assertTrue(prefilled >= 4 && prefilled < prompts.length, "prefilled rows: " + prefilled);
  }

  @Test
  void samplingLogProbsMatchTheScoringPath() {
    assertSamplingMatchesScoring(model, generator);
  }

  @Test
  void samplingLogProbsMatchTheScoringPathWhenDrawnOnTheDevice() {
    // 4 prompts x a vocabulary of 2^16: large enough to be drawn on the device
    LlamaConfig big = LlamaConfig.llama(1 << 16, 16, 32, 1, 2, 1, 64, true);
    assertTrue(4L * big.vocabSize() >= Generator.DEVICE_SAMPLING_MIN);
    try (NDManager m = NDManager.newBaseManager(); LlamaModel wide = LlamaModel.random(big, m, 5);
        Generator g = new Generator(wide, 0)) {
      assertSamplingMatchesScoring(wide, g);
    }
  }

  private static void assertSamplingMatchesScoring(LlamaModel model, Generator generator) {
    float temperature = 0.7f;
    SamplingParams p = SamplingParams.sample(temperature, 10);
    var results = generator.generate(requests(p, 42, PROMPTS));
    int[][] seqs = new int[PROMPTS.length][];
    for (int i = 0; i < PROMPTS.length; i++) {
      int[] c = results.get(i).tokens();
      seqs[i] = new int[PROMPTS[i].length + c.length];
      System.arraycopy(PROMPTS[i], 0, seqs[i], 0, PROMPTS[i].length);
      System.arraycopy(c, 0, seqs[i], PROMPTS[i].length, c.length);
    }
    try (NDManager m = NDManager.newBaseManager()) {
      int width = Arrays.stream(seqs).mapToInt(s -> s.length).max().orElseThrow() - 1;
      float[] tempered = model.tokenLogProbs(m, seqs, temperature).toFloatArray();
      float[] raw = model.tokenLogProbs(m, seqs, 1f).toFloatArray();
      double maxErr = 0;
      for (int i = 0; i < seqs.length; i++) {
        GenerationResult r = results.get(i);
        for (int t = 0; t < r.tokens().length; t++) {
          int col = PROMPTS[i].length - 1 + t;
          maxErr = Math.max(maxErr, Math.abs(tempered[i * width + col] - r.samplingLogProbs()[t]));
          maxErr = Math.max(maxErr, Math.abs(raw[i * width + col] - r.modelLogProbs()[t]));
        }
      }
      System.out.printf("sampling vs scoring log-probs: max abs error %.2e%n", maxErr);
      assertTrue(maxErr < 1e-4, "max abs error " + maxErr);
    }
  }

  @Test
  void greedyIsArgmaxAndTopKOneIsGreedy() {
    var greedy = generator.generate(requests(SamplingParams.greedy(8), 1, PROMPTS));
    var topOne = generator.generate(requests(new SamplingParams(1.3f, 1, 1f, 8, new int[0]), 9, PROMPTS));
    for (int i = 0; i < PROMPTS.length; i++) {
      assertArrayEquals(greedy.get(i).tokens(), topOne.get(i).tokens());
      for (float lp : topOne.get(i).samplingLogProbs()) {
        assertEquals(0f, lp, 1e-6, "a one-token distribution has log-prob 0");
      }
      for (float lp : greedy.get(i).modelLogProbs()) {
        assertTrue(lp < 0);
      }
    }
  }

  @Test
  void stopTokensAndLimitsEndCompletions() {
    var free = generator.generate(requests(SamplingParams.greedy(6), 0, PROMPTS));
    for (int i = 0; i < PROMPTS.length; i++) {
      assertEquals(6, free.get(i).tokens().length);
      assertEquals(FinishReason.LENGTH, free.get(i).finishReason());
    }
    int stop = free.get(1).tokens()[2];
    var stopped = generator.generate(List.of(new GenerationRequest(PROMPTS[1], SamplingParams.greedy(6, stop), 0)));
    GenerationResult r = stopped.get(0);
    assertEquals(FinishReason.STOP, r.finishReason());
    int firstStop = -1;
    for (int t = 0; t < 6 && firstStop < 0; t++) {
      if (free.get(1).tokens()[t] == stop) {
        firstStop = t;
      }
    }
    assertEquals(firstStop + 1, r.tokens().length, "the stop token ends and belongs to the completion");
    assertEquals(stop, r.tokens()[r.tokens().length - 1]);
  }

  @Test
  void weightUpdatesApplyAndTagTokensWithTheirVersion() {
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel other = LlamaModel.random(TinyModels.qwenLike(), m, 99);
        LlamaModel copy = LlamaModel.random(TinyModels.qwenLike(), m, 11);
        Generator g = new Generator(copy, 3)) {
      var before = g.generate(requests(SamplingParams.greedy(5), 0, PROMPTS));
      assertTrue(Arrays.stream(before.get(0).versions()).allMatch(v -> v == 3));
      g.updateWeights(4, other.toHostTensors());
      var after = g.generate(requests(SamplingParams.greedy(5), 0, PROMPTS));
      assertEquals(4, g.version());
      assertTrue(Arrays.stream(after.get(0).versions()).allMatch(v -> v == 4));
      var reference = new Generator(other, 0).generate(requests(SamplingParams.greedy(5), 0, PROMPTS));
      for (int i = 0; i < PROMPTS.length; i++) {
        assertArrayEquals(reference.get(i).tokens(), after.get(i).tokens());
      }
      assertFalse(Arrays.equals(before.get(1).tokens(), after.get(1).tokens()) && Arrays.equals(
          before.get(3).tokens(), after.get(3).tokens()), "new weights should change some greedy completion");
    }
  }

  /**
   * A version the model refuses stops generation with the reason (rather than sampling on with the weights the
   * caller believes replaced), the generator's thread survives it, and a later version that applies lifts it.
   */
  @Test
  void aRefusedVersionStopsGenerationUntilAVersionApplies() throws Exception {
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel other = LlamaModel.random(TinyModels.qwenLike(), m, 99);
        LlamaModel copy = LlamaModel.random(TinyModels.qwenLike(), m, 11);
        Generator g = new Generator(copy, 3)) {
      java.util.concurrent.CountDownLatch done = new java.util.concurrent.CountDownLatch(1);
      var wrong = new dev.nucleon.model.io.HostTensor("model.norm.weight", new long[] {3}, new float[3]);
      g.updateWeights(4, java.util.Map.of(wrong.name(), wrong), done::countDown);
      done.await(); // applied (and refused) on the idle generator's own thread
      var e = assertThrows(IllegalStateException.class,
          () -> g.generate(requests(SamplingParams.greedy(3), 0, PROMPTS)));
      assertTrue(e.getMessage().contains("policy version 4") && e.getMessage().contains("model.norm.weight")
          && e.getMessage().contains("still holds version 3"), e.getMessage());
      // the open continuous batch refuses newcomers the same way (it would never reach a "next batch" to refuse)
      Generator.Submitted refused = g.submit(requests(SamplingParams.greedy(3), 0, PROMPTS), 2);
      var cause = assertThrows(java.util.concurrent.ExecutionException.class,
          () -> refused.results().get(60, java.util.concurrent.TimeUnit.SECONDS)).getCause();
      assertTrue(cause.getMessage().contains("policy version 4"), cause.toString());
      assertTrue(refused.admitted().isDone());
      g.updateWeights(5, other.toHostTensors());
      var after = g.generate(requests(SamplingParams.greedy(3), 0, PROMPTS));
      assertTrue(Arrays.stream(after.get(0).versions()).allMatch(v -> v == 5));
      var streamed = g.submit(requests(SamplingParams.greedy(3), 0, PROMPTS), 2).results()
          .get(60, java.util.concurrent.TimeUnit.SECONDS);
      assertTrue(Arrays.stream(streamed.get(0).versions()).allMatch(v -> v == 5));
    }
  }

  @Test
  void badRequestsAreRefusedWithAReason() {
    var tooLong = new GenerationRequest(new int[] {1, 2}, SamplingParams.greedy(500), 0);
    var e = assertThrows(IllegalArgumentException.class, () -> generator.generate(List.of(tooLong)));
    assertTrue(e.getMessage().contains("max_position_embeddings"), e.getMessage());
    var badToken = new GenerationRequest(new int[] {1, 999}, SamplingParams.greedy(2), 0);
    e = assertThrows(IllegalArgumentException.class, () -> generator.generate(List.of(badToken)));
    assertTrue(e.getMessage().contains("999"), e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> new SamplingParams(-1f, 0, 1f, 4, null));
    assertThrows(IllegalArgumentException.class, () -> new SamplingParams(1f, 0, 0f, 4, null));
  }

  @Test
  void aContinuousBatchGivesWhatAStaticOneGives() {
    // more requests than slots, of different prompt lengths and limits: slots are refilled as sequences finish
    int[][] prompts = {{1, 5, 9}, {1, 7, 3, 8, 20, 33, 4}, {1}, {1, 44, 12, 6, 50}, {1, 2}, {1, 9, 9, 9, 9, 9, 9, 9},
        {1, 30}};
    int[] limits = {12, 3, 9, 1, 15, 6, 10};
    List<GenerationRequest> greedy = new ArrayList<>();
    List<GenerationRequest> sampled = new ArrayList<>();
    for (int i = 0; i < prompts.length; i++) {
      greedy.add(new GenerationRequest(prompts[i], SamplingParams.greedy(limits[i]), i));
      sampled.add(new GenerationRequest(prompts[i], SamplingParams.sample(1f, limits[i]), 100 + i));
    }
    for (List<GenerationRequest> requests : List.of(greedy, sampled)) {
      List<GenerationResult> batch = generator.generate(requests);
      // 3 slots refill rows and shrink the batch in the tail; 1 slot runs the requests one after another and drops
      // cache columns from the front
      for (int slots : new int[] {3, 1}) {
        List<GenerationResult> continuous = generator.generate(requests, slots);
        assertSame(batch, continuous);
      }
    }
  }

  @Test
  void aContinuousBatchGrowsItsCacheUnderRunningRows() {
    // short sequences: a newcomer's prompt longer than the cache so far grows it while other rows run (the cache,
    // longest prompt + longest limit + 16 columns, neither fills nor drops columns here: the next test drops them)
    int[] promptLengths = {1, 2, 4, 1, 1, 1, 1, 3, 1, 1};
    int[] limits = {3, 2, 1, 1, 4, 2, 1, 2, 3, 4};
    List<GenerationRequest> requests = new ArrayList<>();
    for (int i = 0; i < promptLengths.length; i++) {
      int[] prompt = new int[promptLengths[i]];
      for (int c = 0; c < prompt.length; c++) {
        prompt[c] = 1 + (7 * i + 3 * c) % 50;
      }
      requests.add(new GenerationRequest(prompt, SamplingParams.greedy(limits[i]), i));
    }
    List<GenerationResult> batch = generator.generate(requests);
    for (int slots : new int[] {2, 1}) {
      assertSame(batch, generator.generate(requests, slots));
    }
  }

  @Test
  void aContinuousBatchOfSeveralRowsDropsItsUnseenFront() {
    // 30 requests (prompts of 1-4 tokens, 1-8 new tokens, 139 in all) through 3 slots take about 40 decode steps;
    // a step adds a column, and the cache holds 4 + 8 + 16 = 28: it drops its front (once 16 columns are unseen,
    // or when full) while rows run, are moved up and take newcomers
    List<GenerationRequest> requests = new ArrayList<>();
    int newTokens = 0;
    for (int i = 0; i < 30; i++) {
      int[] prompt = new int[1 + i % 4];
      for (int c = 0; c < prompt.length; c++) {
        prompt[c] = 1 + (11 * i + 5 * c) % 50;
      }
      int limit = 1 + (7 * i) % 8;
      newTokens += limit;
      requests.add(new GenerationRequest(prompt, SamplingParams.greedy(limit), i));
    }
    assertEquals(139, newTokens);
    List<GenerationResult> batch = generator.generate(requests);
    assertSame(batch, generator.generate(requests, 3));
  }

  @Test
  void aWideContinuousBatchLeavesItsIdleRowsOutOfItsSteps() {
    // 80 sampled requests (prompts of 1-5 tokens, 1-30 new tokens) through 16 slots: a finished row waits for a
    // second one before newcomers are admitted, so steps run with idle rows between running ones, which the
    // compiled decode step leaves out (rows split into blocks around them); the front is dropped while rows run, and
    // the batch shrinks in its tail
    assertTrue(model.decodesScripted());
    List<GenerationRequest> requests = new ArrayList<>();
    int newTokens = 0;
    for (int i = 0; i < 80; i++) {
      int[] prompt = new int[1 + (3 * i) % 5];
      for (int c = 0; c < prompt.length; c++) {
        prompt[c] = 1 + (13 * i + 7 * c) % 50;
      }
      int limit = 1 + (11 * i) % 30;
      newTokens += limit;
      requests.add(new GenerationRequest(prompt, SamplingParams.sample(1f, limit), 500 + i));
    }
    List<GenerationResult> batch = generator.generate(requests);
    long before = generator.rowSteps();
    List<GenerationResult> continuous = generator.generate(requests, 16);
    assertSame(batch, continuous);
    int made = continuous.stream().mapToInt(r -> r.tokens().length).sum();
    assertEquals(newTokens, made, "no stop tokens: every request makes its limit");
    assertEquals(made, generator.rowSteps() - before, "every row decoded made a token: no idle row was decoded");
  }

  @Test
  void rowStepsCountTheRowsOfFinishedSequencesAStaticBatchKeepsDecoding() {
    int[] limits = {12, 3, 9, 1, 15, 6, 10};
    List<GenerationRequest> requests = new ArrayList<>();
    for (int i = 0; i < limits.length; i++) {
      requests.add(new GenerationRequest(new int[] {1, 2 + i}, SamplingParams.greedy(limits[i]), i));
    }
    long before = generator.rowSteps();
    List<GenerationResult> batch = generator.generate(requests);
    int tokens = batch.stream().mapToInt(r -> r.tokens().length).sum();
    int longest = batch.stream().mapToInt(r -> r.tokens().length).max().orElseThrow();
    assertEquals((long) limits.length * longest, generator.rowSteps() - before,
        "a static batch decodes every row until its longest sequence is done");
    before = generator.rowSteps();
    generator.generate(requests, 1);
    assertEquals(tokens, generator.rowSteps() - before, "one slot decodes running sequences only");
    before = generator.rowSteps();
    generator.generate(requests, 3);
    long continuous = generator.rowSteps() - before;
    assertTrue(continuous >= tokens && continuous < (long) limits.length * longest,
        "three slots: " + continuous + " row-steps for " + tokens + " tokens");
  }

  @Test
  void submissionsJoinTheOpenBatchAndEachIsDeliveredOnceItsOwnRequestsAreDone() throws Exception {
    // A: one long request and two short ones through 3 rows; the batch shrinks to the long one's row once the short
    // ones are done. At the long one's 10th token B arrives (two requests with longer prompts than A's): the batch
    // grows back to 3 rows and its cache grows, and B's results come while A's long request still runs (B run after
    // A would not be done by A's 45th token).
    List<GenerationRequest> a = new ArrayList<>();
    List<GenerationRequest> b = new ArrayList<>();
    for (int i = 0; i < 2; i++) {
      b.add(new GenerationRequest(new int[] {1, 9 + i, 4, 17, 22, 8, 31, 5, 12, 40, 2, 6}, SamplingParams.greedy(20 + i),
          30 + i));
    }
    var submittedB = new java.util.concurrent.atomic.AtomicReference<Generator.Submitted>();
    var bDoneAtToken45 = new java.util.concurrent.atomic.AtomicBoolean();
    int[] seen = new int[1];
    TokenListener longOne = (token, logProb, finish) -> {
      seen[0]++;
      if (seen[0] == 10) {
        submittedB.set(generator.submit(b, 3));
      } else if (seen[0] == 45) {
        bDoneAtToken45.set(submittedB.get().results().isDone());
      }
      return true;
    };
    a.add(new GenerationRequest(new int[] {1, 5, 9}, SamplingParams.greedy(50), 7, longOne));
    a.add(new GenerationRequest(new int[] {1, 7}, SamplingParams.greedy(2), 8));
    a.add(new GenerationRequest(new int[] {1, 3, 3}, SamplingParams.greedy(3), 9));
    Generator.Submitted submittedA = generator.submit(a, 3);
    List<GenerationResult> resultsA = submittedA.results().get(60, java.util.concurrent.TimeUnit.SECONDS);
    List<GenerationResult> resultsB = submittedB.get().results().get(60, java.util.concurrent.TimeUnit.SECONDS);
    assertTrue(submittedA.admitted().isDone() && submittedB.get().admitted().isDone());
    assertTrue(bDoneAtToken45.get(), "B's requests (at most 22 tokens from A's 10th) were delivered before A's end");
    List<GenerationRequest> plainA = new ArrayList<>();
    for (GenerationRequest r : a) {
      plainA.add(new GenerationRequest(r.prompt(), r.params(), r.seed()));
    }
    assertSame(generator.generate(plainA), resultsA);
    assertSame(generator.generate(b), resultsB);
  }

  @Test
  void anotherCallRunsWhileSubmissionsKeepArriving() throws Exception {
    // a chain of submissions, each sending the next on its first token, would keep the open batch busy for 300
    // links: a plain generate call made meanwhile runs long before the chain ends (the batch takes no newcomers
    // while it waits, then the chain goes on)
    int links = 300;
    var sent = new java.util.concurrent.atomic.AtomicInteger();
    var started = new java.util.concurrent.CountDownLatch(3);
    List<java.util.concurrent.CompletableFuture<List<GenerationResult>>> chain =
        java.util.Collections.synchronizedList(new ArrayList<>());
    java.util.function.IntFunction<GenerationRequest>[] link = new java.util.function.IntFunction[1];
    link[0] = k -> new GenerationRequest(new int[] {1, 2 + k % 40}, SamplingParams.greedy(4), k,
        (token, logProb, finish) -> {
          if (finish == null && sent.get() == k + 1 && k + 1 < links) {
            sent.incrementAndGet();
            chain.add(generator.submit(List.of(link[0].apply(k + 1)), 2).results());
            started.countDown();
          }
          return true;
        });
    sent.set(1);
    chain.add(generator.submit(List.of(link[0].apply(0)), 2).results());
    assertTrue(started.await(60, java.util.concurrent.TimeUnit.SECONDS));
    var other = generator.generate(requests(SamplingParams.greedy(3), 0, PROMPTS));
    int linksWhenDone = sent.get();
    assertEquals(PROMPTS.length, other.size());
    assertTrue(linksWhenDone < links, "the call ran after " + linksWhenDone + " of " + links + " links");
    long deadline = System.nanoTime() + 60_000_000_000L;
    while (sent.get() < links && System.nanoTime() < deadline) {
      Thread.sleep(10);
    }
    assertEquals(links, sent.get(), "the chain went on after the call");
    for (int k = 0; k < links; k++) {
      assertEquals(4, chain.get(k).get(60, java.util.concurrent.TimeUnit.SECONDS).get(0).tokens().length);
    }
  }

  @Test
  void closingFailsWhatTheOpenBatchHasNotDelivered() throws Exception {
    try (NDManager m = NDManager.newBaseManager()) {
      LlamaModel own = LlamaModel.random(TinyModels.qwenLike(), m, 11);
      Generator g = new Generator(own, 0);
      var started = new java.util.concurrent.CountDownLatch(1);
      var release = new java.util.concurrent.CountDownLatch(1);
      GenerationRequest slow = new GenerationRequest(new int[] {1, 2}, SamplingParams.greedy(50), 0,
          (token, logProb, finish) -> {
            started.countDown();
            try {
              release.await(); // holds the batch until close() was called
            } catch (InterruptedException e) {
              Thread.currentThread().interrupt();
            }
            return true;
          });
      Generator.Submitted running = g.submit(List.of(slow), 2);
      assertTrue(started.await(60, java.util.concurrent.TimeUnit.SECONDS));
      Generator.Submitted queued = g.submit(List.of(new GenerationRequest(new int[] {1, 3}, SamplingParams.greedy(5),
          1)), 2);
      Thread closer = new Thread(g::close);
      closer.start();
      while (!g.isClosed()) {
        Thread.sleep(1);
      }
      release.countDown();
      closer.join(60_000);
      for (Generator.Submitted s : List.of(running, queued)) {
        assertThrows(java.util.concurrent.CancellationException.class,
            () -> s.results().get(60, java.util.concurrent.TimeUnit.SECONDS));
      }
      assertThrows(java.util.concurrent.CancellationException.class, () -> g.submit(List.of(new GenerationRequest(
          new int[] {1}, SamplingParams.greedy(2), 2)), 2).results().get(60, java.util.concurrent.TimeUnit.SECONDS));
      own.close();
    }
  }

  @Test
  void blocksOfRowsReadFewerColumnsWhenRowsRunFromOldestToYoungest() {
    // eight rows in cache order, oldest sequence first; each needs the columns from first[r] to the step's 100
    int[] first = {0, 2, 5, 40, 41, 70, 90, 99};
    // a further block must save 50 row-columns: [0, 3) from 0, [3, 6) from 40, [6, 8) from 90 read 500 of 800
    // (a fourth block would save less than 50)
    assertEquals(500, rowColumnsRead(first, 100, 50));
    // free blocks: every row reads its own columns only (100 + 98 + 95 + 60 + 59 + 30 + 10 + 1)
    assertEquals(453, rowColumnsRead(first, 100, 0));
    assertEquals(null, Generator.readBlocks(new int[] {0, 0, 1, 0}, 100, Generator.MAX_READ_BLOCKS, 50),
        "rows that all start near the front read every column");
  }

  @Test
  void idleRowsAreLeftOutOfEveryBlock() {
    // rows 1, 4 and 5 idle (-1): blocks end before them however costly a further block is
    int[] first = {0, -1, 0, 3, -1, -1, 50, 60};
    int[][] blocks = Generator.readBlocks(first, 100, 1, 1_000_000);
    assertArrayEquals(new int[] {0, 2, 6}, blocks[0]);
    assertArrayEquals(new int[] {1, 4, 8}, blocks[1]);
    assertArrayEquals(new int[] {0, 0, 50}, blocks[2]);
    assertEquals(100 + 200 + 100, rowColumnsRead(first, 100, 1_000_000));
    // cheap blocks split the runs further: rows 2 and 3, 6 and 7 each their own
    assertEquals(100 + 100 + 97 + 50 + 40, rowColumnsRead(first, 100, 0));
    // every row running but the last, from column 0: one block that leaves the last out (not "every row")
    blocks = Generator.readBlocks(new int[] {0, 0, 0, -1}, 100, 4, 50);
    assertArrayEquals(new int[] {0}, blocks[0]);
    assertArrayEquals(new int[] {3}, blocks[1]);
    assertArrayEquals(new int[] {0}, blocks[2]);
    assertThrows(IllegalArgumentException.class, () -> Generator.readBlocks(new int[] {-1, -1}, 100, 4, 50));
  }

  /** The row-columns the blocks {@link Generator#readBlocks} chooses read, after checking they cover each row. */
  private static long rowColumnsRead(int[] first, int end, long penalty) {
    int[][] blocks = Generator.readBlocks(first, end, Generator.MAX_READ_BLOCKS, penalty);
    int[] starts = blocks[0];
    int[] ends = blocks[1];
    int[] columns = blocks[2];
    boolean[] covered = new boolean[first.length];
    long read = 0;
    for (int j = 0; j < columns.length; j++) {
      assertTrue(starts[j] < ends[j] && (j == 0 || starts[j] >= ends[j - 1]), Arrays.deepToString(blocks));
      for (int r = starts[j]; r < ends[j]; r++) {
        assertTrue(first[r] >= 0 && columns[j] <= first[r], "row " + r + " reads from column " + columns[j]);
        covered[r] = true;
      }
      read += (long) (ends[j] - starts[j]) * (end - columns[j]);
    }
    for (int r = 0; r < first.length; r++) {
      assertEquals(first[r] >= 0, covered[r], "row " + r + " (first column " + first[r] + ")");
    }
    return read;
  }

  @Test
  void aFurtherBlockMustSaveAsMuchAsItsOpsCost() {
    // d=512 with 8 KV heads of 64: a row-column of a layer is 4 KiB in float32, 2 KiB in bfloat16
    LlamaConfig d512 = LlamaConfig.llama(32000, 512, 1376, 8, 8, 8, 256, false);
    assertEquals(Generator.BLOCK_COST_BYTES / 4096, Generator.blockPenalty(d512, DataType.FLOAT32));
    assertEquals(Generator.BLOCK_COST_BYTES / 2048, Generator.blockPenalty(d512, DataType.BFLOAT16));
  }

  private static void assertSame(List<GenerationResult> batch, List<GenerationResult> continuous) {
    {
      for (int i = 0; i < batch.size(); i++) {
        assertArrayEquals(batch.get(i).tokens(), continuous.get(i).tokens(), "request " + i);
        assertEquals(batch.get(i).finishReason(), continuous.get(i).finishReason());
        for (int t = 0; t < batch.get(i).tokens().length; t++) {
          assertEquals(batch.get(i).modelLogProbs()[t], continuous.get(i).modelLogProbs()[t], 1e-4,
              "request " + i + " token " + t);
          assertEquals(batch.get(i).samplingLogProbs()[t], continuous.get(i).samplingLogProbs()[t], 1e-4);
        }
      }
    }
  }
}
