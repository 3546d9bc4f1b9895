package dev.nucleon.reward.learned;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import com.typesafe.config.ConfigFactory;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.model.Engines;
import dev.nucleon.model.LlamaConfig;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.ModelFormatException;
import dev.nucleon.model.io.HfCheckpoint;
import dev.nucleon.model.io.HostTensor;
import dev.nucleon.model.tokenizer.CharVocabulary;
import dev.nucleon.model.tokenizer.HfTokenizer;
import dev.nucleon.reward.Rewards;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A small random sequence classifier written in the Hugging Face layout; its scores are checked against an
 * independent path: a language model whose head row 0 is the score head gives the same number as its logit 0.
 */
class LearnedRewardTest {

  static final String CHARS = "0123456789+=$ abc";

  @TempDir
  static Path dir;
  static LlamaConfig shape;
  static float[] head;

  @BeforeAll
  static void writeClassifier() throws Exception {
    Engines.start();
    int vocab = CharVocabulary.write(dir, CHARS, '$');
    shape = LlamaConfig.llama(vocab, 24, 40, 2, 4, 2, 64, false);
    Map<String, HostTensor> hf;
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = LlamaModel.random(shape, m, 3)) {
      hf = new LinkedHashMap<>(model.toHuggingFace());
    }
    hf.remove("lm_head.weight");
    SplittableRandom rng = new SplittableRandom(9);
    head = new float[shape.hiddenSize()];
    for (int i = 0; i < head.length; i++) {
      head[i] = (float) (rng.nextDouble() * 2 - 1);
    }
    hf.put("score.weight", new HostTensor("score.weight", new long[] {1, shape.hiddenSize()}, head));
    HfCheckpoint.write(dir, shape, hf);
  }

  static RewardRequest req(String prompt, String completion) {
    return new RewardRequest(prompt, completion, new int[0], "", Map.of());
  }

  @Test
  void scoresMatchTheLanguageModelPathAndDoNotDependOnTheBatch() throws Exception {
    List<RewardRequest> batch = List.of(req("12+3=", "15$"), req("1+1=", "2"), req("ab", "c 9 9 9 9"));
    List<Float> expected = new ArrayList<>();
    try (HfTokenizer tok = HfTokenizer.load(dir); NDManager m = NDManager.newBaseManager()) {
      // the same decoder with head row 0 = the score head: logit 0 at the last position is the score
      var contents = HfCheckpoint.read(dir);
      Map<String, HostTensor> hf = new LinkedHashMap<>(contents.tensors());
      hf.remove("score.weight");
      float[] lmHead = new float[shape.vocabSize() * shape.hiddenSize()];
      System.arraycopy(head, 0, lmHead, 0, head.length);
      hf.put("lm_head.weight", new HostTensor("lm_head.weight", new long[] {shape.vocabSize(), shape.hiddenSize()},
          lmHead));
      try (LlamaModel lm = LlamaModel.create(shape, m, dev.nucleon.model.WeightLayout.fromHuggingFace(shape, hf,
          "test"))) {
        for (RewardRequest r : batch) {
          int[] ids = tok.encode(r.prompt() + r.completion(), true);
          long[] t = java.util.Arrays.stream(ids).asLongStream().toArray();
          float[] logits = lm.logits(m.create(t, new Shape(1, t.length))).toFloatArray();
          expected.add(logits[(ids.length - 1) * shape.vocabSize()]);
        }
      }
    }
    try (LearnedReward reward = LearnedReward.load(dir, "cpu", 2, 64)) {
      List<RewardResult> results = reward.score(batch);
      for (int i = 0; i < batch.size(); i++) {
        assertTrue(results.get(i).isOk());
        assertEquals(expected.get(i), results.get(i).reward(), 1e-4, "request " + i);
        assertEquals(results.get(i).reward(), reward.scoreOne(batch.get(i)).reward(), 1e-5,
            "alone or in a batch of different lengths");
      }
      assertNotEquals(results.get(0).reward(), results.get(1).reward());
    }
  }

  @Test
  void foundByNameFromConfigAndGuarded() {
    var config = ConfigFactory.parseString("nucleon.reward { name = model, model { path = \"" + dir
        + "\", batch-size = 4 } }").withFallback(ConfigFactory.defaultReference()).resolve();
    try (var reward = Rewards.fromConfig(config)) {
      RewardResult r = reward.score(List.of(req("1+1=", "2$"))).get(0);
      assertTrue(r.isOk() && Double.isFinite(r.reward()));
    }
  }

  @Test
  void aCheckpointWithoutAScoreHeadIsRefused(@TempDir Path other) throws Exception {
    CharVocabulary.write(other, CHARS, '$');
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = LlamaModel.random(shape, m, 3)) {
      HfCheckpoint.write(other, shape, model.toHuggingFace());
    }
    var e = assertThrows(ModelFormatException.class, () -> LearnedReward.load(other, "cpu", 2, 64));
    assertTrue(e.getMessage().contains("score.weight"), e.getMessage());
  }
}
