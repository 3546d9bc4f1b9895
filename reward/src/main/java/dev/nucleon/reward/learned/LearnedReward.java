package dev.nucleon.reward.learned;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.jni.JniUtils;
import com.typesafe.config.Config;
import dev.nucleon.core.reward.RewardFactory;
import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.model.Engines;
import dev.nucleon.model.LlamaConfig;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.ModelFormatException;
import dev.nucleon.model.WeightLayout;
import dev.nucleon.model.io.HfCheckpoint;
import dev.nucleon.model.io.HostTensor;
import dev.nucleon.model.tokenizer.TextTokenizer;
import dev.nucleon.reward.ConfigValues;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A learned reward model: a Llama-family decoder with a scalar score head, read from a Hugging Face
 * {@code *ForSequenceClassification} folder (decoder tensors under {@code model.}, head {@code score.weight} of
 * shape {@code [1, d]}, no {@code lm_head}). The reward of a completion is the head applied to the final hidden
 * state of the last token of {@code prompt + completion}, as transformers' sequence classifiers compute it.
 *
 * <p>Requests are scored in batches of {@code batch-size} rows (right-padded, one forward pass each) on the
 * configured device, with autograd off. Sequences longer than {@code max-length} keep their last tokens.
 */
public final class LearnedReward implements RewardFunction {

  private final LlamaModel model;
  private final NDManager manager;
  private final float[] head;
  private final TextTokenizer tokenizer;
  private final int batchSize;
  private final int maxLength;

  LearnedReward(LlamaModel model, NDManager manager, float[] head, TextTokenizer tokenizer, int batchSize,
      int maxLength) {
    this.model = model;
    this.manager = manager;
    this.head = head;
    this.tokenizer = tokenizer;
    this.batchSize = batchSize;
    this.maxLength = Math.min(maxLength, model.maxPositions());
  }

  /** Loads a sequence-classification folder (config.json, safetensors with {@code score.weight}, tokenizer.json). */
  public static LearnedReward load(Path dir, String device, int batchSize, int maxLength) {
    Engines.start();
    HfCheckpoint.Contents c = HfCheckpoint.read(dir);
    Map<String, HostTensor> tensors = new LinkedHashMap<>(c.tensors());
    HostTensor score = tensors.remove("score.weight");
    if (score == null) {
      throw new ModelFormatException(dir + ": no 'score.weight' tensor: not a sequence-classification checkpoint");
    }
    LlamaConfig shape = c.config();
    if (score.shape().length != 2 || score.shape()[0] != 1 || score.shape()[1] != shape.hiddenSize()) {
      throw new ModelFormatException(dir + ": tensor 'score.weight' has shape " + Arrays.toString(score.shape())
          + ", expected [1, " + shape.hiddenSize() + "] (a scalar head)");
    }
    tensors.remove("lm_head.weight");
    // the decoder alone: the classifier has no language-model head, so build it as tied and never use the head
    LlamaConfig decoder = shape.withTiedHead();
    NDManager manager = NDManager.newBaseManager(Engines.device(device));
    LlamaModel model = LlamaModel.create(decoder, manager,
        WeightLayout.fromHuggingFace(decoder, tensors, dir.toString()));
    TextTokenizer tok = dev.nucleon.model.ModelFiles.tokenizer(dir, null, shape);
    return new LearnedReward(model, manager, score.data(), tok, batchSize, maxLength);
  }

  @Override
  public boolean scoresBatches() {
    return true;
  }

  @Override
  public RewardResult scoreOne(RewardRequest request) {
    return score(List.of(request)).get(0);
  }

  @Override
  public synchronized List<RewardResult> score(List<RewardRequest> batch) {
    boolean gradMode = JniUtils.isGradMode();
    JniUtils.setGradMode(false);
    try {
      List<RewardResult> out = new ArrayList<>(batch.size());
      for (int from = 0; from < batch.size(); from += batchSize) {
        out.addAll(scoreChunk(batch.subList(from, Math.min(batch.size(), from + batchSize))));
      }
      return out;
    } finally {
      JniUtils.setGradMode(gradMode);
    }
  }

  private List<RewardResult> scoreChunk(List<RewardRequest> chunk) {
    int[][] rows = new int[chunk.size()][];
    for (int i = 0; i < rows.length; i++) {
      int[] ids = tokenizer.encode(chunk.get(i).prompt() + chunk.get(i).completion(), tokenizer.bosId() >= 0);
      rows[i] = ids.length > maxLength ? Arrays.copyOfRange(ids, ids.length - maxLength, ids.length) : ids;
    }
    try (NDManager m = manager.newSubManager()) {
      int width = Arrays.stream(rows).mapToInt(r -> r.length).max().orElse(1);
      long[] flat = new long[rows.length * width];
      for (int i = 0; i < rows.length; i++) {
        for (int j = 0; j < rows[i].length; j++) {
          flat[i * width + j] = rows[i][j];
        }
      }
      NDArray hidden = model.hiddenStates(m.create(flat, new Shape(rows.length, width)));
      NDArray scores = hidden.matMul(m.create(head, new Shape(head.length, 1))); // [B, T, 1]
      float[] all = scores.toFloatArray();
      List<RewardResult> out = new ArrayList<>(rows.length);
      for (int i = 0; i < rows.length; i++) {
        out.add(RewardResult.ok(all[i * width + rows[i].length - 1]));
      }
      return out;
    }
  }

  @Override
  public void close() {
    model.close();
    manager.close();
    tokenizer.close();
  }

  /** {@code nucleon.reward.model { path, device, batch-size, max-length }}. */
  public static final class Factory implements RewardFactory {
    @Override
    public String identifier() {
      return "model";
    }

    @Override
    public RewardFunction create(Config config) {
      Config c = ConfigValues.withDefaults(config, "model");
      String path = ConfigValues.string(c, "path");
      if (path.isBlank()) {
        throw ConfigValues.bad(c, "path", "must name a sequence-classification model folder");
      }
      return load(Path.of(path), ConfigValues.string(c, "device"), ConfigValues.intAtLeast(c, "batch-size", 1),
          ConfigValues.intAtLeast(c, "max-length", 2));
    }
  }
}
