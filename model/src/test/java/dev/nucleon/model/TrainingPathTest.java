package dev.nucleon.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.jni.JniUtils;
import ai.djl.training.GradientCollector;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * With autograd on, the decoder takes its training path (one product per q/k/v and gate/up part, each layer's
 * temporaries freed when the layer ends, the output head only at the scored positions); without, the decoding path
 * (fused products). Both compute the same distributions, and the training path's handles can all be closed early
 * without breaking backward.
 */
class TrainingPathTest {

  @ParameterizedTest
  @ValueSource(strings = {"qwenLike", "llamaTied"})
  void trainingAndDecodingPathsGiveTheSameLogProbs(String shape) {
    Engines.start();
    LlamaConfig c = shape.equals("qwenLike") ? TinyModels.qwenLike() : TinyModels.llamaTied();
    int b = 3;
    int t = 9;
    float temperature = 0.7f;
    SplittableRandom rng = new SplittableRandom(5);
    long[] seq = new long[b * t];
    for (int i = 0; i < seq.length; i++) {
      seq[i] = rng.nextInt(c.vocabSize());
    }
    // positions b * T + t with t < T - 1 (each predicts a next token), in a scrambled order
    long[] positions = {0, 5, 9, 16, 3, 12, 25, 20, 1};
    boolean mode = JniUtils.isGradMode();
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = LlamaModel.random(c, m, 11)) {
      NDArray tokens = m.create(seq, new Shape(b, t));
      JniUtils.setGradMode(false);
      float[] decoding = LlamaModel.shiftedLogSoftmax(model.logits(tokens), m, temperature).toFloatArray();

      model.setTrainable(true);
      JniUtils.setGradMode(true);
      float[] training;
      try (NDManager step = m.newSubManager();
          GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
        NDArray tok = step.create(seq, new Shape(b, t));
        NDArray ls = model.logSoftmaxAt(tok, step.create(positions), temperature);
        training = ls.toFloatArray();
        gc.backward(ls.max(new int[] {1}).sum());
      }
      float[] grad = model.namedParameters().get("model.layers.0.self_attn.qkv_proj.weight").getArray()
          .getGradient().toFloatArray();
      int v = c.vocabSize();
      assertEquals(positions.length * v, training.length);
      double maxErr = 0;
      for (int i = 0; i < positions.length; i++) {
        int row = (int) (positions[i] / t);
        int col = (int) (positions[i] % t);
        for (int k = 0; k < v; k++) {
          maxErr = Math.max(maxErr, Math.abs(training[i * v + k] - decoding[(row * (t - 1) + col) * v + k]));
        }
      }
      assertTrue(maxErr < 1e-5, "training path differs from decoding path by " + maxErr);
      double g = 0;
      for (float x : grad) {
        g = Math.max(g, Math.abs(x));
      }
      assertTrue(g > 0, "backward reaches layer 0's q/k/v projection");
    } finally {
      JniUtils.setGradMode(mode);
    }
  }
}
