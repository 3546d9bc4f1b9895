package dev.nucleon.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.nn.Parameter;
import dev.nucleon.model.io.HostTensor;
import dev.nucleon.model.lora.PeftAdapter;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The rollout side of adapter-only weight updates, merged: keeps the base values of every projection a LoRA
 * adapter targets (on the model's device, in the parameters' type) and, when a policy version's adapter arrives,
 * sets each of those rows of the model's weights to {@code base + scaling * B @ A}, computed in float32 on the device
 * and rounded once to the parameters' type. The model then computes exactly as an unadapted one (no side products
 * per token, the decode script stays on), at the cost of one copy of the adapted weights.
 *
 * <p>A version carries the adapter's tensors under PEFT's names ({@code base_model.model.<module>.lora_A.weight}
 * and {@code lora_B}), for every module the settings target; the scaling of each module comes from the settings,
 * as the learner's does.
 */
final class MergedLora implements AutoCloseable {

  private final PeftAdapter.Settings settings;
  private final NDManager manager;
  /** Per adapted module: where it lives, its weight, and the base values of its rows. */
  private final Map<String, Slot> slots = new LinkedHashMap<>();

  private record Slot(WeightLayout.Placement place, Parameter weight, NDArray base, double scaling, long rank) {}

  /**
   * @param config the model's shape
   * @param settings the adapter's rank, alpha and targets (the learner's {@code nucleon.learner.lora})
   * @param named the model's parameters by internal name
   * @param parent the model's manager (the base copies live in a sub-manager of it)
   */
  MergedLora(LlamaConfig config, PeftAdapter.Settings settings, Map<String, Parameter> named, NDManager parent) {
    this.settings = settings;
    this.manager = parent.newSubManager();
    manager.setName("lora-base");
    for (String module : settings.modules(config)) {
      WeightLayout.Placement place = WeightLayout.place(config, module);
      Parameter weight = named.get(place.weight());
      if (weight == null) {
        throw new IllegalArgumentException("LoRA module " + module + ": the model has no " + place.weight());
      }
      NDArray base = Ops.slice(weight.getArray(), 0, place.firstRow(), place.firstRow() + place.rows(), manager)
          .duplicate();
      base.attach(manager);
      slots.put(module, new Slot(place, weight, base, settings.scalingOf(module), settings.rankOf(module)));
    }
  }

  /** The adapted module names, in model order. */
  java.util.Set<String> modules() {
    return slots.keySet();
  }

  /**
   * Sets every adapted projection to base + scaling * B @ A from a version's adapter tensors (PEFT names, at
   * least one A and one B per adapted module; all checked before anything is written). Call it with gradients
   * off.
   */
  void apply(Map<String, HostTensor> adapter, String prefix) {
    Map<String, HostTensor[]> pairs = new LinkedHashMap<>();
    for (HostTensor t : adapter.values()) {
      String name = t.name();
      boolean isA = name.endsWith(".lora_A.weight");
      if (!name.startsWith(prefix) || !(isA || name.endsWith(".lora_B.weight"))) {
        throw new IllegalArgumentException("'" + name + "' is not a LoRA tensor (" + prefix
            + "<module>.lora_A.weight or lora_B.weight)");
      }
      String module = name.substring(prefix.length(), name.length() - ".lora_A.weight".length());
      if (!slots.containsKey(module)) {
        throw new IllegalArgumentException("LoRA tensor '" + name + "' is for " + module + ", which this model's "
            + "adapter settings do not target (targets " + settings.targets() + ")");
      }
      pairs.computeIfAbsent(module, k -> new HostTensor[2])[isA ? 0 : 1] = t;
    }
    if (!pairs.keySet().equals(slots.keySet())) {
      java.util.Set<String> missing = new java.util.TreeSet<>(slots.keySet());
      missing.removeAll(pairs.keySet());
      throw new IllegalArgumentException("an adapter-only version must hold every adapted module; missing " + missing);
    }
    for (var e : pairs.entrySet()) {
      Slot slot = slots.get(e.getKey());
      HostTensor a = e.getValue()[0];
      HostTensor b = e.getValue()[1];
      if (a == null || b == null) {
        throw new IllegalArgumentException("LoRA module " + e.getKey() + ": the version holds " + (a == null
            ? "lora_B but no lora_A" : "lora_A but no lora_B"));
      }
      long[] baseShape = slot.base().getShape().getShape();
      if (a.shape().length != 2 || b.shape().length != 2 || a.shape()[0] != slot.rank() || b.shape()[1] != slot.rank()
          || a.shape()[1] != baseShape[1] || b.shape()[0] != baseShape[0]) {
        throw new IllegalArgumentException("LoRA module " + e.getKey() + ": A " + java.util.Arrays.toString(a.shape())
            + " and B " + java.util.Arrays.toString(b.shape()) + " do not make a rank-" + slot.rank() + " update of "
            + java.util.Arrays.toString(baseShape));
      }
    }
    for (var e : pairs.entrySet()) {
      Slot slot = slots.get(e.getKey());
      try (NDManager tmp = manager.newSubManager()) {
        NDArray a = tmp.create(e.getValue()[0].data(), new ai.djl.ndarray.types.Shape(e.getValue()[0].shape()));
        NDArray b = tmp.create(e.getValue()[1].data(), new ai.djl.ndarray.types.Shape(e.getValue()[1].shape()));
        NDArray merged = Ops.mul(b.matMul(a), slot.scaling()).addi(float32(slot.base(), tmp));
        NDArray weight = slot.weight().getArray();
        DataType type = Bf16Casts.typeOf(weight);
        Ops.writeAlong(weight, type == DataType.FLOAT32 ? merged : Bf16Casts.cast(merged, type, tmp), 0,
            slot.place().firstRow());
      }
    }
  }

  private static NDArray float32(NDArray x, NDManager owner) {
    return Bf16Casts.typeOf(x) == DataType.FLOAT32 ? x : Bf16Casts.cast(x, DataType.FLOAT32, owner);
  }

  @Override
  public void close() {
    manager.close();
  }
}
