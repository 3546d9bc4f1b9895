package dev.nucleon.learner;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.pytorch.jni.JniUtils;
import dev.nucleon.core.rollout.FinishReason;
import dev.nucleon.core.rollout.Trajectory;
import dev.nucleon.model.Engines;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.replay.TrainingSample;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The learner scores each completion token at its own position: the flat micro-batch (positions, targets and the
 * per-token behaviour log-prob, advantage and length) agrees with the model's full right-padded scoring
 * ({@link LlamaModel#tokenLogProbs}) read at {@code [row, prompt - 1 + j]}, for rows of different lengths.
 */
class MicroBatchTest {

  @Test
  void flatPositionsScoreEachCompletionTokenWhereTheFullPassDoes() {
    Engines.start();
    int[][] prompts = {{1, 4}, {1, 7, 9, 3, 5}, {1}};
    int[][] completions = {{6, 8, 2}, {11}, {3, 3, 12, 14, 2}};
    List<TrainingSample> samples = new ArrayList<>();
    int n = 0;
    for (int i = 0; i < prompts.length; i++) {
      float[] behaviour = new float[completions[i].length];
      for (int j = 0; j < behaviour.length; j++) {
        behaviour[j] = -1f - i - 0.1f * j;
      }
      samples.add(new TrainingSample(new Trajectory(i, 0, prompts[i], completions[i], behaviour,
          new int[completions[i].length], FinishReason.STOP, ""), 0, 0.5f * (i + 1)));
      n += completions[i].length;
    }
    boolean mode = JniUtils.isGradMode();
    JniUtils.setGradMode(false);
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel model = LlamaModel.random(ExactResumeTest.SHAPE, m, 9)) {
      Learner.MicroBatch mb = Learner.MicroBatch.of(m, samples);
      float[] flat = mb.logProbs(model, 0.8f).toFloatArray();
      int[][] seqs = new int[prompts.length][];
      for (int i = 0; i < prompts.length; i++) {
        seqs[i] = java.util.stream.IntStream.concat(java.util.Arrays.stream(prompts[i]),
            java.util.Arrays.stream(completions[i])).toArray();
      }
      NDArray full = model.tokenLogProbs(m, seqs, 0.8f);
      long width = full.getShape().get(1);
      float[] reference = full.toFloatArray();
      float[] behaviour = mb.behaviour().toFloatArray();
      float[] adv = mb.advantages().toFloatArray();
      float[] len = mb.lengths().toFloatArray();
      assertEquals(n, flat.length);
      int k = 0;
      for (int i = 0; i < prompts.length; i++) {
        for (int j = 0; j < completions[i].length; j++, k++) {
          float want = reference[(int) (i * width + prompts[i].length - 1 + j)];
          assertEquals(want, flat[k], 1e-5, "row " + i + " completion token " + j);
          assertEquals(-1f - i - 0.1f * j, behaviour[k], 1e-6);
          assertEquals(0.5f * (i + 1), adv[k]);
          assertEquals(completions[i].length, len[k]);
        }
      }
      assertArrayEquals(new float[n], mb.mask().sub(1f).toFloatArray(), "every entry is a scored token");
      var e = assertThrows(IllegalArgumentException.class, () -> Learner.MicroBatch.supervised(m,
          List.of(new int[] {1, 2}, new int[0]), List.of(new int[] {3}, new int[] {4})));
      assertTrue(e.getMessage().contains("row 1") && e.getMessage().contains("empty prompt"), e.getMessage());
    } finally {
      JniUtils.setGradMode(mode);
    }
  }
}
