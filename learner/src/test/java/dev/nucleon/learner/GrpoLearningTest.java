package dev.nucleon.learner;

import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.core.rollout.ScoredTrajectory;
import dev.nucleon.core.rollout.Trajectory;
import dev.nucleon.model.Engines;
import dev.nucleon.model.LlamaConfig;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.generate.GenerationRequest;
import dev.nucleon.model.generate.GenerationResult;
import dev.nucleon.model.generate.Generator;
import dev.nucleon.model.generate.SamplingParams;
import dev.nucleon.replay.FailedRewardPolicy;
import dev.nucleon.replay.MicroBatchCost;
import dev.nucleon.replay.ReplayBuffer;
import dev.nucleon.replay.ReplaySettings;
import dev.nucleon.replay.TrainingBatch;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * RL without actors: a tiny model learns the format of single-digit addition from a few supervised steps, then
 * GRPO in a plain loop (generate -> reward -> advantages -> loss -> step -> publish weights) raises its reward.
 */
class GrpoLearningTest {

  /** Tokens: 0 unused, 1 BOS, 2 '$' (stop), 3..12 digits, 13 '+', 14 '='. */
  static final int BOS = 1;
  static final int STOP = 2;
  static final LlamaConfig SHAPE = LlamaConfig.llama(15, 64, 128, 2, 4, 2, 16, true);

  static int[] prompt(int a, int b) {
    return new int[] {BOS, 3 + a, 13, 3 + b, 14};
  }

  static int[] answer(int a, int b) {
    String s = Integer.toString(a + b);
    int[] out = new int[s.length() + 1];
    for (int i = 0; i < s.length(); i++) {
      out[i] = 3 + (s.charAt(i) - '0');
    }
    out[s.length()] = STOP;
    return out;
  }

  static double reward(int a, int b, int[] completion) {
    return Arrays.equals(answer(a, b), completion) ? 1.0 : 0.0;
  }

  /** Mean sampled reward (T = 1) over all 100 pairs, 4 samples each. */
  static double evaluate(Generator generator, long seed) {
    List<GenerationRequest> requests = new ArrayList<>();
    for (int a = 0; a < 10; a++) {
      for (int b = 0; b < 10; b++) {
        for (int k = 0; k < 4; k++) {
          requests.add(new GenerationRequest(prompt(a, b), SamplingParams.sample(1f, 3, STOP), seed + requests.size()));
        }
      }
    }
    List<GenerationResult> results = generator.generate(requests);
    double sum = 0;
    for (int i = 0; i < results.size(); i++) {
      int pair = i / 4;
      sum += reward(pair / 10, pair % 10, results.get(i).tokens());
    }
    return sum / results.size();
  }

  @Test
  void grpoRaisesTheRewardOfABrieflySupervisedModel() {
    Engines.start();
    long start = System.nanoTime();
    SplittableRandom rng = new SplittableRandom(2026);
    int groupSize = 8;
    int promptsPerStep = 16;
    ReplaySettings replaySettings = new ReplaySettings(groupSize, "grpo", 1e-4, promptsPerStep, 1, false, false, 0,
        4096, MicroBatchCost.PADDED, FailedRewardPolicy.DROP_SAMPLE);
    try (NDManager manager = NDManager.newBaseManager();
        LlamaModel policy = LlamaModel.random(SHAPE, manager, 7);
        LlamaModel rolloutCopy = LlamaModel.random(SHAPE, manager, 7);
        Generator generator = new Generator(rolloutCopy, 0);
        Learner sft = new Learner(policy, null, LossSettings.defaults(), OptimizerSettings.adamw(3e-3), 1f, 0)) {
      for (int step = 0; step < SFT_STEPS; step++) {
        List<int[]> prompts = new ArrayList<>();
        List<int[]> targets = new ArrayList<>();
        for (int i = 0; i < 64; i++) {
          int a = rng.nextInt(10);
          int b = rng.nextInt(10);
          prompts.add(prompt(a, b));
          targets.add(answer(a, b));
        }
        sft.supervised(prompts, targets, 64);
      }
      generator.updateWeights(0, policy.toHostTensors());
      double before = evaluate(generator, 1_000_000);

      ReplayBuffer replay = new ReplayBuffer(replaySettings);
      try (Learner learner = new Learner(policy, null, LossSettings.defaults(), OptimizerSettings.adamw(LR), 1f, 0)) {
        for (int step = 0; step < RL_STEPS; step++) {
          List<GenerationRequest> requests = new ArrayList<>();
          int[][] pairs = new int[promptsPerStep][];
          for (int p = 0; p < promptsPerStep; p++) {
            pairs[p] = new int[] {rng.nextInt(10), rng.nextInt(10)};
            for (int g = 0; g < groupSize; g++) {
              requests.add(new GenerationRequest(prompt(pairs[p][0], pairs[p][1]), SamplingParams.sample(1f, 3, STOP),
                  rng.nextLong()));
            }
          }
          List<GenerationResult> results = generator.generate(requests);
          for (int i = 0; i < results.size(); i++) {
            int p = i / groupSize;
            GenerationResult r = results.get(i);
            Trajectory t = new Trajectory((long) step * promptsPerStep + p, i % groupSize,
                prompt(pairs[p][0], pairs[p][1]), r.tokens(), r.samplingLogProbs(), r.versions(), r.finishReason(), "");
            replay.add(new ScoredTrajectory(t, RewardResult.ok(reward(pairs[p][0], pairs[p][1], r.tokens()))));
          }
          Optional<TrainingBatch> batch = replay.pollBatch();
          if (batch.isPresent()) {
            StepStats s = learner.train(batch.get());
            assertTrue(s.ratioMean() > 0.99 && s.ratioMean() < 1.01, "fresh data must have ratio ~1: " + s);
            generator.updateWeights(learner.version(), policy.toHostTensors());
            replay.setPolicyVersion(learner.version());
          }
        }
      }
      double after = evaluate(generator, 1_000_000);
      double seconds = (System.nanoTime() - start) / 1e9;
      System.out.printf("GRPO learning test: mean reward %.3f after %d SFT steps -> %.3f after %d GRPO steps (%.1f s)%n",
          before, SFT_STEPS, after, RL_STEPS, seconds);
      // the gain depends on the run's seed: +0.17, +0.35, +0.37 and +0.34 for data seeds 2026-2029 (400 samples
      // per evaluation, standard error about 0.025), so the bar is a clear gain, not a typical one
      assertTrue(after >= before + 0.12, "reward " + before + " -> " + after);
    }
  }

  /** Brief supervised warm-up: about 30% sampled reward. */
  static final int SFT_STEPS = 60;
  /** 16 prompts x 8 samples per step, AdamW 6e-4 constant, PPO clip 0.2, token mean (about 12 s on 2 cores). */
  static final int RL_STEPS = 300;
  static final double LR = 6e-4;
}
