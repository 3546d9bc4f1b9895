package dev.nucleon.model;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/**
 * YaRN's frequencies against the values an independent re-implementation of transformers' rope code derived for
 * the olmo3-tiny-yarn-bf16 case of shared/models/golden (its README, "Derived values"): head_dim 16, theta 5e5,
 * factor 8 over an original 8192 positions, beta_fast 32, beta_slow 1. That case's logits are not used: its
 * reference scales the sliding-window layers' rotary tables too, where OLMo 3 scales only its full-attention layers.
 */
class RopeTest {

  @Test
  void yarnFrequenciesMatchTheReference() {
    LlamaConfig.RopeScaling yarn = new LlamaConfig.RopeScaling("yarn", 8.0, 0, 0, 8192, 32, 1, 1.2079441541679836,
        true);
    LlamaConfig c = new LlamaConfig("Olmo3ForCausalLM", 320, 64, 128, 4, 4, 2, 16, 500000, yarn, 1e-6, 65536, false,
        false, -1, new int[] {2}, false, new int[] {5, 0, 5, 0});
    double[] want = {1, 0.193922758, 0.0376060307, 0.00516563747, 0.000589255593, 3.42810235e-05, 6.64786967e-06,
        1.28917316e-06};
    double[] got = Rope.inverseFrequencies(c, true);
    for (int j = 0; j < want.length; j++) {
      assertEquals(want[j], got[j], want[j] * 1e-6, "inv_freq[" + j + "]");
    }
    double[] plain = Rope.inverseFrequencies(c, false);
    assertEquals(Math.pow(500000, -6.0 / 16), plain[3], 1e-12, "the unscaled table of sliding-window layers");
  }
}
