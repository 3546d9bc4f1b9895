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
 * <p>A version is the adapter of every module the settings target ({@link PeftAdapter#of} pairs its tensors); the
 * scaling of each module comes from the settings, as the learner's does.
 */
final class MergedLora implements AutoCloseable {

  private final PeftAdapter.Settings settings;
  private final NDManager manager;
  /** Per adapted module: where it lives, its weight, and the base values of its rows. */
  private final Map<String, Slot> slots = new LinkedHashMap<>();

  private record Slot(WeightLayout.Placement place, Parameter weight, NDArray base, double scaling) {}

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
      slots.put(module, new Slot(place, weight, base, settings.scalingOf(module)));
    }
  }

  /** The adapted module names, in model order. */
  java.util.Set<String> modules() {
    return slots.keySet();
  }

  /** The adapter settings versions are merged with. */
  PeftAdapter.Settings settings() {
    return settings;
  }

  /**
   * Sets every adapted projection to base + scaling * B @ A from a version's adapter (every adapted module, each
   * the shape of its rows; all checked before anything is written). Call it with gradients off.
   */
  void apply(PeftAdapter adapter) {
    if (!adapter.modules().keySet().equals(slots.keySet())) {
      java.util.Set<String> missing = new java.util.TreeSet<>(slots.keySet());
      missing.removeAll(adapter.modules().keySet());
      java.util.Set<String> extra = new java.util.TreeSet<>(adapter.modules().keySet());
      extra.removeAll(slots.keySet());
      throw new IllegalArgumentException("an adapter-only version must hold exactly the adapted modules"
          + (missing.isEmpty() ? "" : "; missing " + missing) + (extra.isEmpty() ? "" : "; it also adapts " + extra
              + ", which this model's adapter settings do not target (targets " + settings.targets() + ")"));
    }
    for (PeftAdapter.Module m : adapter.modules().values()) {
      long[] rows = slots.get(m.name()).base().getShape().getShape();
      if (m.b().shape()[0] != rows[0] || m.a().shape()[1] != rows[1]) {
        throw new IllegalArgumentException("LoRA module " + m.name() + ": B @ A is [" + m.b().shape()[0] + ", "
            + m.a().shape()[1] + "] but the layer is " + java.util.Arrays.toString(rows));
      }
    }
    for (PeftAdapter.Module m : adapter.modules().values()) {
      Slot slot = slots.get(m.name());
      try (NDManager tmp = manager.newSubManager()) {
        NDArray a = tmp.create(m.a().data(), new ai.djl.ndarray.types.Shape(m.a().shape()));
        NDArray b = tmp.create(m.b().data(), new ai.djl.ndarray.types.Shape(m.b().shape()));
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
