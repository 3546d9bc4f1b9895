package dev.nucleon.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.jni.JniUtils;
import ai.djl.training.GradientCollector;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nucleon.model.lora.PeftAdapter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Mixture-of-experts layers: which layers are sparse and how many parameters a model has, as each family's config
 * says; routing replay forcing the given experts (and only from the token it changes on); gradients reaching the
 * router and exactly the experts that had tokens.
 */
class MoeTest {

  private static final ObjectMapper JSON = new ObjectMapper();

  @TempDir
  Path tmp;

  /** The parameter counts the golden cases' READMEs give (counted by transformers from the checkpoints). */
  @Test
  void goldenConfigsHaveTheirFamiliesSparseLayersAndParameterCounts() {
    record Case(String name, List<Integer> sparse, long parameters, long inactive) {}
    List<Case> cases = List.of(
        // 2 sparse layers of 8 experts, top 2: 6 experts of 3 * 64 * 32 idle per token and layer; the untied
        // embedding table (a lookup) is not active either
        new Case("qwen3_moe-tiny", List.of(1, 2), 210_464, 2L * 6 * 3 * 64 * 32 + 384 * 64),
        new Case("qwen3_moe-tiny-bf16", List.of(1, 3), 218_624, 2L * 3 * 3 * 64 * 32 + 256 * 64),
        new Case("ernie4_5_moe-tiny", List.of(1, 2), 194_000, 2L * 6 * 3 * 64 * 32), // tied; the choice bias acts
        new Case("ernie4_5_moe-tiny-bf16", List.of(1), 105_158, 3L * 3 * 64 * 24),
        // 4 layers of 4 experts, top 2: 2 idle experts of 3 * 64 * 32 weights and 2 * 32 + 64 biases
        new Case("gpt_oss-tiny", List.of(0, 1, 2, 3), 192_864, 4L * 2 * (3 * 64 * 32 + 2 * 32 + 64) + 320 * 64),
        new Case("gpt_oss-tiny-bf16", List.of(0, 1), 92_176, gptOssInactive("gpt_oss-tiny-bf16")),
        // latent attention; 8 experts top 2 (of 3 * 64 * 32) in 2 sparse layers, untied head
        new Case("deepseek_v3-tiny", List.of(1, 2), 220_792, 2L * 6 * 3 * 64 * 32 + 320 * 64),
        new Case("deepseek_v3-tiny-noqlora-bf16", List.of(1, 2), 212_528, 2L * 5 * 3 * 64 * 24 + 256 * 64));
    for (Case k : cases) {
      LlamaConfig c = LlamaConfig.fromHuggingFace(TestResources.path("golden/" + k.name() + "/config.json"));
      assertEquals(k.sparse(), c.moe().sparseLayers(), k.name());
      assertEquals(k.parameters(), c.parameterCount(), k.name());
      assertEquals(k.parameters() - k.inactive(), c.activeParameterCount(), k.name());
    }
  }

  private static long gptOssInactive(String name) {
    LlamaConfig c = LlamaConfig.fromHuggingFace(TestResources.path("golden/" + name + "/config.json"));
    LlamaConfig.Moe moe = c.moe();
    long d = c.hiddenSize();
    long expert = 3 * d * moe.expertSize() + 2L * moe.expertSize() + d;
    return moe.sparseLayers().size() * (moe.numExperts() - moe.topK()) * expert + (long) c.vocabSize() * d;
  }

  /**
   * The published gpt-oss-20b config: 24 layers of 32 experts (top 4), attention with sinks alternating a
   * 128-token window and full attention, YaRN; 20.91B parameters of which 3.61B active per token, as OpenAI's
   * model card counts them (the embedding table not active, the output head active).
   */
  @Test
  void gptOss20bHasThePublishedParameterCounts() {
    LlamaConfig c = LlamaConfig.fromHuggingFace(TestResources.path("hf-real/configs/gpt-oss-20b.config.json"));
    assertEquals(32, c.moe().numExperts());
    assertEquals(4, c.moe().topK());
    assertEquals(24, c.moe().sparseLayers().size());
    assertTrue(c.attentionSinks());
    assertEquals(128, c.slidingWindows()[0]);
    assertEquals(0, c.slidingWindows()[1]);
    assertEquals("yarn", c.ropeScaling().type());
    assertEquals(20.91e9, c.parameterCount(), 0.005e9, "total");
    assertEquals(3.61e9, c.activeParameterCount(), 0.005e9, "active");
  }

  @Test
  void familyRulesChooseTheSparseLayers() throws Exception {
    ObjectNode qwen = (ObjectNode) JSON.readTree(TestResources.path("golden/qwen3_moe-tiny/config.json").toFile());
    qwen.put("num_hidden_layers", 6);
    qwen.put("decoder_sparse_step", 2);
    qwen.putArray("mlp_only_layers").add(3);
    assertEquals(List.of(1, 5), read(qwen).moe().sparseLayers(), "every 2nd layer, less mlp_only_layers");
    qwen.put("num_experts", 0);
    assertEquals(null, read(qwen).moe(), "no experts: a dense model");

    ObjectNode ernie = (ObjectNode) JSON.readTree(TestResources.path("golden/ernie4_5_moe-tiny/config.json")
        .toFile());
    ernie.put("num_hidden_layers", 7);
    ernie.put("moe_layer_end_index", -1);
    ernie.put("moe_layer_interval", 2);
    LlamaConfig c = read(ernie);
    assertEquals(List.of(1, 3, 5), c.moe().sparseLayers(), "from start to the last layer, every 2nd");
    assertEquals(32, c.moe().sharedSize(), "one shared expert of moe_intermediate_size");
    Path again = tmp.resolve("again.json");
    c.writeHuggingFace(again);
    assertEquals(c, LlamaConfig.fromHuggingFace(again), "written and read back");

    ernie.put("moe_k", 9);
    var e = assertThrows(ModelFormatException.class, () -> read(ernie));
    assertTrue(e.getMessage().contains("experts per token (9)"), e.getMessage());
  }

  private LlamaConfig read(ObjectNode config) throws Exception {
    Path file = Files.createTempFile(tmp, "config", ".json");
    Files.writeString(file, JSON.writeValueAsString(config));
    return LlamaConfig.fromHuggingFace(file);
  }

  /**
   * Replaying the recorded choice computes exactly the free forward; replaying a changed choice for one token
   * changes the logits from that token on and nowhere before it (attention is causal), and is counted as one
   * disagreement; comparing without forcing changes nothing but the count.
   */
  @Test
  void replayForcesTheGivenExperts() throws Exception {
    Engines.start();
    Path dir = TestResources.path("golden/qwen3_moe-tiny");
    long[] ids = {5, 17, 3, 99, 250, 7, 42, 11, 300, 8};
    int changed = 4;
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = ModelFiles.read(dir).instantiate(m)) {
      int k = model.config().moe().topK();
      int experts = model.config().moe().numExperts();
      int vocab = model.config().vocabSize();
      Routing recorded = Routing.record();
      float[] free = logits(model, m, ids, recorded);
      assertEquals(List.of(1, 2), List.copyOf(recorded.chosen().keySet()));
      assertEquals(ids.length * k, recorded.chosen().get(1).length);

      Routing same = Routing.replay(recorded.chosen());
      assertArrayEquals(free, logits(model, m, ids, same), "replaying the router's own choice");
      assertEquals(2L * ids.length, same.compared());
      assertEquals(0, same.differing());

      int[] other = recorded.chosen().get(1).clone();
      int[] mine = {other[changed * k], other[changed * k + 1]};
      for (int j = 0, e = 0; j < k; e++) {
        if (e != mine[0] && e != mine[1]) {
          other[changed * k + j++] = e; // two experts the router did not choose
        }
      }
      assertTrue(e(other, changed, k) != e(recorded.chosen().get(1), changed, k));
      Map<Integer, int[]> given = Map.of(1, other);
      Routing forced = Routing.replay(given);
      float[] replayed = logits(model, m, ids, forced);
      assertArrayEquals(other, forced.chosen().get(1));
      assertEquals(1, forced.differing());
      assertEquals(ids.length, forced.compared(), "only layer 1 was given");
      for (int pos = 0; pos < ids.length; pos++) {
        double gap = 0;
        for (int v = pos * vocab; v < (pos + 1) * vocab; v++) {
          gap = Math.max(gap, Math.abs(free[v] - replayed[v]));
        }
        // other experts' rows are grouped differently, so a product may round differently: 1e-5, not bits
        if (pos < changed) {
          assertTrue(gap < 1e-5, "position " + pos + " precedes the changed token, yet moved by " + gap);
        } else {
          assertTrue(gap > 1e-3, "position " + pos + " follows the changed token, yet moved by only " + gap);
        }
      }

      Routing compared = Routing.compare(given);
      assertArrayEquals(free, logits(model, m, ids, compared), "compare does not force");
      assertEquals(1, compared.differing());

      int[] none = other.clone();
      java.util.Arrays.fill(none, 0, none.length, -1);
      Routing unrecorded = Routing.replay(Map.of(1, none));
      assertArrayEquals(free, logits(model, m, ids, unrecorded), "tokens without a recorded choice route freely");
      assertEquals(0, unrecorded.compared());

      int[] bad = other.clone();
      bad[0] = experts;
      var e = assertThrows(IllegalArgumentException.class, () -> logits(model, m, ids, Routing.replay(Map.of(1, bad))));
      assertTrue(e.getMessage().contains("names expert " + experts), e.getMessage());
    }
  }

  /** A token's expert set as a bit mask. */
  private static int e(int[] ids, int token, int k) {
    int mask = 0;
    for (int j = 0; j < k; j++) {
      mask |= 1 << ids[token * k + j];
    }
    return mask;
  }

  /**
   * Backward through a mixture reaches the router (through the chosen weights) and every expert that had a token,
   * and leaves exactly zero on the experts no token went to.
   */
  @Test
  void gradientsReachTheRouterAndTheExpertsThatHadTokens() {
    Engines.start();
    LlamaConfig c = TinyModels.ernieMoeLike();
    long[] seq = {1, 7, 3, 9, 4, 11, 5, 2};
    boolean mode = JniUtils.isGradMode();
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = LlamaModel.random(c, m, 7)) {
      model.setTrainable(true);
      JniUtils.setGradMode(true);
      Routing routing = Routing.record();
      try (NDManager step = m.newSubManager();
          GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
        NDArray tokens = step.create(seq, new Shape(1, seq.length));
        NDArray ls = model.logSoftmaxAt(tokens, step.create(new long[] {0, 2, 3, 6}), 1f, routing);
        gc.backward(ls.max(new int[] {1}).sum());
      }
      JniUtils.setGradMode(false);
      for (int layer : c.moe().sparseLayers()) {
        String p = "model.layers." + layer + ".";
        long[] tokensPerExpert = routing.expertTokens().get(layer);
        assertEquals((long) seq.length * c.moe().topK(), java.util.Arrays.stream(tokensPerExpert).sum());
        float[] router = grad(model, p + WeightLayout.ROUTER);
        assertTrue(norm(router, 0, router.length) > 0, "router of layer " + layer + " has a gradient");
        float[] gateUp = grad(model, p + WeightLayout.EXPERTS_GATE_UP);
        int slab = gateUp.length / c.moe().numExperts();
        int idle = 0;
        for (int e = 0; e < c.moe().numExperts(); e++) {
          double n = norm(gateUp, e * slab, slab);
          if (tokensPerExpert[e] == 0) {
            idle++;
            assertEquals(0.0, n, "expert " + e + " of layer " + layer + " had no token");
          } else {
            assertTrue(n > 0, "expert " + e + " of layer " + layer + " had " + tokensPerExpert[e] + " tokens");
          }
        }
        assertTrue(norm(grad(model, p + "mlp.shared_experts.gate_up_proj.weight"), 0, 1) >= 0);
        System.out.printf("layer %d: tokens per expert %s, %d idle%n", layer,
            java.util.Arrays.toString(tokensPerExpert), idle);
      }
    } finally {
      JniUtils.setGradMode(mode);
    }
  }

  /**
   * Generation records the experts of every position it read: a static batch and a continuous one (slots refilled,
   * prompts prefilled on the side) record the same ids for the same seeds, and replaying them in a full forward pass
   * over prompt + completion gives the generator's own log-probs.
   */
  @Test
  void generationRecordsTheExpertsOfEveryPositionItRead() throws Exception {
    Engines.start();
    Path dir = TestResources.path("golden/qwen3_moe-tiny");
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = ModelFiles.read(dir).instantiate(m);
        dev.nucleon.model.generate.Generator generator = new dev.nucleon.model.generate.Generator(model, 0)) {
      List<dev.nucleon.model.generate.GenerationRequest> requests = new java.util.ArrayList<>();
      // requests side by side share a prompt (as a group's samples do), prefilled once in the static batch and in
      // the continuous one's admissions; their experts are recorded for each request
      int[][] prompts = {{5, 17, 3}, {5, 17, 3}, {99, 250, 7, 42, 11}, {99, 250, 7, 42, 11}, {300}, {8, 8, 9, 10},
          {1, 2}};
      for (int i = 0; i < prompts.length; i++) {
        requests.add(new dev.nucleon.model.generate.GenerationRequest(prompts[i],
            dev.nucleon.model.generate.SamplingParams.sample(1f, 3 + 2 * (i % 5)), 31L * i));
      }
      var stat = generator.generate(requests);
      var continuous = generator.generate(requests, 2);
      // the open batch, a submission per request: each is delivered and its state dropped on its own (the records
      // of those after it move to the front)
      var open = generator.submitAll(requests.stream().map(List::of).toList(), 2);
      for (int i = 0; i < prompts.length; i++) {
        var r = stat.get(i);
        assertArrayEquals(r.tokens(), continuous.get(i).tokens(), "request " + i);
        assertEquals(r.routedExperts(), continuous.get(i).routedExperts(), "request " + i + ": static vs continuous");
        var streamed = open.get(i).results().get(60, java.util.concurrent.TimeUnit.SECONDS).get(0);
        assertArrayEquals(r.tokens(), streamed.tokens(), "request " + i + " (open batch)");
        assertEquals(r.routedExperts(), streamed.routedExperts(), "request " + i + ": static vs open batch");
        replayMatchesTheRollout(model, m, prompts[i], r.tokens(), null, r.modelLogProbs(), r.routedExperts(),
            "request " + i);
      }
    }
  }

  /**
   * Multi-turn episodes record the experts of every position they read, the environment's answers included: replayed
   * over the whole episode at once, the learner's routers choose the same experts and give the sampled log-probs.
   */
  @Test
  void episodesRecordTheExpertsOfTheirTurnsAndAnswers() throws Exception {
    Engines.start();
    Path dir = TestResources.path("golden/qwen3_moe-tiny");
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = ModelFiles.read(dir).instantiate(m);
        dev.nucleon.model.generate.Generator generator = new dev.nucleon.model.generate.Generator(model, 0)) {
      int[][] prompts = {{5, 17, 3}, {99, 250, 7, 42, 11}, {300}};
      List<dev.nucleon.model.generate.EpisodeRequest> requests = new java.util.ArrayList<>();
      for (int i = 0; i < prompts.length; i++) {
        requests.add(new dev.nucleon.model.generate.EpisodeRequest(prompts[i],
            dev.nucleon.model.generate.SamplingParams.sample(1f, 3 + i), 17L * i, 60));
      }
      // three turns each, answered with 2-4 tokens
      var results = generator.generateEpisodes(requests, (episode, turn, tokens, reason) ->
          java.util.concurrent.CompletableFuture.completedFuture(turn >= 2 ? null : java.util.stream.IntStream
              .range(0, 2 + (episode + turn) % 3).map(j -> 40 + 7 * j + episode).toArray()));
      for (int i = 0; i < prompts.length; i++) {
        var r = results.get(i);
        assertEquals(3, r.turns(), "episode " + i);
        replayMatchesTheRollout(model, m, prompts[i], r.tokens(), r.trained(), r.modelLogProbs(), r.routedExperts(),
            "episode " + i);
      }
    }
  }

  /**
   * The recorded experts cover every position read (all but the last token); replayed over prompt + tokens at once,
   * the routers choose them too, and the sampled tokens ({@code trained} 1, or all when null) get the rollout's
   * log-probs.
   */
  private static void replayMatchesTheRollout(LlamaModel model, NDManager m, int[] prompt, int[] tokens,
      byte[] trained, float[] modelLogProbs, dev.nucleon.core.rollout.RoutedExperts routed, String what) {
    int read = prompt.length + tokens.length - 1;
    assertEquals(read, routed.positions(), what);
    long[] seq = new long[prompt.length + tokens.length];
    for (int t = 0; t < seq.length; t++) {
      seq[t] = t < prompt.length ? prompt[t] : tokens[t - prompt.length];
    }
    Map<Integer, int[]> recorded = new java.util.TreeMap<>();
    List<Integer> layers = model.config().moe().sparseLayers();
    int k = model.config().moe().topK();
    for (int l = 0; l < layers.size(); l++) {
      int[] ids = new int[seq.length * k];
      java.util.Arrays.fill(ids, -1);
      for (int p = 0; p < read; p++) {
        for (int j = 0; j < k; j++) {
          ids[p * k + j] = routed.expert(p, l, j);
        }
      }
      recorded.put(layers.get(l), ids);
    }
    Routing replayed = Routing.replay(recorded);
    float[] logits = logits(model, m, seq, replayed);
    assertEquals(0, replayed.differing(), what + ": the same weights choose the same experts");
    int vocab = model.config().vocabSize();
    for (int j = 0; j < tokens.length; j++) {
      if (trained != null && trained[j] == 0) {
        continue;
      }
      int pos = prompt.length - 1 + j;
      double max = Double.NEGATIVE_INFINITY;
      for (int v = 0; v < vocab; v++) {
        max = Math.max(max, logits[pos * vocab + v]);
      }
      double sum = 0;
      for (int v = 0; v < vocab; v++) {
        sum += Math.exp(logits[pos * vocab + v] - max);
      }
      double logp = logits[pos * vocab + tokens[j]] - max - Math.log(sum);
      assertEquals(modelLogProbs[j], logp, 1e-4, what + " token " + j);
    }
  }

  /**
   * The load-balancing loss is {@code E * sum_e f_e P_e}: with a zero router every expert's probability is 1/E,
   * so it is exactly k whatever the choice; padding tokens left out of the count change nothing then, and a real
   * router that concentrates its probability where it sends tokens scores above that.
   */
  @Test
  void loadBalancingLossCountsChoicesTimesProbabilities() throws Exception {
    Engines.start();
    Path dir = TestResources.path("golden/qwen3_moe-tiny");
    ModelFiles.Checkpoint ckpt = ModelFiles.read(dir);
    var internal = new java.util.LinkedHashMap<>(WeightLayout.fromHuggingFace(ckpt.config(), ckpt.huggingFace(),
        "test"));
    long[] ids = {5, 17, 3, 99, 250, 7, 42, 11};
    boolean[] all = new boolean[ids.length];
    java.util.Arrays.fill(all, true);
    boolean[] some = all.clone();
    some[6] = some[7] = false;
    try (NDManager m = NDManager.newBaseManager(); LlamaModel real = LlamaModel.create(ckpt.config(), m, internal)) {
      Routing trained = Routing.record().collectingAux(all, m);
      logits(real, m, ids, trained);
      double aux = trained.auxLoss().getFloat();
      assertTrue(aux > 2, "a trained router's choices follow its probabilities: " + aux);
      for (int layer : ckpt.config().moe().sparseLayers()) {
        String name = "model.layers." + layer + "." + WeightLayout.ROUTER;
        var r = internal.get(name);
        internal.put(name, new dev.nucleon.model.io.HostTensor(name, r.shape(), new float[r.data().length]));
      }
      try (LlamaModel uniform = LlamaModel.create(ckpt.config(), m, internal)) {
        for (boolean[] counted : List.of(all, some)) {
          Routing r = Routing.record().collectingAux(counted, m);
          logits(uniform, m, ids, r);
          assertEquals(2.0, r.auxLoss().getFloat(), 1e-5, "uniform probabilities: k");
        }
      }
    }
  }

  /**
   * A bfloat16 checkpoint keeps a mixture's routers and choice biases in float32, as the published ones do: saved
   * and read back, the file is still reported as bfloat16 and the router's values are exactly the float32 ones (a
   * rounded router would move near-tied choices).
   */
  @Test
  void bfloat16CheckpointsKeepTheRoutersInFloat32() throws Exception {
    Path dir = TestResources.path("golden/ernie4_5_moe-tiny-bf16");
    ModelFiles.Checkpoint ckpt = ModelFiles.read(dir);
    assertEquals(ai.djl.ndarray.types.DataType.BFLOAT16, ckpt.storedType(), "its routers are F32, the rest BF16");
    var hf = new java.util.LinkedHashMap<>(ckpt.huggingFace());
    String router = "model.layers.1.mlp.gate.weight";
    float[] precise = hf.get(router).data().clone();
    precise[0] = 0.1234567f; // not a bfloat16 value
    hf.put(router, new dev.nucleon.model.io.HostTensor(router, hf.get(router).shape(), precise));
    Path saved = tmp.resolve("saved");
    dev.nucleon.model.io.HfCheckpoint.write(saved, ckpt.config(), hf, ai.djl.ndarray.types.DataType.BFLOAT16);
    ModelFiles.Checkpoint back = ModelFiles.read(saved);
    assertEquals(ai.djl.ndarray.types.DataType.BFLOAT16, back.storedType());
    assertArrayEquals(precise, back.huggingFace().get(router).data(), "the router is stored in float32");
    String bias = "model.layers.1.mlp.moe_statics.e_score_correction_bias";
    assertArrayEquals(ckpt.huggingFace().get(bias).data(), back.huggingFace().get(bias).data());
    float[] expert = back.huggingFace().get("model.layers.1.mlp.experts.0.up_proj.weight").data();
    for (float v : expert) {
      assertEquals(v, Float.intBitsToFloat(Float.floatToRawIntBits(v) & 0xffff0000), "experts are bfloat16");
    }
  }

  /** LoRA on a mixture-of-experts model adapts attention everywhere and the MLP of dense layers only. */
  @Test
  void loraLeavesTheExpertsAlone() {
    LlamaConfig c = TinyModels.qwen3MoeLike();
    List<String> modules = PeftAdapter.Settings.of(4, 8, 0, List.of("all-linear")).modules(c);
    assertTrue(modules.contains("model.layers.0.mlp.gate_proj"));
    assertTrue(modules.contains("model.layers.1.self_attn.q_proj"));
    assertTrue(modules.stream().noneMatch(s -> s.startsWith("model.layers.1.mlp.")), modules.toString());
  }

  private static float[] grad(LlamaModel model, String name) {
    return model.namedParameters().get(name).getArray().getGradient().toFloatArray();
  }

  private static double norm(float[] x, int from, int n) {
    double s = 0;
    for (int i = from; i < from + n; i++) {
      s += (double) x[i] * x[i];
    }
    return Math.sqrt(s);
  }

  private static float[] logits(LlamaModel model, NDManager parent, long[] ids, Routing routing) {
    boolean mode = JniUtils.isGradMode();
    JniUtils.setGradMode(false);
    try (NDManager m = parent.newSubManager()) {
      return model.logits(m.create(ids, new Shape(1, ids.length)), routing).toFloatArray();
    } finally {
      JniUtils.setGradMode(mode);
    }
  }
}
