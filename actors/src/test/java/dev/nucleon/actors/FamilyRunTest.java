package dev.nucleon.actors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import com.fasterxml.jackson.databind.JsonNode;
import dev.nucleon.model.Engines;
import dev.nucleon.model.LlamaConfig;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.ModelFiles;
import dev.nucleon.model.io.HfCheckpoint;
import dev.nucleon.model.io.HostTensor;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The whole loop (rollout, reward, replay, learner, weights back to the worker) on randomly initialized models of
 * the newer families, in the quickstart's task and tokenizer with a length reward: the run finishes, its learner
 * steps are finite, and the family's own parameters (q/k norms, OLMo 2's post-norms) were trained and saved in the
 * family's layout. Both run in bfloat16, as the issue asks: rollouts in bfloat16, the learner in mixed precision,
 * from a bfloat16 base model, so checkpoints are saved in bfloat16 with the float32 masters beside them; the log-prob
 * gap between the bfloat16 sampler and the learner is reported.
 */
class FamilyRunTest {

  @ParameterizedTest
  @ValueSource(strings = {"Qwen3ForCausalLM", "Olmo2ForCausalLM"})
  void aRandomModelOfTheFamilyRunsTheLoop(String architecture, @TempDir Path dir) throws Exception {
    Path base = TestRuns.REPO.resolve("conf/models/quickstart-base");
    LlamaConfig quick = LlamaConfig.fromHuggingFace(base.resolve("config.json"));
    LlamaConfig c = new LlamaConfig(architecture, quick.vocabSize(), 32, 64, 2, 4, 2, 8, 10000.0, null, 1e-6,
        quick.maxPositionEmbeddings(), false, false, quick.bosTokenId(), quick.eosTokenIds());
    Path model = Files.createDirectories(dir.resolve("model"));
    Engines.start();
    Map<String, HostTensor> initial;
    try (NDManager m = NDManager.newBaseManager(); LlamaModel random = LlamaModel.random(c, m, 5)) {
      HfCheckpoint.write(model, c, random.toHuggingFace(), DataType.BFLOAT16);
    }
    initial = ModelFiles.read(model).huggingFace(); // as stored: rounded to bfloat16
    for (String f : List.of("tokenizer.json", "tokenizer_config.json")) {
      Files.copy(base.resolve(f), model.resolve(f));
    }

    Map<String, String> o = TestRuns.small();
    o.put("nucleon.model.path", "\"" + model + "\"");
    o.put("nucleon.run.total-steps", "3");
    o.put("nucleon.rollout.dtype", "bf16");
    o.put("nucleon.learner.dtype", "bf16");
    // a random model never answers right: reward length instead (1 for one token, falling to 0 at four), so groups
    // have reward variance and the policy gradient is not zero
    o.put("nucleon.reward.name", "length");
    o.put("nucleon.reward.length.mode", "budget");
    o.put("nucleon.reward.length.max-length", "1");
    o.put("nucleon.reward.length.soft-margin", "3");
    Path run = dir.resolve("run");
    RunReporter.Summary s = EmbeddedRunTest.run(o, run);
    assertEquals(3, s.steps());
    List<JsonNode> steps = TestRuns.rows(run, "step");
    assertEquals(3, steps.size());
    int gapSteps = 0;
    for (JsonNode row : steps) {
      assertTrue(Double.isFinite(row.get("loss").asDouble()) && row.get("grad_norm").asDouble() > 0, row.toString());
      assertEquals(0, row.get("skipped_update").asInt(), row.toString());
      if (row.has("token_mult_prob_error")) {
        gapSteps++;
        double gap = row.get("logprob_gap_mean").asDouble();
        // the sampler and the learner both compute in bfloat16 from the same rounded weights: the gap is small, and
        // may be exactly 0 where both paths round alike
        assertTrue(Double.isFinite(gap) && gap < 0.05, "bf16 sampler vs mixed-precision learner log-prob gap " + gap);
        assertTrue(row.get("token_mult_prob_error").asDouble() >= 1, row.toString());
      }
    }
    assertTrue(gapSteps > 0, "no step compared the sampler's log-probs with the learner's: " + steps);

    Path saved;
    try (Stream<Path> ckpts = Files.list(run.resolve("checkpoints"))) {
      saved = ckpts.sorted().reduce((a, b) -> b).orElseThrow().resolve("model");
    }
    ModelFiles.Checkpoint trained = ModelFiles.read(saved);
    assertEquals(architecture, trained.config().architecture());
    assertEquals(DataType.BFLOAT16, trained.storedType(), "saved in the base model's type");
    assertTrue(Files.isRegularFile(saved.resolveSibling("master-weights.safetensors")), "float32 masters kept");
    String familyPart = architecture.equals("Qwen3ForCausalLM") ? "model.layers.0.self_attn.q_norm.weight"
        : "model.layers.0.post_feedforward_layernorm.weight";
    // three small steps move a norm weight near 1 by less than bfloat16's spacing there (2^-7): compare the
    // float32 masters, which a resume also reads
    Map<String, HostTensor> masters =
        dev.nucleon.model.io.Safetensors.read(saved.resolveSibling("master-weights.safetensors"));
    for (String name : List.of(familyPart, "model.layers.1.self_attn.k_norm.weight")) {
      float[] before = initial.get(name).data();
      float[] after = masters.get(name).data();
      assertFalse(java.util.Arrays.equals(before, after), name + " was trained");
    }
  }
}
