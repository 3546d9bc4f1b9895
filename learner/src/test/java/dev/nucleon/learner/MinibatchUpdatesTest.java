package dev.nucleon.learner;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import dev.nucleon.core.rollout.Trajectory;
import dev.nucleon.model.Engines;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.io.HostTensor;
import dev.nucleon.replay.MicroBatchCost;
import dev.nucleon.replay.TrainingBatch;
import dev.nucleon.replay.TrainingSample;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Several optimizer steps per training batch ({@link Updates}): how the batch is cut, and what the steps do. */
class MinibatchUpdatesTest {

  private static final OptimizerSettings CONSTANT = OptimizerSettings.adamw(2e-3);

  @Test
  void minibatchesHoldEverySampleOnceInsideTheBatchesMicroBatches() {
    TrainingBatch batch = ExactResumeTest.batch(0, 0);
    int n = batch.samples().size();
    for (int parts : new int[] {1, 3, n, n + 5}) {
      List<List<List<TrainingSample>>> minibatches = new Updates(1, parts).cut(batch);
      assertEquals(Math.min(parts, n), minibatches.size(), parts + " parts");
      List<TrainingSample> seen = everySample(minibatches, n);
      for (List<List<TrainingSample>> minibatch : minibatches) {
        for (List<TrainingSample> micro : minibatch) {
          assertTrue(batch.microBatches().stream().anyMatch(m -> containsAll(m, micro)),
              "a minibatch's micro-batch must be part of one of the batch's micro-batches");
        }
      }
      assertEquals(batch.samples(), seen.stream().sorted(java.util.Comparator.comparingInt(
          s -> indexOf(batch.samples(), s))).toList(), "every sample once");
    }
  }

  /** With the replay buffer's budget, each minibatch is packed anew: full micro-batches, none over the budget. */
  @Test
  void packedMinibatchesFitTheBudgetWithoutNearEmptyMicroBatches() {
    TrainingBatch batch = ExactResumeTest.batch(0, 0);
    int budget = 40;
    List<List<List<TrainingSample>>> restricted = new Updates(1, 4).cut(batch);
    List<List<List<TrainingSample>>> packed = new Updates(1, 4).packedTo(budget, MicroBatchCost.PADDED).cut(batch);
    everySample(packed, batch.samples().size());
    int restrictedPasses = restricted.stream().mapToInt(List::size).sum();
    int packedPasses = packed.stream().mapToInt(List::size).sum();
    for (List<List<TrainingSample>> minibatch : packed) {
      for (List<TrainingSample> micro : minibatch) {
        int longest = micro.stream().mapToInt(TrainingSample::tokens).max().orElseThrow();
        assertTrue(micro.size() == 1 || micro.size() * longest <= budget, "over the budget: " + micro.size()
            + " rows of " + longest);
      }
    }
    assertTrue(packedPasses <= restrictedPasses, packedPasses + " packed vs " + restrictedPasses + " restricted");
  }

  /** Every sample of the minibatches, checking each appears once and the parts are as even as whole samples allow. */
  private static List<TrainingSample> everySample(List<List<List<TrainingSample>>> minibatches, int n) {
    List<TrainingSample> seen = new ArrayList<>();
    for (List<List<TrainingSample>> minibatch : minibatches) {
      int size = minibatch.stream().mapToInt(List::size).sum();
      int expected = n / minibatches.size();
      assertTrue(size == expected || size == expected + 1, "even parts: " + size);
      minibatch.forEach(seen::addAll);
    }
    Map<TrainingSample, Boolean> once = new IdentityHashMap<>();
    seen.forEach(s -> assertTrue(once.put(s, true) == null, "a sample is in two minibatches"));
    assertEquals(n, seen.size(), "every sample is in a minibatch");
    return seen;
  }

  private static int indexOf(List<TrainingSample> samples, TrainingSample s) {
    for (int i = 0; i < samples.size(); i++) {
      if (samples.get(i) == s) {
        return i;
      }
    }
    return -1;
  }

  private static boolean containsAll(List<TrainingSample> outer, List<TrainingSample> inner) {
    return inner.stream().allMatch(s -> outer.stream().anyMatch(o -> o == s));
  }

  /** Two minibatches of one batch are the same two optimizer steps as two batches of its halves. */
  @Test
  void twoMinibatchesEqualTwoBatchesOfTheHalves() {
    Engines.start();
    TrainingBatch batch = ExactResumeTest.batch(0, 0);
    List<List<List<TrainingSample>>> halves = new Updates(1, 2).cut(batch);
    Map<String, HostTensor> split;
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel model = LlamaModel.random(ExactResumeTest.SHAPE, m, 3);
        Learner learner = learner(model, new Updates(1, 2), ExactResumeTest.LOSS, CONSTANT)) {
      StepStats st = learner.train(batch);
      assertEquals(1, learner.version(), "one version per batch");
      assertEquals(2, st.step(), "two optimizer steps");
      split = model.toHostTensors();
    }
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel model = LlamaModel.random(ExactResumeTest.SHAPE, m, 3);
        Learner learner = learner(model, Updates.ONE, ExactResumeTest.LOSS, CONSTANT)) {
      for (List<List<TrainingSample>> half : halves) {
        List<TrainingSample> samples = half.stream().flatMap(List::stream).toList();
        learner.train(new TrainingBatch(samples, half, batch.policyVersion(), batch.stats()));
      }
      Map<String, HostTensor> two = model.toHostTensors();
      for (var e : split.entrySet()) {
        assertTrue(java.util.Arrays.equals(e.getValue().data(), two.get(e.getKey()).data()), e.getKey());
      }
    }
  }

  /**
   * On-policy data (a synchronous run): with one update per batch the ratio is 1 and nothing is clipped; from the
   * second epoch on, the ratio shows how far the first moved the policy and the clip acts.
   */
  @Test
  void laterUpdatesOfAnOnPolicyBatchAreClipped() {
    Engines.start();
    OptimizerSettings fast = OptimizerSettings.adamw(5e-2);
    for (Updates updates : List.of(Updates.ONE, new Updates(3, 1), new Updates(1, 3))) {
      try (NDManager m = NDManager.newBaseManager();
          LlamaModel model = LlamaModel.random(ExactResumeTest.SHAPE, m, 3);
          Learner learner = learner(model, updates, ExactResumeTest.LOSS, fast)) {
        StepStats st = learner.train(onPolicy(model, ExactResumeTest.batch(0, 0)));
        if (updates.epochs() * updates.minibatches() == 1) {
          assertEquals(0, st.clipFraction(), "on-policy ratio is 1");
          assertEquals(1, st.ratioMean(), 1e-5);
        } else {
          assertTrue(st.clipFraction() > 0, updates + ": later updates must be clipped, got " + st.clipFraction());
        }
      }
    }
  }

  /**
   * TIS takes its ratio against the policy at the start of the step: in a second epoch that policy is the
   * recorded one, not the weights being trained (whose ratio would be 1 and never clip).
   */
  @Test
  void truncatedImportanceSamplingKeepsTheStartOfTheStepAsItsProximalPolicy() {
    Engines.start();
    LossSettings tis = new LossSettings(0.2, 0.2, 2, LossSettings.Aggregation.TOKEN_MEAN, 1, 0,
        LossSettings.KlEstimator.K3);
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel model = LlamaModel.random(ExactResumeTest.SHAPE, m, 3);
        Learner learner = learner(model, new Updates(3, 1), tis, OptimizerSettings.adamw(5e-2))) {
      StepStats st = learner.train(onPolicy(model, ExactResumeTest.batch(0, 0)));
      assertTrue(st.clipFraction() > 0, "later epochs must be clipped against the recorded proximal policy");
      assertEquals(0, st.tisCappedFraction(), "on-policy data: every TIS weight is 1");
    }
  }

  /** The schedule advances once per batch, so a run's schedule means the same with any number of updates. */
  @Test
  void theScheduleCountsBatchesNotUpdates() {
    Engines.start();
    LrSchedule schedule = new LrSchedule(LrSchedule.Type.LINEAR, 0, 4, 0.0);
    OptimizerSettings linear = new OptimizerSettings(1e-3, 0.9, 0.99, 1e-8, 0, 1, schedule);
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel model = LlamaModel.random(ExactResumeTest.SHAPE, m, 3);
        Learner learner = learner(model, new Updates(2, 2), ExactResumeTest.LOSS, linear)) {
      for (int k = 0; k < 3; k++) {
        StepStats st = learner.train(ExactResumeTest.batch(k, learner.version()));
        assertEquals(1e-3 * schedule.multiplier(k), st.lr(), 1e-12, "batch " + k);
        assertEquals(4L * (k + 1), st.step());
      }
    }
  }

  private static Learner learner(LlamaModel model, Updates updates, LossSettings loss, OptimizerSettings opt) {
    return new Learner(model, null, loss, opt, GradSpikeGuard.Settings.DEFAULT, updates, 1f, 0);
  }

  /** The batch with every behaviour log-prob replaced by the model's own: what a synchronous run trains on. */
  private static TrainingBatch onPolicy(LlamaModel model, TrainingBatch batch) {
    Map<TrainingSample, TrainingSample> renewed = new IdentityHashMap<>();
    for (List<TrainingSample> micro : batch.microBatches()) {
      try (NDManager m = model.manager().newSubManager()) {
        float[] lp = Learner.MicroBatch.of(m, micro).logProbs(model, 1f).toFloatArray();
        int k = 0;
        for (TrainingSample s : micro) {
          Trajectory t = s.trajectory();
          int n = t.completionTokens().length;
          Trajectory on = new Trajectory(t.promptId(), t.sampleIndex(), t.promptTokens(), t.completionTokens(),
              java.util.Arrays.copyOfRange(lp, k, k + n), t.tokenVersions(), t.finishReason(), t.completionText());
          renewed.put(s, new TrainingSample(on, s.reward(), s.advantage()));
          k += n;
        }
      }
    }
    List<List<TrainingSample>> micros = batch.microBatches().stream()
        .map(micro -> micro.stream().map(renewed::get).toList()).toList();
    return new TrainingBatch(batch.samples().stream().map(renewed::get).toList(), micros, batch.policyVersion(),
        batch.stats());
  }
}
