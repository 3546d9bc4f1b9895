package dev.nucleon.learner;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDManager;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.core.rollout.FinishReason;
import dev.nucleon.core.rollout.ScoredTrajectory;
import dev.nucleon.core.rollout.Trajectory;
import dev.nucleon.learner.checkpoint.Checkpoint;
import dev.nucleon.learner.checkpoint.CheckpointStore;
import dev.nucleon.learner.checkpoint.TrainerState;
import dev.nucleon.model.Engines;
import dev.nucleon.model.LlamaConfig;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.io.HostTensor;
import dev.nucleon.replay.FailedRewardPolicy;
import dev.nucleon.replay.MicroBatchCost;
import dev.nucleon.replay.ReplayBuffer;
import dev.nucleon.replay.ReplaySettings;
import dev.nucleon.replay.TrainingBatch;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.SplittableRandom;
import dev.nucleon.model.ModelFiles;
import dev.nucleon.model.Precision;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.io.TempDir;

/** N steps, save, load into a fresh object graph, N more steps: the same weights as 2N uninterrupted steps. */
class ExactResumeTest {

  static final LlamaConfig SHAPE = new LlamaConfig("Qwen2ForCausalLM", 23, 32, 48, 2, 4, 2, 8, 10000.0, null, 1e-6,
      32, false, true, 1, new int[] {2});
  static final int N = 4;
  static final OptimizerSettings OPTIMIZER = new OptimizerSettings(2e-3, 0.9, 0.99, 1e-8, 0.01, 0.5,
      new LrSchedule(LrSchedule.Type.COSINE, 2, 10, 0.1));
  static final LossSettings LOSS = new LossSettings(0.2, 0.28, 0, LossSettings.Aggregation.TOKEN_MEAN, 1, 0,
      LossSettings.KlEstimator.K3);

  /** The training batch of step s: a pure function of s, so both runs see the same data. */
  static TrainingBatch batch(int s, int version) {
    ReplayBuffer replay = new ReplayBuffer(new ReplaySettings(4, "grpo", 1e-4, 2, 1, false, false, 0, 40,
        MicroBatchCost.PADDED, FailedRewardPolicy.DROP_SAMPLE));
    replay.setPolicyVersion(version);
    SplittableRandom rng = new SplittableRandom(1000L + s);
    for (int p = 0; p < 2; p++) {
      int[] prompt = {1, 3 + rng.nextInt(20), 3 + rng.nextInt(20)};
      for (int g = 0; g < 4; g++) {
        int n = 2 + rng.nextInt(4);
        int[] completion = new int[n];
        float[] behaviour = new float[n];
        int[] versions = new int[n];
        for (int i = 0; i < n; i++) {
          completion[i] = 3 + rng.nextInt(20);
          behaviour[i] = (float) (-3.3 + rng.nextDouble() * 0.6);
          versions[i] = version;
        }
        Trajectory t = new Trajectory(s * 2L + p, g, prompt, completion, behaviour, versions, FinishReason.LENGTH, "");
        replay.add(new ScoredTrajectory(t, RewardResult.ok(g % 2 == 0 ? 1 : rng.nextDouble())));
      }
    }
    return replay.pollBatch().orElseThrow();
  }

  static Map<String, HostTensor> train(Learner learner, int from, int to) {
    for (int s = from; s < to; s++) {
      TrainingBatch b = batch(s, learner.version());
      assertTrue(b.microBatches().size() > 1, "the test should accumulate micro-batches");
      learner.train(b);
    }
    return learner.policy().toHostTensors();
  }

  /**
   * In float32 and in mixed precision, with the model folder saved as float32 or as bfloat16: a bfloat16 folder is
   * below the float32 masters, so the masters are kept beside it and the resume still continues exactly.
   */
  @ParameterizedTest
  @CsvSource({"f32, f32", "bf16, bf16", "f32, bf16", "bf16, f32"})
  void resumedTrainingMatchesUninterruptedTraining(String compute, String saved, @TempDir Path dir)
      throws Exception {
    Engines.start();
    Precision precision = Precision.training(Precision.parseType(compute));
    var folder = new LearnerCheckpoint.ModelFolder(Precision.parseType(saved), java.util.List.of());
    Map<String, HostTensor> straight;
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel model = LlamaModel.create(SHAPE, m, LlamaModel.randomWeights(SHAPE, 3), precision);
        Learner learner = new Learner(model, null, LOSS, OPTIMIZER, 1f, 0)) {
      straight = train(learner, 0, 2 * N);
    }

    CheckpointStore store = new CheckpointStore(dir, 2);
    byte[] cursor = "dataset-cursor:8".getBytes(StandardCharsets.UTF_8);
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel model = LlamaModel.create(SHAPE, m, LlamaModel.randomWeights(SHAPE, 3), precision);
        Learner learner = new Learner(model, null, LOSS, OPTIMIZER, 1f, 0)) {
      train(learner, 0, N);
      LearnerCheckpoint.save(store, learner, 8L * N, Map.of("data", "42"), cursor, folder);
    }

    Map<String, HostTensor> resumed;
    Checkpoint ckpt = new CheckpointStore(dir, 2).latestValid().orElseThrow();
    assertEquals(N, ckpt.step());
    assertTrue(Files.exists(ckpt.resolve("model/config.json")), "the model is saved in the Hugging Face layout");
    assertEquals(folder.type(), ModelFiles.read(ckpt.dir().resolve("model")).storedType(), "the model folder's type");
    assertEquals(!saved.equals("f32"), ckpt.has(LearnerCheckpoint.MASTER),
        "master weights are kept when the folder is stored below them");
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel model = LearnerCheckpoint.model(ckpt).instantiate(m, precision);
        Learner learner = new Learner(model, null, LOSS, OPTIMIZER, 1f, 0)) {
      TrainerState state = LearnerCheckpoint.restore(ckpt, learner);
      assertEquals(N, learner.version());
      assertEquals(N, learner.optimizer().step());
      assertEquals(8L * N, state.samplesSeen());
      assertEquals("42", state.rng().get("data"));
      assertEquals("dataset-cursor:8", new String(state.blob(), StandardCharsets.UTF_8));
      resumed = train(learner, N, 2 * N);
    }

    double maxDiff = 0;
    double maxChange = 0;
    Map<String, HostTensor> init = LlamaModel.randomWeights(SHAPE, 3);
    for (var e : straight.entrySet()) {
      float[] a = e.getValue().data();
      float[] b = resumed.get(e.getKey()).data();
      float[] z = init.get(e.getKey()).data();
      for (int i = 0; i < a.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
        maxChange = Math.max(maxChange, Math.abs(a[i] - z[i]));
      }
    }
    System.out.printf("exact resume (%s compute, %s folder): max weight difference %.2e after %d + %d steps "
        + "(training moved weights by up to %.2e)%n", compute, saved, maxDiff, N, N, maxChange);
    assertTrue(maxChange > 1e-3, "training must have changed the weights");
    assertTrue(maxDiff <= 1e-6, "max difference " + maxDiff);
  }

  @Test
  void aCorruptLatestCheckpointFallsBackToThePreviousOne(@TempDir Path dir) throws Exception {
    Engines.start();
    CheckpointStore store = new CheckpointStore(dir, 3);
    try (NDManager m = NDManager.newBaseManager();
        LlamaModel model = LlamaModel.random(SHAPE, m, 3);
        Learner learner = new Learner(model, null, LOSS, OPTIMIZER, 1f, 0)) {
      train(learner, 0, 1);
      LearnerCheckpoint.save(store, learner, 8, Map.of(), new byte[0], LearnerCheckpoint.ModelFolder.FLOAT32);
      train(learner, 1, 2);
      Path latest = LearnerCheckpoint.save(store, learner, 16, Map.of(), new byte[0], LearnerCheckpoint.ModelFolder.FLOAT32);
      Path weights = latest.resolve("model/model.safetensors");
      byte[] bytes = Files.readAllBytes(weights);
      bytes[bytes.length - 3] ^= 0x40;
      Files.write(weights, bytes);
    }
    Checkpoint usable = new CheckpointStore(dir, 3).latestValid().orElseThrow();
    assertEquals(1, usable.step());
  }
}
