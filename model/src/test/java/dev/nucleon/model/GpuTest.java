package dev.nucleon.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import ai.djl.Device;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import dev.nucleon.model.generate.GenerationRequest;
import dev.nucleon.model.generate.Generator;
import dev.nucleon.model.generate.SamplingParams;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The GPU path computes what the CPU path computes. Skipped on machines without a GPU (and without CUDA libtorch). */
class GpuTest {

  @Test
  void logitsAndGreedyTokensMatchTheCpu() {
    Engines.start();
    assumeTrue(Engines.gpuCount() > 0, "no GPU: skipped");
    ModelFiles.Checkpoint ckpt = ModelFiles.read(TestResources.storiesModel());
    long[] tokens = {1, 403, 407, 261, 378, 11, 300, 290};
    try (NDManager cpu = NDManager.newBaseManager(Device.cpu());
        NDManager gpu = NDManager.newBaseManager(Engines.device("gpu:0"));
        LlamaModel onCpu = ckpt.instantiate(cpu);
        LlamaModel onGpu = ckpt.instantiate(gpu)) {
      float[] a = onCpu.logits(cpu.create(tokens, new Shape(1, tokens.length))).toFloatArray();
      float[] b = onGpu.logits(gpu.create(tokens, new Shape(1, tokens.length))).toFloatArray();
      double max = 0;
      for (int i = 0; i < a.length; i++) {
        max = Math.max(max, Math.abs(a[i] - b[i]));
      }
      assertTrue(max < 1e-3, "GPU vs CPU logits differ by " + max);
      var request = List.of(new GenerationRequest(new int[] {1, 403, 407}, SamplingParams.greedy(20), 0));
      try (Generator g1 = new Generator(onCpu, 0); Generator g2 = new Generator(onGpu, 0)) {
        assertArrayEquals(g1.generate(request).get(0).tokens(), g2.generate(request).get(0).tokens());
      }
    }
  }
}
