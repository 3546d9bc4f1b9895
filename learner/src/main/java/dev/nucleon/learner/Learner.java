package dev.nucleon.learner;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import dev.nucleon.core.rollout.Trajectory;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.Ops;
import dev.nucleon.replay.TrainingBatch;
import dev.nucleon.replay.TrainingSample;
import java.util.List;

/**
 * Trains the policy: per training batch, forward and backward over every micro-batch (gradients accumulate, and
 * the loss normalizer spans the whole batch, so the step equals one large-batch step), then one AdamW update, and
 * the policy version goes up by one.
 *
 * <p>Thread-confined: DJL's autograd mode is per thread and only one gradient collector may be open per process,
 * so one thread (the learner actor's) drives every call.
 */
public final class Learner implements AutoCloseable {

  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(Learner.class);

  private final LlamaModel policy;
  private final LlamaModel reference;
  private final LossSettings loss;
  private final float temperature;
  private final AdamW optimizer;
  private final GradSpikeGuard spikes;
  private int version;
  private StepProbe probe = StepProbe.NONE;

  /**
   * Test seam: called on the learner thread between the phases of a step, so tests can put GC pressure between
   * forward and backward or read the accumulated gradients before the update.
   */
  interface StepProbe {
    StepProbe NONE = new StepProbe() {};

    /** After a micro-batch's forward pass and loss, before its backward pass. */
    default void beforeBackward() {}

    /** After every micro-batch's backward pass, before the optimizer reads the gradients. */
    default void beforeUpdate() {}
  }

  /**
   * @param policy the model to train (made trainable here)
   * @param reference frozen model for the KL term, or null
   * @param loss loss settings
   * @param optimizer optimizer settings
   * @param temperature the sampling temperature whose distribution produced the behaviour log-probs
   * @param version the policy version of the current weights
   */
  public Learner(LlamaModel policy, LlamaModel reference, LossSettings loss, OptimizerSettings optimizer,
      float temperature, int version) {
    this(policy, reference, loss, optimizer, GradSpikeGuard.Settings.DEFAULT, temperature, version);
  }

  /**
   * @param policy the model to train (made trainable here)
   * @param reference frozen model for the KL term, or null
   * @param loss loss settings
   * @param optimizer optimizer settings
   * @param spikes when a gradient norm counts as a spike, and whether such an update is skipped
   * @param temperature the sampling temperature whose distribution produced the behaviour log-probs
   * @param version the policy version of the current weights
   */
  public Learner(LlamaModel policy, LlamaModel reference, LossSettings loss, OptimizerSettings optimizer,
      GradSpikeGuard.Settings spikes, float temperature, int version) {
    if (loss.klCoef() > 0 && reference == null) {
      throw new IllegalArgumentException("kl-coef > 0 needs a reference model");
    }
    this.policy = policy;
    this.reference = reference;
    this.loss = loss;
    this.temperature = temperature;
    this.version = version;
    policy.setTrainable(true);
    if (reference != null) {
      reference.setTrainable(false);
    }
    this.optimizer = new AdamW(policy.namedParameters(), policy.manager(), optimizer);
    this.spikes = new GradSpikeGuard(spikes);
  }

  public LlamaModel policy() {
    return policy;
  }

  public AdamW optimizer() {
    return optimizer;
  }

  /** The policy version of the current weights. */
  public int version() {
    return version;
  }

  void setProbe(StepProbe probe) {
    this.probe = probe == null ? StepProbe.NONE : probe;
  }

  /** Sets the version (when resuming from a checkpoint). */
  public void setVersion(int version) {
    this.version = version;
  }

  /**
   * One policy-gradient step on a training batch. The version goes up by one per step, also when the update was
   * skipped because the gradient was not finite (then the weights of the new version equal the old ones).
   */
  public StepStats train(TrainingBatch batch) {
    long start = System.nanoTime();
    long tokens = 0;
    for (TrainingSample s : batch.samples()) {
      tokens += s.trajectory().completionTokens().length;
    }
    int sequences = batch.samples().size();
    double normalizer = PolicyLoss.normalizer(loss, tokens, sequences);
    double lossSum = 0;
    double clipped = 0;
    double ratioSum = 0;
    double ratioMax = 0;
    double klSum = 0;
    double entropySum = 0;
    double tisCapped = 0;
    double tokenCount = 0;
    try (GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
      for (List<TrainingSample> micro : batch.microBatches()) {
        try (NDManager m = policy.manager().newSubManager()) {
          MicroBatch mb = MicroBatch.of(m, micro);
          NDArray logProbs = LlamaModel.shiftedLogSoftmax(policy.logits(mb.tokens()), m, temperature);
          NDArray logp = LlamaModel.gatherTargets(logProbs, mb.tokens());
          NDArray ref = reference == null || loss.klCoef() == 0 ? null
              : LlamaModel.selectLogProbs(reference.logits(mb.tokens()), mb.tokens(), temperature).stopGradient();
          PolicyLoss.Output out = PolicyLoss.compute(loss,
              new PolicyLoss.Inputs(logp, mb.behaviour(), mb.advantages(), mb.mask(), mb.lengths(), ref),
              normalizer);
          probe.beforeBackward();
          gc.backward(out.loss());
          lossSum += out.loss().getFloat();
          clipped += out.clippedTokens();
          ratioSum += out.ratioSum();
          ratioMax = Math.max(ratioMax, out.ratioMax());
          klSum += out.klSum();
          tisCapped += out.tisCappedTokens();
          tokenCount += out.tokens();
          entropySum += entropy(logProbs, mb.mask());
        }
      }
    }
    probe.beforeUpdate();
    Applied a = update();
    AdamW.Update u = a.update();
    // a skipped update (non-finite gradient) still ends the step: the batch is consumed and the version counts
    // optimizer steps, so the coordinator's admission bookkeeping (groups per version) stays exact
    version++;
    double n = Math.max(1, tokenCount);
    return new StepStats(optimizer.step(), version, lossSum, sequences, tokens, clipped / n, ratioSum / n, ratioMax,
        klSum / n, entropySum / n, tisCapped / n, u.gradNorm(), u.lr(), u.skipped(),
        (System.nanoTime() - start) / 1e9, u.maxParamNorm(), u.maxParam(), a.verdict().spike(),
        a.verdict().median());
  }

  private record Applied(AdamW.Update update, GradSpikeGuard.Verdict verdict) {}

  /** Measures the gradients, judges their norm against recent steps, and applies them unless refused. */
  private Applied update() {
    AdamW.Norms norms = optimizer.measure();
    GradSpikeGuard.Verdict verdict = spikes.observe(norms.norm());
    boolean refuse = verdict.spike() && spikes.settings().skip();
    if (verdict.spike()) {
      LOG.warn("gradient spike at optimizer step {}: norm {} is {}x the median {} of recent steps (largest: {} with "
          + "norm {}); {}", optimizer.step() + 1, String.format("%.4g", norms.norm()),
          String.format("%.1f", norms.norm() / verdict.median()), String.format("%.4g", verdict.median()),
          norms.maxParam(), String.format("%.4g", norms.maxParamNorm()),
          refuse ? "update skipped (grad-spike-skip = true)" : "update applied after clipping");
    }
    return new Applied(optimizer.apply(norms, refuse), verdict);
  }

  /** Sum over masked positions of the entropy of the next-token distribution (no gradient). */
  private static double entropy(NDArray logProbs, NDArray mask) {
    NDArray lp = logProbs.stopGradient();
    return lp.exp().mul(lp).sum(new int[] {2}).neg().mul(mask).sum().getFloat();
  }

  /**
   * One supervised step: cross-entropy on the target tokens that follow each prompt (token mean over the batch).
   * Used to build small base models and for SFT warm-up.
   *
   * @param prompts context tokens (no loss)
   * @param targets tokens to learn, one row per prompt
   * @param microBatchSize rows per forward/backward pass
   */
  public StepStats supervised(List<int[]> prompts, List<int[]> targets, int microBatchSize) {
    if (prompts.size() != targets.size()) {
      throw new IllegalArgumentException(prompts.size() + " prompts but " + targets.size() + " targets");
    }
    long start = System.nanoTime();
    long tokens = 0;
    for (int[] t : targets) {
      tokens += t.length;
    }
    double lossSum = 0;
    try (GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
      for (int from = 0; from < prompts.size(); from += microBatchSize) {
        int to = Math.min(prompts.size(), from + microBatchSize);
        try (NDManager m = policy.manager().newSubManager()) {
          MicroBatch mb = MicroBatch.supervised(m, prompts.subList(from, to), targets.subList(from, to));
          NDArray logp = LlamaModel.selectLogProbs(policy.logits(mb.tokens()), mb.tokens(), 1f);
          // padding positions may hold -inf log-probs (never-trained ids); clamp so -inf * 0 never becomes NaN
          NDArray ce = Ops.div(logp.clip(-1e4f, 0f).mul(mb.mask()).sum().neg(), Math.max(1, tokens));
          probe.beforeBackward();
          gc.backward(ce);
          lossSum += ce.getFloat();
        }
      }
    }
    probe.beforeUpdate();
    Applied a = update();
    AdamW.Update u = a.update();
    return new StepStats(optimizer.step(), version, lossSum, prompts.size(), tokens, 0, 1, 1, 0, 0, 0, u.gradNorm(),
        u.lr(), u.skipped(), (System.nanoTime() - start) / 1e9, u.maxParamNorm(), u.maxParam(), a.verdict().spike(),
        a.verdict().median());
  }

  @Override
  public void close() {
    optimizer.close();
  }

  /**
   * The arrays of one micro-batch: right-padded prompt + completion rows, and per predicted position (T - 1
   * columns) the completion mask and behaviour log-prob; per row the advantage and completion length.
   */
  record MicroBatch(NDArray tokens, NDArray mask, NDArray behaviour, NDArray advantages, NDArray lengths) {

    static MicroBatch of(NDManager m, List<TrainingSample> samples) {
      int b = samples.size();
      int[][] seqs = new int[b][];
      int width = 0;
      for (int i = 0; i < b; i++) {
        Trajectory t = samples.get(i).trajectory();
        seqs[i] = concat(t.promptTokens(), t.completionTokens());
        width = Math.max(width, seqs[i].length - 1);
      }
      float[] mask = new float[b * width];
      float[] behaviour = new float[b * width];
      float[] adv = new float[b];
      float[] len = new float[b];
      for (int i = 0; i < b; i++) {
        Trajectory t = samples.get(i).trajectory();
        int p = t.promptTokens().length;
        for (int j = 0; j < t.completionTokens().length; j++) {
          mask[i * width + p - 1 + j] = 1f;
          behaviour[i * width + p - 1 + j] = t.behaviourLogProbs()[j];
        }
        adv[i] = samples.get(i).advantage();
        len[i] = Math.max(1, t.completionTokens().length);
      }
      return new MicroBatch(LlamaModel.paddedTokens(m, seqs), m.create(mask, new Shape(b, width)),
          m.create(behaviour, new Shape(b, width)), m.create(adv, new Shape(b, 1)), m.create(len, new Shape(b, 1)));
    }

    static MicroBatch supervised(NDManager m, List<int[]> prompts, List<int[]> targets) {
      int b = prompts.size();
      int[][] seqs = new int[b][];
      int width = 0;
      for (int i = 0; i < b; i++) {
        if (prompts.get(i).length == 0) {
          throw new IllegalArgumentException("supervised row " + i + " has an empty prompt");
        }
        seqs[i] = concat(prompts.get(i), targets.get(i));
        width = Math.max(width, seqs[i].length - 1);
      }
      float[] mask = new float[b * width];
      for (int i = 0; i < b; i++) {
        int p = prompts.get(i).length;
        for (int j = 0; j < targets.get(i).length; j++) {
          mask[i * width + p - 1 + j] = 1f;
        }
      }
      return new MicroBatch(LlamaModel.paddedTokens(m, seqs), m.create(mask, new Shape(b, width)), null, null,
          null);
    }

    private static int[] concat(int[] a, int[] b) {
      int[] out = java.util.Arrays.copyOf(a, a.length + b.length);
      System.arraycopy(b, 0, out, a.length, b.length);
      return out;
    }
  }
}
