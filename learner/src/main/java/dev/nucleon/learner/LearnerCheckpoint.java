package dev.nucleon.learner;

import ai.djl.ndarray.types.DataType;
import ai.djl.pytorch.jni.JniUtils;
import dev.nucleon.learner.checkpoint.Checkpoint;
import dev.nucleon.learner.checkpoint.CheckpointStore;
import dev.nucleon.learner.checkpoint.TrainerState;
import dev.nucleon.model.LlamaConfig;
import dev.nucleon.model.ModelFiles;
import dev.nucleon.model.WeightLayout;
import dev.nucleon.model.io.HfCheckpoint;
import dev.nucleon.model.io.HostTensor;
import dev.nucleon.model.io.Safetensors;
import dev.nucleon.model.lora.PeftAdapter;
import java.io.IOException;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

/**
 * Saves and restores everything a resumed run needs, as one checkpoint of a {@link CheckpointStore} named by the
 * policy version:
 * <ul>
 *   <li>{@code model/}: the policy in the Hugging Face layout ({@code config.json} + safetensors), so other tools
 *       can load any checkpoint as it is, stored as float32 or bfloat16 ({@link ModelFolder});</li>
 *   <li>{@code master-weights.safetensors}: when the model folder is stored below float32, the learner's float32
 *       master weights (Hugging Face names), which a resume reads instead, so it continues exactly;</li>
 *   <li>{@code optimizer.safetensors}: AdamW's first and second moments;</li>
 *   <li>{@code trainer-state.json}: optimizer step, policy version (which fixes the learning-rate schedule
 *       position), samples seen, named RNG states and an opaque blob from the caller (the coordinator's dataset
 *       cursor and prompt accounting).</li>
 * </ul>
 * A LoRA run's checkpoint holds {@code adapter/} (PEFT's layout) instead of {@code model/}: the base never changes,
 * so it is not copied into every checkpoint; the adapter's config names it ({@code base_model_name_or_path}), and a
 * resume builds the policy from the run's base ({@link #hasModel}) before restoring the adapter into it.
 * The store writes it atomically with checksums and keeps the last N; a corrupt checkpoint is refused and the
 * previous one used.
 */
public final class LearnerCheckpoint {

  public static final String MODEL = "model";
  public static final String OPTIMIZER = "optimizer.safetensors";
  public static final String STATE = "trainer-state.json";
  public static final String MASTER = "master-weights.safetensors";
  /** With LoRA: the adapter in PEFT's layout (instead of a model folder: the base is the run's). */
  public static final String ADAPTER = "adapter";

  /**
   * How a checkpoint's model folder is written.
   *
   * @param type the stored type of its weights (float32 or bfloat16)
   * @param files files copied into it as they are (tokenizer.json, tokenizer_config.json, ...), so the folder is
   *     complete for other tools
   */
  public record ModelFolder(DataType type, java.util.List<Path> files) {

    /** float32 weights and no extra files. */
    public static final ModelFolder FLOAT32 = new ModelFolder(DataType.FLOAT32, java.util.List.of());
  }

  private LearnerCheckpoint() {}

  /** The trainer-state entry that holds the gradient-spike guard's recent norms. */
  static final String SPIKE_HISTORY = "grad-spike-history";

  /**
   * Writes a checkpoint at the learner's current optimizer step.
   *
   * @param samplesSeen trajectories trained on so far
   * @param rng named RNG states of the caller (copied into the trainer state)
   * @param blob the caller's opaque state (may be empty)
   * @param folder how the model folder is written
   * @return the checkpoint folder
   */
  public static Path save(CheckpointStore store, Learner learner, long samplesSeen, Map<String, String> rng,
      byte[] blob, ModelFolder folder) throws IOException {
    long step = learner.optimizer().step();
    int version = learner.version();
    PeftAdapter adapter = learner.policy().lora();
    // a LoRA run's base never changes: the checkpoint holds the adapter alone
    Map<String, HostTensor> model = adapter == null ? learner.policy().toHuggingFace() : null;
    Map<String, HostTensor> optimizer = learner.optimizer().state();
    Map<String, String> states = new HashMap<>(rng);
    states.put("policy-version", Integer.toString(learner.version()));
    states.put(SPIKE_HISTORY, learner.spikeGuard().history());
    TrainerState state = new TrainerState(step, samplesSeen, states, blob);
    // masters are kept only when the folder rounds them (a float32 folder holds a bfloat16 LoRA base exactly)
    boolean narrower = folder.type() == DataType.BFLOAT16
        && learner.policy().precision().weights() == DataType.FLOAT32;
    return store.save(version, dir -> {
      if (model != null) {
        HfCheckpoint.write(dir.resolve(MODEL), learner.policy().config(), model, folder.type());
        if (narrower) {
          Safetensors.write(dir.resolve(MASTER), model.values(), Map.of("content", "float32 master weights"));
        }
        for (Path f : folder.files()) {
          java.nio.file.Files.copy(f, dir.resolve(MODEL).resolve(f.getFileName().toString()));
        }
      } else {
        adapter.write(dir.resolve(ADAPTER));
      }
      Safetensors.write(dir.resolve(OPTIMIZER), optimizer.values(), Map.of("optimizer", "adamw",
          "step", Long.toString(step)));
      state.write(dir.resolve(STATE));
    });
  }

  /** Whether the checkpoint holds the policy's weights (a full-weight run), rather than a LoRA adapter alone. */
  public static boolean hasModel(Checkpoint checkpoint) {
    return checkpoint.has(MODEL + "/config.json");
  }

  /**
   * Reads a checkpoint's policy weights (Hugging Face layout), for building the model of a resumed run: the master
   * weights where the model folder was stored below them, else the model folder's. A LoRA checkpoint has none
   * ({@link #hasModel}): its policy is the run's base.
   */
  public static ModelFiles.Checkpoint model(Checkpoint checkpoint) {
    if (!hasModel(checkpoint)) {
      throw new IllegalArgumentException(checkpoint.dir() + ": the checkpoint trained a LoRA adapter (it holds the "
          + "adapter, not a model), but this run trains every weight (nucleon.learner.lora.rank = 0)");
    }
    if (!checkpoint.has(MASTER)) {
      return ModelFiles.read(checkpoint.dir().resolve(MODEL));
    }
    // the masters alone: reading the folder too would widen a second copy of every weight for nothing
    Path master = checkpoint.resolve(MASTER);
    return new ModelFiles.Checkpoint(LlamaConfig.fromHuggingFace(checkpoint.resolve(MODEL + "/config.json")),
        Safetensors.read(master), master, DataType.FLOAT32);
  }

  /**
   * Loads a checkpoint into a learner whose policy has the checkpoint's shape: parameters, optimizer moments and
   * step, and policy version. Returns the trainer state, whose RNG states and blob belong to the caller.
   */
  public static TrainerState restore(Checkpoint checkpoint, Learner learner) throws IOException {
    TrainerState state = TrainerState.read(checkpoint.resolve(STATE));
    boolean saved = checkpoint.has(ADAPTER + "/" + PeftAdapter.CONFIG);
    // full weights, or (a LoRA checkpoint written before adapters were saved alone) the base
    Map<String, HostTensor> internal = null;
    if (hasModel(checkpoint) && saved) {
      // an older LoRA checkpoint with a copy of the base: only its shape is compared, the run's base is the policy
      LlamaConfig config = LlamaConfig.fromHuggingFace(checkpoint.resolve(MODEL + "/config.json"));
      if (!config.equals(learner.policy().config())) {
        throw new IllegalArgumentException(checkpoint.dir() + ": the checkpoint's model " + config
            + " differs from the run's " + learner.policy().config());
      }
    } else if (hasModel(checkpoint)) {
      ModelFiles.Checkpoint model = model(checkpoint);
      if (!model.config().equals(learner.policy().config())) {
        throw new IllegalArgumentException(checkpoint.dir() + ": the checkpoint's model " + model.config()
            + " differs from the run's " + learner.policy().config());
      }
      internal = WeightLayout.fromHuggingFace(model.config(), model.huggingFace(),
          checkpoint.dir().resolve(MODEL).toString());
    }
    if (!saved && internal == null) {
      throw new IllegalArgumentException(checkpoint.dir() + ": holds neither a model folder nor a LoRA adapter");
    }
    boolean training = learner.policy().hasLora();
    if (saved != training) {
      throw new IllegalArgumentException(checkpoint.dir() + (saved
          ? ": the checkpoint trained a LoRA adapter but this run trains every weight (nucleon.learner.lora.rank = 0)"
          : ": the checkpoint trained every weight but this run trains a LoRA adapter (nucleon.learner.lora)"));
    }
    boolean gradMode = JniUtils.isGradMode();
    JniUtils.setGradMode(false);
    try {
      if (internal != null) {
        learner.policy().loadParameters(internal);
      }
      if (saved) {
        // resolve() checks that the manifest lists (and so verified) both files
        checkpoint.resolve(ADAPTER + "/" + PeftAdapter.WEIGHTS);
        learner.policy().setLoraValues(PeftAdapter.read(checkpoint.resolve(ADAPTER + "/" + PeftAdapter.CONFIG)
            .getParent()));
      }
    } finally {
      JniUtils.setGradMode(gradMode);
    }
    learner.optimizer().restore(Safetensors.read(checkpoint.resolve(OPTIMIZER)), state.step());
    String version = state.rng().get("policy-version");
    if (version == null) {
      throw new IllegalArgumentException(checkpoint.resolve(STATE) + ": missing 'policy-version'");
    }
    learner.setVersion(Integer.parseInt(version));
    String history = state.rng().get(SPIKE_HISTORY);
    if (history != null) { // absent in checkpoints written before the guard existed
      learner.spikeGuard().restore(history);
    }
    return state;
  }
}
