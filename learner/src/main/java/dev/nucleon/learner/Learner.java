package dev.nucleon.learner;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.jni.JniUtils;
import ai.djl.training.GradientCollector;
import dev.nucleon.core.rollout.Trajectory;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.Ops;
import dev.nucleon.model.SharedPromptRows;
import dev.nucleon.replay.TrainingBatch;
import dev.nucleon.replay.TrainingSample;
import java.util.List;

/**
 * Trains the policy: per training batch, forward and backward over every micro-batch (gradients accumulate, and
 * the loss normalizer spans the whole batch, so the step equals one large-batch step), then one AdamW update, and
 * the policy version goes up by one. With {@link Updates} above one, the batch is cut into minibatches and each
 * gets that treatment, possibly for several epochs, before the version goes up.
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
  private final Updates updates;
  private int version;
  private StepProbe probe = StepProbe.NONE;
  private boolean replayRouting = true;
  private boolean sharePrompts = true;
  private double routerAuxLossCoef;

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
    this(policy, reference, loss, optimizer, spikes, Updates.ONE, temperature, version);
  }

  /**
   * @param policy the model to train (made trainable here)
   * @param reference frozen model for the KL term, or null (a LoRA policy then uses its base: adapter off)
   * @param loss loss settings
   * @param optimizer optimizer settings; its schedule advances once per training batch
   * @param spikes when a gradient norm counts as a spike, and whether such an update is skipped
   * @param updates optimizer steps per training batch
   * @param temperature the sampling temperature whose distribution produced the behaviour log-probs
   * @param version the policy version of the current weights
   */
  public Learner(LlamaModel policy, LlamaModel reference, LossSettings loss, OptimizerSettings optimizer,
      GradSpikeGuard.Settings spikes, Updates updates, float temperature, int version) {
    if (loss.klCoef() > 0 && reference == null && !policy.hasLora()) {
      throw new IllegalArgumentException("kl-coef > 0 needs a reference model (or a LoRA policy, whose base is one)");
    }
    // what trains must be float32 (masters); a frozen base under a LoRA adapter may be bfloat16
    for (var e : policy.trainableParameters().entrySet()) {
      if (dev.nucleon.model.Precision.typeOf(e.getValue().getArray()) != ai.djl.ndarray.types.DataType.FLOAT32) {
        throw new IllegalArgumentException("the learner trains float32 master weights, but " + e.getKey() + " is "
            + dev.nucleon.model.Precision.name(dev.nucleon.model.Precision.typeOf(e.getValue().getArray()))
            + ": build the policy with Precision.training(type), or attach a LoRA adapter (float32) to a bfloat16 "
            + "base");
      }
    }
    this.policy = policy;
    this.reference = reference;
    this.loss = loss;
    this.temperature = temperature;
    this.updates = java.util.Objects.requireNonNull(updates, "updates");
    this.version = version;
    policy.setTrainable(true);
    if (reference != null) {
      reference.setTrainable(false);
    }
    // the LoRA adapter's parameters when one is attached (the base stays frozen), else every parameter
    this.optimizer = new AdamW(policy.trainableParameters(), policy.manager(), optimizer);
    this.spikes = new GradSpikeGuard(spikes);
  }

  public LlamaModel policy() {
    return policy;
  }

  /** Whether the load-balancing loss is added (a coefficient above 0 and a mixture-of-experts policy). */
  private boolean auxLoss() {
    return routerAuxLossCoef > 0 && policy.config().moe() != null;
  }

  /** The policy's mixture-of-experts layers (empty for a dense model). */
  private List<Integer> sparseLayers() {
    return policy.config().moe() == null ? List.of() : policy.config().moe().sparseLayers();
  }

  public AdamW optimizer() {
    return optimizer;
  }

  /** The gradient-spike guard (its history goes into checkpoints). */
  public GradSpikeGuard spikeGuard() {
    return spikes;
  }

  /** The policy version of the current weights. */
  public int version() {
    return version;
  }

  /**
   * Whether a mixture-of-experts policy is scored with the experts the rollout recorded for each token (the
   * default), or with its own routers' choices ({@link LearnerSettings.RoutingReplay}). Either way the share of
   * (token, layer) choices where its routers differ from the rollout's is measured ({@link
   * StepStats#routerDisagreement()}).
   */
  public void setRoutingReplay(LearnerSettings.RoutingReplay mode) {
    this.replayRouting = mode == LearnerSettings.RoutingReplay.ROLLOUT;
  }

  /**
   * Whether samples that share a prompt (a GRPO group's) share its forward pass: each distinct prompt of a
   * micro-batch runs once and its samples' completions attend to it ({@link dev.nucleon.model.SharedPromptRows};
   * the default), or every sample is scored as its own right-padded row. Both give the same log-probs and
   * gradients, to rounding; sharing spends the prompt's compute once per group instead of once per sample. A
   * mixture of experts' load-balancing loss (and routing statistics) then counts a group's prompt tokens once, as
   * the forward routes them once.
   */
  public void setSharedPrompts(boolean share) {
    this.sharePrompts = share;
  }

  /**
   * The weight of a mixture-of-experts policy's load-balancing loss ({@link dev.nucleon.model.Routing#auxLoss()}),
   * added to the policy loss; 0 (the default) for none.
   */
  public void setRouterAuxLoss(double coef) {
    if (!(coef >= 0)) {
      throw new IllegalArgumentException("router aux loss coefficient must be >= 0, got " + coef);
    }
    this.routerAuxLossCoef = coef;
  }

  void setProbe(StepProbe probe) {
    this.probe = probe == null ? StepProbe.NONE : probe;
  }

  /** Sets the version (when resuming from a checkpoint). */
  public void setVersion(int version) {
    this.version = version;
  }

  /**
   * One policy-gradient step on a training batch: {@link Updates} says how many optimizer steps (one by default), each
   * over one minibatch of the batch with its own loss normalizer. The version goes up by one per batch, also when
   * an update was skipped because the gradient was not finite (then the weights of the new version may equal the
   * old ones).
   */
  public StepStats train(TrainingBatch batch) {
    long start = System.nanoTime();
    long tokens = 0;
    for (TrainingSample s : batch.samples()) {
      tokens += s.trajectory().trainedTokens();
    }
    List<List<List<TrainingSample>>> minibatches = updates.cut(batch);
    // TIS weighs each token by the policy at the start of the step over the behaviour policy: after the first
    // update of a batch that policy is no longer the one being trained, so its log-probs are taken up front
    java.util.Map<TrainingSample, float[]> proximal =
        loss.tisCap() > 0 && updates.epochs() * minibatches.size() > 1 ? proximalLogProbs(batch) : null;
    Sums sums = new Sums();
    LogProbGap.Accumulator gap = new LogProbGap.Accumulator();
    Applied last = null;
    Applied largest = null;
    boolean skipped = false;
    boolean spike = false;
    int applied = 0;
    for (int epoch = 0; epoch < updates.epochs(); epoch++) {
      for (List<List<TrainingSample>> minibatch : minibatches) {
        // the log-prob gap compares the sampler with these exact weights: only before the batch's first update
        sums.countExperts = epoch == 0; // tokens per expert over one pass of the batch
        accumulate(minibatch, proximal, sums, applied == 0 ? gap : null);
        sums.auxPasses += auxLoss() ? 1 : 0;
        probe.beforeUpdate();
        last = update(version);
        applied++;
        if (largest == null || !(last.update().gradNorm() <= largest.update().gradNorm())) {
          largest = last;
        }
        skipped |= last.update().skipped();
        spike |= last.verdict().spike();
      }
    }
    // a skipped update (non-finite gradient) still ends the step: the batch is consumed and the version counts
    // batches, so the coordinator's admission bookkeeping (groups per version) stays exact
    version++;
    double n = Math.max(1, sums.tokenCount);
    AdamW.Norms norms = largest.update().norms();
    return new StepStats(optimizer.step(), version, sums.loss / applied, batch.samples().size(), tokens,
        sums.clipped / n, sums.ratio / n, sums.ratioMax, sums.kl / n, sums.entropy / n, sums.tisCapped / n,
        largest.update().gradNorm(), last.update().lr(), skipped, (System.nanoTime() - start) / 1e9,
        norms.maxParamNorm(), norms.maxParam(), spike, last.verdict().median(), gap.result(), sums.routing());
  }

  /** Statistics summed over the micro-batches of a training step. */
  private static final class Sums {
    double loss;
    double clipped;
    double ratio;
    double ratioMax;
    double kl;
    double entropy;
    double tisCapped;
    double tokenCount;
    long routed;
    long routedDiffering;
    double aux;
    int auxPasses;
    /** Per sparse layer, tokens per expert (the step's first pass over the batch). */
    final java.util.Map<Integer, long[]> expertTokens = new java.util.TreeMap<>();
    boolean countExperts;

    void add(dev.nucleon.model.Routing r) {
      if (r == null) {
        return;
      }
      routed += r.compared();
      routedDiffering += r.differing();
      if (countExperts) {
        r.expertTokens().forEach((layer, counts) -> {
          long[] sum = expertTokens.computeIfAbsent(layer, l -> new long[counts.length]);
          for (int e = 0; e < counts.length; e++) {
            sum[e] += counts[e];
          }
        });
      }
    }

    StepStats.Routing routing() {
      if (expertTokens.isEmpty()) {
        return StepStats.Routing.NONE;
      }
      double imbalance = 0;
      for (long[] counts : expertTokens.values()) {
        long max = java.util.Arrays.stream(counts).max().orElse(0);
        double mean = java.util.Arrays.stream(counts).average().orElse(0);
        imbalance = Math.max(imbalance, mean == 0 ? 0 : max / mean);
      }
      return new StepStats.Routing(routed, routed == 0 ? Double.NaN : (double) routedDiffering / routed, imbalance,
          auxPasses == 0 ? Double.NaN : aux / auxPasses);
    }
  }

  /**
   * Forward and backward over a minibatch's micro-batches: gradients accumulate, and the loss normalizer spans the
   * minibatch, so its update equals one large-batch step over it.
   */
  private void accumulate(List<List<TrainingSample>> micros, java.util.Map<TrainingSample, float[]> proximal,
      Sums sums, LogProbGap.Accumulator gap) {
    long tokens = 0;
    int sequences = 0;
    long realTokens = 0; // what the load-balancing loss spans, counted only when it is on
    boolean aux = auxLoss();
    for (List<TrainingSample> micro : micros) {
      for (TrainingSample s : micro) {
        tokens += s.trajectory().trainedTokens(); // an environment's tokens carry no loss
        sequences++;
      }
      realTokens += aux ? MicroBatch.inputTokens(micro, sharePrompts) : 0;
    }
    double normalizer = PolicyLoss.normalizer(loss, tokens, sequences);
    try (GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
      for (List<TrainingSample> micro : micros) {
        if (micro.stream().allMatch(s -> s.trajectory().trainedTokens() == 0)) {
          continue; // nothing to score: no loss, no gradient
        }
        try (NDManager m = policy.manager().newSubManager()) {
          MicroBatch mb = MicroBatch.of(m, micro, proximal, sparseLayers(), sharePrompts);
          dev.nucleon.model.Routing routing = mb.routing(replayRouting);
          boolean[] real = aux ? mb.realTokens() : null;
          if (aux) {
            routing = (routing == null ? dev.nucleon.model.Routing.record() : routing).collectingAux(real, m);
          }
          NDArray logProbs = mb.logSoftmax(policy, temperature, routing);
          sums.add(routing);
          NDArray logp = LlamaModel.pick(logProbs, mb.targets());
          if (gap != null && mb.sampledBy(version)) {
            NDArray seen = logp.stopGradient();
            seen.attach(m);
            gap.add(seen.toFloatArray(), mb.behaviourValues(), mb.tokenVersions(), version);
          }
          NDArray ref = loss.klCoef() == 0 ? null : referenceLogProbs(mb);
          PolicyLoss.Output out = PolicyLoss.compute(loss, new PolicyLoss.Inputs(logp, mb.behaviour(),
              mb.advantages(), mb.mask(), mb.lengths(), ref, mb.proximal()), normalizer);
          NDArray total = out.loss();
          if (aux) {
            // each micro-batch's share of the minibatch's tokens, so the minibatch's terms sum to one loss
            NDArray a = routing.auxLoss();
            double share = (double) MicroBatch.count(real) / realTokens;
            total = total.add(Ops.mul(a, routerAuxLossCoef * share));
            sums.aux += a.getFloat() * share;
          }
          probe.beforeBackward();
          gc.backward(total);
          sums.loss += out.loss().getFloat();
          sums.clipped += out.clippedTokens();
          sums.ratio += out.ratioSum();
          sums.ratioMax = Math.max(sums.ratioMax, out.ratioMax());
          sums.kl += out.klSum();
          sums.tisCapped += out.tisCappedTokens();
          sums.tokenCount += out.tokens();
          sums.entropy += entropy(logProbs, mb.mask());
        }
      }
    }
  }

  /**
   * Each sample's completion log-probs under the current weights (TIS's proximal policy), computed in the training
   * forward's mode (autograd on: the per-part products), so the first update's ratio against them is exactly 1;
   * nothing is kept for a backward pass.
   */
  private java.util.Map<TrainingSample, float[]> proximalLogProbs(TrainingBatch batch) {
    java.util.Map<TrainingSample, float[]> out = new java.util.IdentityHashMap<>();
    boolean mode = JniUtils.isGradMode();
    JniUtils.setGradMode(true);
    try {
      for (List<TrainingSample> micro : batch.microBatches()) {
        try (NDManager m = policy.manager().newSubManager()) {
          NDArray logp = MicroBatch.of(m, micro, null, sparseLayers(), sharePrompts)
              .logProbs(policy, temperature, replayRouting)
              .stopGradient();
          logp.attach(m);
          float[] all = logp.toFloatArray();
          int k = 0;
          for (TrainingSample s : micro) {
            int n = s.trajectory().completionTokens().length;
            out.put(s, java.util.Arrays.copyOfRange(all, k, k + n));
            k += n;
          }
        }
      }
    } finally {
      JniUtils.setGradMode(mode);
    }
    return out;
  }

  /**
   * The frozen reference model's log-probs of the targets, computed without autograd (the decoding path, nothing
   * recorded) and with its full-vocabulary distribution freed at once. Without a reference model, a LoRA policy's
   * base is the reference: the policy with its adapter switched off.
   */
  private NDArray referenceLogProbs(MicroBatch mb) {
    boolean mode = JniUtils.isGradMode();
    JniUtils.setGradMode(false);
    try {
      return reference != null ? mb.logProbs(reference, temperature, replayRouting)
          : policy.withoutAdapter(() -> mb.logProbs(policy, temperature, replayRouting));
    } finally {
      JniUtils.setGradMode(mode);
    }
  }

  private record Applied(AdamW.Update update, GradSpikeGuard.Verdict verdict) {}

  /**
   * Measures the gradients, judges their norm against recent steps, and applies them unless refused, at a
   * learning-rate schedule position.
   */
  private Applied update(long schedulePosition) {
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
    return new Applied(optimizer.apply(norms, refuse, schedulePosition), verdict);
  }

  /**
   * Sum over rows of the entropy of the next-token distributions {@code [N, V]} (no gradient). Its full-vocabulary
   * temporary is made in place and freed at once, so it never adds to the step's peak memory.
   */
  /** The summed entropy of the rows the mask keeps (the policy's tokens; an environment's carry none). */
  private static double entropy(NDArray logProbs, NDArray mask) {
    try (NDManager tmp = logProbs.getManager().newSubManager()) {
      NDArray lp = logProbs.stopGradient();
      lp.attach(tmp);
      return -lp.exp().muli(lp).sum(new int[] {1}).mul(mask).sum().getFloat();
    }
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
          // clamped so one impossible token (-inf) cannot turn the whole step's gradient into NaN
          NDArray ce = Ops.div(mb.logProbs(policy, 1f, false).clip(-1e4f, 0f).sum().neg(), Math.max(1, tokens));
          probe.beforeBackward();
          gc.backward(ce);
          lossSum += ce.getFloat();
        }
      }
    }
    probe.beforeUpdate();
    Applied a = update(optimizer.step());
    AdamW.Update u = a.update();
    return new StepStats(optimizer.step(), version, lossSum, prompts.size(), tokens, 0, 1, 1, 0, 0, 0, u.gradNorm(),
        u.lr(), u.skipped(), (System.nanoTime() - start) / 1e9, u.norms().maxParamNorm(), u.norms().maxParam(),
        a.verdict().spike(), a.verdict().median(), LogProbGap.NONE, StepStats.Routing.NONE);
  }

  @Override
  public void close() {
    optimizer.close();
  }

  /**
   * The arrays of one micro-batch. The model reads either right-padded {@code prompt + completion} rows
   * {@code [B, Tmax]} with the flat position {@code b * Tmax + t} that scores each completion token, or {@link
   * SharedPromptRows} (each distinct prompt once; then {@code tokens} and {@code positions} are null). Everything
   * else is per scored token, flattened over the batch ({@code [N]}): the token that follows it, and for the policy
   * loss its behaviour log-prob, its sequence's advantage and completion length, and a mask of ones. The behaviour
   * log-probs and the policy version that sampled each token are also kept on the host, for the log-prob gap.
   */
  record MicroBatch(NDArray tokens, NDArray positions, SharedPromptRows shared, NDArray targets, NDArray mask,
      NDArray behaviour, NDArray advantages, NDArray lengths, NDArray proximal, float[] behaviourValues,
      int[] tokenVersions, java.util.Map<Integer, int[]> routes, int[] rowLengths) {

    /** The next-token distributions {@code [N, V]} that score the completion tokens, in order. */
    NDArray logSoftmax(LlamaModel model, float temperature, dev.nucleon.model.Routing routing) {
      return shared != null ? model.logSoftmaxAt(shared, temperature, routing)
          : model.logSoftmaxAt(tokens, positions, temperature, routing);
    }

    /**
     * Whether each token the model reads is real (prompt or completion), not padding: the rows' {@code [B, width]}
     * tokens, or the shared rows' packed ones.
     */
    boolean[] realTokens() {
      if (shared != null) {
        return shared.realTokens();
      }
      long b = tokens.getShape().get(0);
      long width = tokens.getShape().get(1);
      boolean[] real = new boolean[(int) (b * width)];
      for (int i = 0; i < b; i++) {
        java.util.Arrays.fill(real, (int) (i * width), (int) (i * width + rowLengths[i]), true);
      }
      return real;
    }

    /** Real (unpadded) tokens the model reads: {@link #inputTokens} of this micro-batch's samples. */
    long realTokenCount() {
      return count(realTokens());
    }

    static long count(boolean[] real) {
      long n = 0;
      for (boolean r : real) {
        n += r ? 1 : 0;
      }
      return n;
    }

    /**
     * The real tokens a micro-batch of these samples has the model read: every sample's prompt and completion as
     * its own row, or with prompts shared each distinct prompt once and each completion but its last token.
     */
    static long inputTokens(List<TrainingSample> samples, boolean share) {
      long n = 0;
      java.util.Set<java.nio.IntBuffer> prompts = new java.util.HashSet<>(); // equal when their ints are
      for (TrainingSample s : samples) {
        Trajectory t = s.trajectory();
        if (!share) {
          n += t.totalTokens();
        } else {
          if (prompts.add(java.nio.IntBuffer.wrap(t.promptTokens()))) {
            n += t.promptTokens().length;
          }
          n += Math.max(0, t.completionTokens().length - 1);
        }
      }
      return n;
    }

    /**
     * A routing for one forward pass over these rows: the rollout's recorded experts replayed, or compared with the
     * router's own choice; null when no row has recorded experts.
     */
    dev.nucleon.model.Routing routing(boolean replay) {
      if (routes == null) {
        return null;
      }
      return replay ? dev.nucleon.model.Routing.replay(routes) : dev.nucleon.model.Routing.compare(routes);
    }

    /** Whether any token of this micro-batch was sampled by the weights of {@code version}. */
    boolean sampledBy(int version) {
      if (tokenVersions == null) {
        return false;
      }
      for (int v : tokenVersions) {
        if (v == version) {
          return true;
        }
      }
      return false;
    }

    /**
     * Log-probs {@code [N]} of the targets under {@code model} at a temperature. The full-vocabulary distribution's
     * handle is closed at once: backward, where there is one, keeps what it needs of it.
     */
    NDArray logProbs(LlamaModel model, float temperature) {
      return logProbs(model, temperature, true);
    }

    /** {@link #logProbs(LlamaModel, float)} with the rollout's experts replayed or the router's own. */
    NDArray logProbs(LlamaModel model, float temperature, boolean replay) {
      NDArray all = logSoftmax(model, temperature, routing(replay));
      NDArray picked = LlamaModel.pick(all, targets);
      all.close();
      return picked;
    }

    static MicroBatch of(NDManager m, List<TrainingSample> samples) {
      return of(m, samples, null, List.of(), false);
    }

    /**
     * @param proximal each sample's log-probs under the policy at the start of the step (TIS), or null to take the
     *     current forward's (detached) as the proximal ones
     * @param sparseLayers the policy's mixture-of-experts layers, whose recorded experts the rows may carry
     * @param share whether samples with equal prompts share the prompt's forward pass
     */
    static MicroBatch of(NDManager m, List<TrainingSample> samples, java.util.Map<TrainingSample, float[]> proximal,
        List<Integer> sparseLayers, boolean share) {
      int b = samples.size();
      List<int[]> prompts = new java.util.ArrayList<>(b);
      List<int[]> completions = new java.util.ArrayList<>(b);
      int n = 0;
      for (TrainingSample s : samples) {
        prompts.add(s.trajectory().promptTokens());
        completions.add(s.trajectory().completionTokens());
        n += s.trajectory().completionTokens().length;
      }
      float[] behaviour = new float[n];
      int[] versions = new int[n];
      float[] adv = new float[n];
      float[] len = new float[n];
      float[] mask = new float[n];
      float[] prox = proximal == null ? null : new float[n];
      int k = 0;
      for (TrainingSample s : samples) {
        Trajectory t = s.trajectory();
        if (prox != null) {
          System.arraycopy(proximal.get(s), 0, prox, k, t.completionTokens().length);
        }
        int version = soleVersion(t);
        int trained = Math.max(1, t.trainedTokens());
        for (int j = 0; j < t.completionTokens().length; j++, k++) {
          // an environment's token: mask 0 (no loss, no gradient), no version (left out of the log-prob gap)
          boolean policy = t.trained(j);
          mask[k] = policy ? 1f : 0f;
          behaviour[k] = policy ? t.behaviourLogProbs()[j] : 0f;
          versions[k] = policy ? version : -1;
          adv[k] = s.advantage();
          len[k] = trained;
        }
      }
      int[] rowLengths = samples.stream().mapToInt(s -> s.trajectory().totalTokens()).toArray();
      if (share) {
        SharedPromptRows rows = SharedPromptRows.of(m, prompts, completions);
        return new MicroBatch(null, null, rows, rows.targets(), m.create(mask), m.create(behaviour), m.create(adv),
            m.create(len), prox == null ? null : m.create(prox), behaviour, versions,
            routes(samples, sparseLayers, rows.packedTokens(), rows::packedIndex), rowLengths);
      }
      Layout l = Layout.of(m, prompts, completions);
      int width = (int) l.tokens.getShape().get(1);
      return new MicroBatch(l.tokens, l.positions, null, l.targets, m.create(mask), m.create(behaviour), m.create(adv),
          m.create(len), prox == null ? null : m.create(prox), behaviour, versions,
          routes(samples, sparseLayers, b * width, (row, p) -> row * width + p), rowLengths);
    }

    /**
     * The rows' recorded experts per sparse layer, {@code [tokens * k]} ids in the order the model reads the tokens
     * ({@code at(b, p)}: where sample b's position p sits, -1 where it is not read), -1 where nothing was recorded
     * (padding, each row's last token, rows of a dense rollout); null when no row has any. A prompt that samples
     * share takes the choices the last of them recorded for it (the rollout records the same for each).
     */
    static java.util.Map<Integer, int[]> routes(List<TrainingSample> samples, List<Integer> sparseLayers, int tokens,
        java.util.function.IntBinaryOperator at) {
      int k = 0;
      for (TrainingSample s : samples) {
        dev.nucleon.core.rollout.RoutedExperts r = s.trajectory().routedExperts();
        if (r == null) {
          continue;
        }
        if (r.layers() != sparseLayers.size() || (k != 0 && r.topK() != k)) {
          throw new IllegalArgumentException("prompt " + s.trajectory().promptId() + " sample "
              + s.trajectory().sampleIndex() + " carries experts of " + r.layers() + " sparse layers, top-"
              + r.topK() + ", but the policy has " + sparseLayers.size() + " sparse layers"
              + (k != 0 ? ", top-" + k : "") + ": its rollout ran another model");
        }
        k = r.topK();
      }
      if (k == 0) {
        return null;
      }
      java.util.Map<Integer, int[]> out = new java.util.TreeMap<>();
      for (int l = 0; l < sparseLayers.size(); l++) {
        int[] ids = new int[tokens * k];
        java.util.Arrays.fill(ids, -1);
        for (int b = 0; b < samples.size(); b++) {
          dev.nucleon.core.rollout.RoutedExperts r = samples.get(b).trajectory().routedExperts();
          for (int p = 0; r != null && p < r.positions(); p++) {
            int token = at.applyAsInt(b, p);
            for (int j = 0; token >= 0 && j < k; j++) {
              ids[token * k + j] = r.expert(p, l, j);
            }
          }
        }
        out.put(sparseLayers.get(l), ids);
      }
      return out;
    }

    /**
     * The one policy version whose weights read every token of a trajectory (an environment's tokens too: they
     * were prefilled under some version), or -1 where a weight update landed while it was decoded: its later
     * tokens then attend over keys the older weights computed, so even tokens tagged with the learner's version
     * would differ from the learner's log-probs by more than numerics.
     */
    static int soleVersion(Trajectory t) {
      int[] v = t.tokenVersions();
      for (int x : v) {
        if (x != v[0]) {
          return -1;
        }
      }
      return v.length == 0 ? -1 : v[0];
    }

    static MicroBatch supervised(NDManager m, List<int[]> prompts, List<int[]> targets) {
      Layout l = Layout.of(m, prompts, targets);
      int[] lengths = new int[prompts.size()];
      for (int i = 0; i < lengths.length; i++) {
        lengths[i] = prompts.get(i).length + targets.get(i).length;
      }
      return new MicroBatch(l.tokens, l.positions, null, l.targets, null, null, null, null, null, null, null, null,
          lengths);
    }
  }

  /** Right-padded rows and, for every completion token, the flat position that predicts it and its id. */
  private record Layout(NDArray tokens, NDArray positions, NDArray targets) {

    static Layout of(NDManager m, List<int[]> prompts, List<int[]> completions) {
      int b = prompts.size();
      int[][] seqs = new int[b][];
      int width = 0;
      int n = 0;
      for (int i = 0; i < b; i++) {
        if (prompts.get(i).length == 0) {
          throw new IllegalArgumentException("row " + i + " has an empty prompt: the first token has no context "
              + "to be scored from");
        }
        seqs[i] = concat(prompts.get(i), completions.get(i));
        width = Math.max(width, seqs[i].length);
        n += completions.get(i).length;
      }
      long[] positions = new long[n];
      long[] targets = new long[n];
      int k = 0;
      for (int i = 0; i < b; i++) {
        int p = prompts.get(i).length;
        for (int j = 0; j < completions.get(i).length; j++, k++) {
          positions[k] = (long) i * width + p - 1 + j;
          targets[k] = completions.get(i)[j];
        }
      }
      return new Layout(LlamaModel.paddedTokens(m, seqs), m.create(positions), m.create(targets));
    }

    private static int[] concat(int[] a, int[] b) {
      int[] out = java.util.Arrays.copyOf(a, a.length + b.length);
      System.arraycopy(b, 0, out, a.length, b.length);
      return out;
    }
  }
}
