package dev.nucleon.model.io;

import ai.djl.ndarray.NDManager;
import dev.nucleon.model.LlamaConfig;
import dev.nucleon.model.LlamaModel;
import java.util.LinkedHashMap;
import java.util.Map;

/** Test helper: a random model's Hugging Face tensors. */
final class WeightLayoutAccess {
  private WeightLayoutAccess() {}

  static Map<String, HostTensor> hf(LlamaConfig c) {
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = LlamaModel.random(c, m, 1)) {
      return new LinkedHashMap<>(model.toHuggingFace());
    }
  }
}
