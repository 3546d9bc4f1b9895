package dev.nucleon.model.generate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import dev.nucleon.model.Engines;
import dev.nucleon.model.LiveArrays;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.TinyModels;
import dev.nucleon.model.io.HostTensor;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A rollout worker's generator serves a whole training run, so every kind of call must leave behind exactly the
 * arrays it found: a static batch, a continuous one of more requests than rows, the open batch submissions join,
 * scoring, and new weights applied between calls.
 */
class GeneratorArraysTest {

  @BeforeAll
  static void engine() {
    Engines.start();
  }

  @Test
  void callsLeaveNoArraysBehind() throws Exception {
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel model = LlamaModel.random(TinyModels.qwenLike(), m, 11);
        Generator generator = new Generator(model, 0)) {
      assertTrue(model.decodesScripted());
      Map<String, HostTensor> weights = model.toHostTensors();
      round(generator, weights, 0); // first calls compile the decode script and make what is made once
      Map<String, Integer> before = LiveArrays.byShape();
      for (int r = 1; r <= 2; r++) {
        round(generator, weights, r);
      }
      assertEquals(3, generator.version(), "every round's weights were applied");
      assertEquals(before, LiveArrays.byShape(), "live arrays (shape type = count) before and after two more rounds");
    }
  }

  /** One call of each kind, then new weights, waited for until applied (the generator's thread is idle). */
  private static void round(Generator generator, Map<String, HostTensor> weights, int r) throws Exception {
    // groups of four samples of one prompt (1-5 tokens), 1-30 new tokens each
    List<GenerationRequest> requests = new ArrayList<>();
    for (int i = 0; i < 80; i++) {
      int group = i / 4;
      int[] prompt = new int[1 + (3 * group) % 5];
      for (int c = 0; c < prompt.length; c++) {
        prompt[c] = 1 + (13 * group + 7 * c) % 50;
      }
      requests.add(new GenerationRequest(prompt, SamplingParams.sample(1f, 1 + (11 * i) % 30), 1000L * r + i));
    }
    generator.generate(requests);
    generator.generate(requests, 16);
    generator.submit(requests.subList(0, 24), 8).results().get(60, TimeUnit.SECONDS);
    generator.score(new int[] {1, 5, 9, 12, 3, 7}, 3);
    CountDownLatch applied = new CountDownLatch(1);
    generator.updateWeights(r + 1, weights, applied::countDown);
    assertTrue(applied.await(60, TimeUnit.SECONDS), "version " + (r + 1) + " applied");
  }
}
