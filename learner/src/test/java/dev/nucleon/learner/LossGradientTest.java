package dev.nucleon.learner;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.nn.Parameter;
import ai.djl.pytorch.jni.JniUtils;
import ai.djl.training.GradientCollector;
import dev.nucleon.core.rollout.FinishReason;
import dev.nucleon.core.rollout.Trajectory;
import dev.nucleon.model.Engines;
import dev.nucleon.model.LlamaConfig;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.replay.TrainingSample;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Autograd through the whole model agrees with central finite differences for every loss variant, and with ratio
 * 1 the clipped loss has exactly the REINFORCE gradient.
 */
class LossGradientTest {

  /** Qwen3's per-head q/k norms and q/k/v biases, GQA, an untied head: every part autograd must get right. */
  static final LlamaConfig SHAPE = new LlamaConfig("Qwen3ForCausalLM", 13, 16, 24, 1, 2, 1, 8, 10000.0, null, 1e-6,
      32, false, true, 1, new int[] {2});
  static final float TEMPERATURE = 0.8f;

  NDManager manager;
  LlamaModel model;
  LlamaModel reference;

  @BeforeEach
  void setUp() {
    Engines.start();
    manager = NDManager.newBaseManager();
    model = scaled(LlamaModel.random(SHAPE, manager, 21), 6f);
    reference = scaled(LlamaModel.random(SHAPE, manager, 22), 6f);
    model.setTrainable(true);
  }

  /** Larger weights than the 0.02 init so log-probs (and gradients) are far from uniform. */
  static LlamaModel scaled(LlamaModel m, float factor) {
    var host = m.toHostTensors();
    for (var t : host.values()) {
      if (!t.name().endsWith("norm.weight")) {
        for (int i = 0; i < t.data().length; i++) {
          t.data()[i] *= factor;
        }
      }
    }
    m.loadParameters(host);
    return m;
  }

  @AfterEach
  void tearDown() {
    model.close();
    reference.close();
    manager.close();
  }

  /** Three trajectories; behaviour log-probs are the current ones shifted by {@code offset(i)}. */
  List<TrainingSample> samples(Function<Integer, Float> offset) {
    int[][] prompts = {{1, 4, 7}, {1, 9}, {1, 3, 5, 11}};
    int[][] completions = {{6, 2, 8, 2}, {12, 5}, {3, 3, 10}};
    float[] adv = {1.3f, -0.7f, 0.4f};
    float[][] current = currentLogProbs(prompts, completions);
    List<TrainingSample> out = new ArrayList<>();
    int k = 0;
    for (int i = 0; i < prompts.length; i++) {
      float[] behaviour = new float[completions[i].length];
      for (int j = 0; j < behaviour.length; j++) {
        behaviour[j] = current[i][j] + offset.apply(k++);
      }
      Trajectory t = new Trajectory(i, 0, prompts[i], completions[i], behaviour, new int[behaviour.length],
          FinishReason.STOP, "");
      out.add(new TrainingSample(t, adv[i], adv[i]));
    }
    return out;
  }

  float[][] currentLogProbs(int[][] prompts, int[][] completions) {
    boolean mode = JniUtils.isGradMode();
    JniUtils.setGradMode(false);
    try (NDManager m = manager.newSubManager()) {
      int[][] seqs = new int[prompts.length][];
      for (int i = 0; i < prompts.length; i++) {
        seqs[i] = java.util.stream.IntStream.concat(java.util.Arrays.stream(prompts[i]),
            java.util.Arrays.stream(completions[i])).toArray();
      }
      NDArray lp = model.tokenLogProbs(m, seqs, TEMPERATURE);
      long width = lp.getShape().get(1);
      float[] flat = lp.toFloatArray();
      float[][] out = new float[prompts.length][];
      for (int i = 0; i < prompts.length; i++) {
        out[i] = new float[completions[i].length];
        for (int j = 0; j < out[i].length; j++) {
          out[i][j] = flat[(int) (i * width + prompts[i].length - 1 + j)];
        }
      }
      return out;
    } finally {
      JniUtils.setGradMode(mode);
    }
  }

  NDArray loss(NDManager m, LossSettings s, List<TrainingSample> samples) {
    Learner.MicroBatch mb = Learner.MicroBatch.of(m, samples);
    NDArray logp = mb.logProbs(model, TEMPERATURE);
    NDArray ref = s.klCoef() > 0
        ? mb.logProbs(reference, TEMPERATURE).stopGradient() : null;
    long tokens = samples.stream().mapToLong(x -> x.trajectory().completionTokens().length).sum();
    return PolicyLoss.compute(s, new PolicyLoss.Inputs(logp, mb.behaviour(), mb.advantages(), mb.mask(),
        mb.lengths(), ref), PolicyLoss.normalizer(s, tokens, samples.size())).loss();
  }

  Map<String, float[]> autograd(Function<NDManager, NDArray> lossFn) {
    return autograd(model, manager, lossFn);
  }

  /** The gradient of {@code lossFn} with respect to every weight of {@code model}, which is left with none. */
  static Map<String, float[]> autograd(LlamaModel model, NDManager manager, Function<NDManager, NDArray> lossFn) {
    Map<String, float[]> grads = new LinkedHashMap<>();
    try (NDManager m = manager.newSubManager()) {
      try (GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
        gc.backward(lossFn.apply(m));
      }
      for (var e : model.namedParameters().entrySet()) {
        NDArray g = e.getValue().getArray().getGradient();
        g.attach(m);
        grads.put(e.getKey(), g.toFloatArray());
      }
    }
    try (AdamW zero = new AdamW(model.namedParameters(), manager, OptimizerSettings.adamw(1e-3))) {
      zero.zeroGradients();
    }
    return grads;
  }

  double evaluate(Function<NDManager, NDArray> lossFn) {
    boolean mode = JniUtils.isGradMode();
    JniUtils.setGradMode(false);
    try (NDManager m = manager.newSubManager()) {
      return lossFn.apply(m).getFloat();
    } finally {
      JniUtils.setGradMode(mode);
    }
  }

  static LossSettings variant(String name) {
    var k3 = LossSettings.KlEstimator.K3;
    return switch (name) {
      case "ppo-token-mean" -> new LossSettings(0.2, 0.28, 0, LossSettings.Aggregation.TOKEN_MEAN, 1, 0, k3);
      case "ppo-sequence-mean" -> new LossSettings(0.2, 0.2, 0, LossSettings.Aggregation.SEQUENCE_MEAN, 1, 0, k3);
      case "ppo-constant" -> new LossSettings(0.2, 0.2, 0, LossSettings.Aggregation.CONSTANT_NORMALIZER, 8, 0, k3);
      case "tis" -> new LossSettings(0.2, 0.2, 1.5, LossSettings.Aggregation.TOKEN_MEAN, 1, 0, k3);
      case "kl-k1" -> new LossSettings(0.2, 0.2, 0, LossSettings.Aggregation.TOKEN_MEAN, 1, 0.3,
          LossSettings.KlEstimator.K1);
      case "kl-k3" -> new LossSettings(0.2, 0.2, 0, LossSettings.Aggregation.TOKEN_MEAN, 1, 0.3, k3);
      default -> throw new IllegalArgumentException(name);
    };
  }

  @ParameterizedTest
  @ValueSource(strings = {"ppo-token-mean", "ppo-sequence-mean", "ppo-constant", "tis", "kl-k1", "kl-k3", "sft"})
  void autogradAgreesWithFiniteDifferences(String name) {
    // behaviour log-probs off by +-0.1..0.4 so ratios spread around 1 (some clipped, none at a boundary)
    List<TrainingSample> samples = samples(k -> (k % 2 == 0 ? 1 : -1) * (0.1f + 0.1f * (k % 4)));
    Function<NDManager, NDArray> lossFn;
    if (name.equals("sft")) {
      List<int[]> prompts = new ArrayList<>();
      List<int[]> targets = new ArrayList<>();
      for (TrainingSample s : samples) {
        prompts.add(s.trajectory().promptTokens());
        targets.add(s.trajectory().completionTokens());
      }
      lossFn = m -> {
        Learner.MicroBatch mb = Learner.MicroBatch.supervised(m, prompts, targets);
        NDArray logp = mb.logProbs(model, 1f);
        return logp.sum().neg().div(9f);
      };
    } else {
      LossSettings s = variant(name);
      lossFn = m -> loss(m, s, samples);
    }
    Map<String, float[]> grads = autograd(lossFn);
    if (name.equals("tis")) {
      // TIS differentiates a surrogate: the proximal log-probs and the capped weights are constants of the step.
      // Finite differences must hold them at their values at the current weights.
      lossFn = frozenTisSurrogate(samples, variant(name));
    }
    double h = 2e-3;
    int checked = 0;
    double worst = 0;
    for (String param : List.of("model.layers.0.self_attn.qkv_proj.weight", "model.layers.0.self_attn.qkv_proj.bias",
        "model.layers.0.self_attn.q_norm.weight", "model.layers.0.self_attn.k_norm.weight",
        "model.layers.0.mlp.down_proj.weight", "model.embed_tokens.weight", "lm_head.weight")) {
      float[] g = grads.get(param);
      for (int idx : topIndices(g, 3)) {
        double fd = (perturbed(param, idx, h, lossFn) - perturbed(param, idx, -h, lossFn)) / (2 * h);
        double rel = Math.abs(fd - g[idx]) / Math.max(Math.abs(g[idx]), 1e-3);
        worst = Math.max(worst, rel);
        checked++;
        assertTrue(rel < 1e-2, name + " " + param + "[" + idx + "]: autograd " + g[idx] + " vs finite difference "
            + fd);
      }
    }
    System.out.printf("%s: %d gradient entries within %.2e relative of central differences%n", name, checked, worst);
    assertEquals(21, checked);
  }

  Function<NDManager, NDArray> frozenTisSurrogate(List<TrainingSample> samples, LossSettings s) {
    float[] prox;
    float[] weight;
    try (NDManager m = manager.newSubManager()) {
      boolean mode = JniUtils.isGradMode();
      JniUtils.setGradMode(false);
      Learner.MicroBatch mb = Learner.MicroBatch.of(m, samples);
      NDArray logp = mb.logProbs(model, TEMPERATURE);
      prox = logp.toFloatArray();
      weight = logp.sub(mb.behaviour()).exp().minimum(s.tisCap()).toFloatArray();
      JniUtils.setGradMode(mode);
    }
    return m -> {
      Learner.MicroBatch mb = Learner.MicroBatch.of(m, samples);
      NDArray logp = mb.logProbs(model, TEMPERATURE);
      NDArray ratio = logp.sub(m.create(prox, logp.getShape())).exp();
      return ratio.mul(mb.advantages()).mul(m.create(weight, logp.getShape())).mul(mb.mask()).sum().neg().div(9f);
    };
  }

  double perturbed(String param, int idx, double h, Function<NDManager, NDArray> lossFn) {
    Parameter p = model.namedParameters().get(param);
    boolean mode = JniUtils.isGradMode();
    JniUtils.setGradMode(false);
    float[] data = p.getArray().toFloatArray();
    float original = data[idx];
    data[idx] = (float) (original + h);
    p.getArray().set(FloatBuffer.wrap(data));
    JniUtils.setGradMode(mode);
    double value = evaluate(lossFn);
    JniUtils.setGradMode(false);
    data[idx] = original;
    p.getArray().set(FloatBuffer.wrap(data));
    JniUtils.setGradMode(mode);
    return value;
  }

  static int[] topIndices(float[] g, int k) {
    Integer[] idx = new Integer[g.length];
    for (int i = 0; i < g.length; i++) {
      idx[i] = i;
    }
    java.util.Arrays.sort(idx, (a, b) -> Float.compare(Math.abs(g[b]), Math.abs(g[a])));
    int[] out = new int[k];
    for (int i = 0; i < k; i++) {
      out[i] = idx[i];
    }
    return out;
  }

  @org.junit.jupiter.api.Test
  void atRatioOneTheClippedLossHasTheReinforceGradient() {
    List<TrainingSample> samples = samples(k -> 0f);
    Map<String, float[]> ppo = autograd(m -> loss(m, LossSettings.defaults(), samples));
    Map<String, float[]> reinforce = autograd(m -> {
      Learner.MicroBatch mb = Learner.MicroBatch.of(m, samples);
      NDArray logp = mb.logProbs(model, TEMPERATURE);
      return logp.mul(mb.advantages()).mul(mb.mask()).sum().neg().div(9f);
    });
    double maxDiff = 0;
    double maxGrad = 0;
    for (String p : ppo.keySet()) {
      for (int i = 0; i < ppo.get(p).length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(ppo.get(p)[i] - reinforce.get(p)[i]));
        maxGrad = Math.max(maxGrad, Math.abs(reinforce.get(p)[i]));
      }
    }
    assertTrue(maxGrad > 1e-3, "the test needs a non-trivial gradient");
    assertTrue(maxDiff < 1e-5 * maxGrad + 1e-7, "max difference " + maxDiff + " of max gradient " + maxGrad);
  }
}
