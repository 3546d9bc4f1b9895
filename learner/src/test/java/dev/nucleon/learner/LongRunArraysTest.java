package dev.nucleon.learner;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import ai.djl.ndarray.NDManager;
import dev.nucleon.model.Engines;
import dev.nucleon.model.LiveArrays;
import dev.nucleon.model.LlamaConfig;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.TinyModels;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A learner takes steps for as long as a run lasts, so a step must leave behind exactly the arrays it found: one it
 * forgets to close is libtorch memory that grows with every step. Each case trains a few steps (so the optimizer's
 * moments and anything made on first use exist), counts the live arrays of every manager, trains more and counts
 * again.
 */
class LongRunArraysTest {

  private static final LossSettings.KlEstimator K3 = LossSettings.KlEstimator.K3;

  @BeforeAll
  static void engine() {
    Engines.start();
  }

  static Stream<Arguments> cases() {
    LossSettings.Aggregation token = LossSettings.Aggregation.TOKEN_MEAN;
    LossSettings tisAndKl = new LossSettings(0.2, 0.28, 2.0, token, 1, 0.05, K3);
    return Stream.of(
        Arguments.of("shared prompts", ExactResumeTest.SHAPE, ExactResumeTest.LOSS, Updates.ONE, true, 0.0),
        Arguments.of("unshared", ExactResumeTest.SHAPE, ExactResumeTest.LOSS, Updates.ONE, false, 0.0),
        Arguments.of("tis, kl reference, 2 epochs x 2 minibatches", ExactResumeTest.SHAPE, tisAndKl,
            new Updates(2, 2), true, 0.0),
        Arguments.of("mixture of experts, load-balancing loss", TinyModels.qwen3MoeLike(), ExactResumeTest.LOSS,
            Updates.ONE, true, 0.5),
        Arguments.of("latent attention, mixture of experts", TinyModels.deepseekLike(), ExactResumeTest.LOSS,
            Updates.ONE, true, 0.0));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("cases")
  void policyStepsLeaveNoArraysBehind(String name, LlamaConfig shape, LossSettings loss, Updates updates,
      boolean sharePrompts, double routerAuxLoss) {
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel model = LlamaModel.random(shape, m, 3);
        LlamaModel reference = loss.klCoef() > 0 ? LlamaModel.random(shape, m, 4) : null;
        Learner learner = new Learner(model, reference, loss, ExactResumeTest.OPTIMIZER,
            GradSpikeGuard.Settings.DEFAULT, updates, 0.7f, 0)) {
      learner.setSharedPrompts(sharePrompts);
      learner.setRouterAuxLoss(routerAuxLoss);
      ExactResumeTest.train(learner, 0, 3);
      Map<String, Integer> before = LiveArrays.byShape();
      assertFalse(before.isEmpty(), "the model's own arrays are live");
      ExactResumeTest.train(learner, 3, 9);
      assertEquals(before, LiveArrays.byShape(), name + ": live arrays (shape type = count) before and after six "
          + "more steps");
    }
  }

  @Test
  void supervisedStepsLeaveNoArraysBehind() {
    SplittableRandom rng = new SplittableRandom(7);
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel model = LlamaModel.random(ExactResumeTest.SHAPE, m, 3);
        Learner learner = new Learner(model, null, LossSettings.defaults(), ExactResumeTest.OPTIMIZER, 1f, 0)) {
      for (int s = 0; s < 3; s++) {
        GcPressureGradientTest.supervisedStep(learner, rng);
      }
      Map<String, Integer> before = LiveArrays.byShape();
      assertFalse(before.isEmpty(), "the model's own arrays are live");
      for (int s = 3; s < 8; s++) {
        GcPressureGradientTest.supervisedStep(learner, rng);
      }
      assertEquals(before, LiveArrays.byShape(), "live arrays before and after five more supervised steps");
    }
  }
}
