package dev.nucleon.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.training.GradientCollector;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@link Ops#softmax} pads rows shorter than 16 columns with {@code -inf} before libtorch's softmax and drops the
 * padding after: values and gradients are the plain softmax's up to rounding, the result has the input's shape, and
 * a row masked everywhere (finite {@link LlamaModel#MASKED}, as padded prompts' rows are) is spread over its own
 * columns only, never over the padding.
 */
class ShortSoftmaxTest {

  @ParameterizedTest
  @ValueSource(ints = {1, 5, 12, 15, 16, 23})
  void equalsThePlainSoftmaxInValuesAndGradients(int columns) {
    Engines.start();
    SplittableRandom rng = new SplittableRandom(columns);
    float[] scores = new float[3 * 4 * columns];
    float[] upstream = new float[scores.length];
    for (int i = 0; i < scores.length; i++) {
      scores[i] = (float) (rng.nextGaussian() * 3);
      upstream[i] = (float) rng.nextGaussian();
    }
    // the last row masked everywhere but its first column, as a causal mask's first position is
    for (int j = 1; j < columns; j++) {
      scores[scores.length - columns + j] += LlamaModel.MASKED;
    }
    Shape shape = new Shape(3, 4, columns);
    try (NDManager m = NDManager.newBaseManager()) {
      float[][] plain = softmaxAndGradient(m, scores, upstream, shape, false);
      float[][] padded = softmaxAndGradient(m, scores, upstream, shape, true);
      assertArrayEquals(plain[0], padded[0], 1e-6f, "probabilities");
      assertArrayEquals(plain[1], padded[1], 1e-6f, "gradient of the scores");
      assertEquals(1f, padded[0][scores.length - columns], 0f, "a row with one unmasked column puts all on it");
    }
  }

  @ParameterizedTest
  @ValueSource(ints = {3, 12})
  void aFullyMaskedRowIsSpreadOverItsOwnColumns(int columns) {
    Engines.start();
    float[] scores = new float[columns];
    java.util.Arrays.fill(scores, LlamaModel.MASKED);
    try (NDManager m = NDManager.newBaseManager()) {
      NDArray probs = Ops.softmax(m.create(scores, new Shape(1, columns)), m);
      assertEquals(new Shape(1, columns), probs.getShape());
      for (float p : probs.toFloatArray()) {
        assertEquals(1f / columns, p, 1e-6f);
      }
    }
  }

  /** The softmax of {@code scores} (padded or plain) and the gradient of {@code sum(upstream * softmax)}. */
  private static float[][] softmaxAndGradient(NDManager m, float[] scores, float[] upstream, Shape shape,
      boolean padded) {
    try (NDManager step = m.newSubManager();
        GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
      NDArray x = step.create(scores, shape);
      x.setRequiresGradient(true);
      NDArray probs = padded ? Ops.softmax(x, step) : x.softmax(-1);
      assertEquals(shape, probs.getShape());
      float[] values = probs.toFloatArray();
      gc.backward(probs.mul(step.create(upstream, shape)).sum());
      return new float[][] {values, x.getGradient().toFloatArray()};
    }
  }
}
