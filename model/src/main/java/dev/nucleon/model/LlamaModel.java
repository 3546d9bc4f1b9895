package dev.nucleon.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.ndarray.types.SparseFormat;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Embedding;
import ai.djl.nn.core.Linear;
import ai.djl.pytorch.jni.JniUtils;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;
import dev.nucleon.model.io.HostTensor;
import dev.nucleon.model.lora.PeftAdapter;
import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A Llama-family decoder-only language model as a DJL block: token embedding, {@link DecoderLayer}s, a final
 * {@link RmsNorm} and a tied or separate output head.
 *
 * <p>Two ways in: {@link #forward(NDArray, NDArray, NDArray, KvCache, boolean)} for generation (positions, masks and
 * a KV cache supplied by {@link dev.nucleon.model.generate.Generator}) and {@link #tokenLogProbs} for training, which
 * scores whole right-padded sequences in one batched pass that autograd can differentiate.
 *
 * <p>Parameters live in a sub-manager of the one given at creation and are freed by {@link #close()}. They are
 * frozen (no gradient) unless {@link #setTrainable(boolean)} turns gradients on.
 */
public final class LlamaModel extends AbstractBlock implements AutoCloseable {

  /** Additive mask value for positions a query must not see (finite, so fully masked pad rows stay finite). */
  public static final float MASKED = -1e9f;
  /** The prefix of PEFT's tensor names, which the LoRA parameters carry. */
  private static final String PREFIX_LORA = "base_model.model.";

  private final LlamaConfig config;
  private final Precision precision;
  private final Parameter embed;
  private final List<DecoderLayer> layers = new ArrayList<>();
  private final RmsNorm norm;
  private final Parameter head;
  private final Map<String, Parameter> named = new LinkedHashMap<>();
  private NDManager manager;
  private Rope rope;
  private final Rope[] layerRopes;
  private boolean scriptedDecode = true;
  private boolean reorderWeights = true;
  private DecodeScript decodeScript;
  /**
   * Advanced by every write of new values to the parameters ({@link #weightsChanged}): the decode step's reordered
   * weight copies are remade when it moved.
   */
  private final AtomicLong weightsEpoch = new AtomicLong();
  /** Whether {@link #setTrainable} turned gradients on: an optimizer then writes the parameters in place. */
  private volatile boolean trainable;
  /** LoRA parameters by PEFT's tensor names ({@code base_model.model.<module>.lora_A.weight}); empty when none. */
  private final Map<String, Parameter> lora = new LinkedHashMap<>();
  /** The adapted projections by module name ({@code model.layers.0.self_attn.q_proj}), in attach order. */
  private final Map<String, LoraPart> loraModules = new LinkedHashMap<>();
  private PeftAdapter.Settings loraSettings;
  /** Base copies for adapter-only updates merged into the weights, or null. */
  private MergedLora mergedLora;
  /** Whether this model takes adapter-only versions (merged or as side products) instead of full weights. */
  private boolean takesAdapters;
  /** The type of attached LoRA matrices: float32 to train them, the weights' type on a rollout model. */
  private DataType loraType = DataType.FLOAT32;

  /** How a rollout model applies adapter-only policy versions ({@link #takeAdapterUpdates}). */
  public enum AdapterUpdates {
    /** Into the weights: base + scaling * B @ A once per version; one extra copy of the adapted weights. */
    MERGED,
    /** As low-rank side products in every forward, op by op; no extra copy of the weights. */
    SIDE_PRODUCTS
  }

  private LlamaModel(LlamaConfig config, Precision precision) {
    this.config = config;
    this.precision = precision;
    this.layerRopes = new Rope[config.numLayers()];
    embed = addParameter(Parameter.builder().setName("embed_tokens").setType(Parameter.Type.WEIGHT)
        .optShape(new Shape(config.vocabSize(), config.hiddenSize())).build());
    for (int i = 0; i < config.numLayers(); i++) {
      layers.add(addChildBlock("layers." + i, new DecoderLayer(config, i, precision)));
    }
    norm = addChildBlock("norm", new RmsNorm(config.hiddenSize(), config.rmsNormEps(), precision));
    head = config.tieWordEmbeddings() ? null
        : addParameter(Parameter.builder().setName("lm_head").setType(Parameter.Type.WEIGHT)
            .optShape(new Shape(config.vocabSize(), config.hiddenSize())).build());
    // one list of names for the whole project: WeightLayout's, which loading and saving also use
    for (String name : WeightLayout.internalNames(config)) {
      named.put(name, parameter(name));
    }
  }

  /** The parameter an internal name (as {@link WeightLayout#internalNames} lists them) refers to. */
  private Parameter parameter(String name) {
    Parameter p = switch (name) {
      case "model.embed_tokens.weight" -> embed;
      case "model.norm.weight" -> norm.weight();
      case "lm_head.weight" -> head;
      default -> {
        String rest = name.substring(WeightLayout.LAYERS.length());
        int dot = rest.indexOf('.');
        yield layers.get(Integer.parseInt(rest.substring(0, dot))).parameter(rest.substring(dot + 1));
      }
    };
    if (p == null) {
      throw new IllegalStateException("the decoder has no parameter '" + name + "' that WeightLayout lists");
    }
    return p;
  }

  /**
   * Builds a float32 model from its parameters (internal names, as {@link WeightLayout#fromHuggingFace} produces
   * them) on the device of {@code parent}.
   */
  public static LlamaModel create(LlamaConfig config, NDManager parent, Map<String, HostTensor> weights) {
    return create(config, parent, weights, Precision.FP32);
  }

  /** Builds a model that holds its parameters and computes as {@code precision} says. */
  public static LlamaModel create(LlamaConfig config, NDManager parent, Map<String, HostTensor> weights,
      Precision precision) {
    LlamaModel m = new LlamaModel(config, precision);
    for (var e : m.named.entrySet()) {
      HostTensor t = weights.get(e.getKey());
      if (t == null) {
        throw new IllegalArgumentException("missing parameter '" + e.getKey() + "'");
      }
      Shape want = e.getValue().getShape();
      if (!new Shape(t.shape()).equals(want)) {
        throw new IllegalArgumentException("parameter '" + e.getKey() + "' has shape " + new Shape(t.shape())
            + ", expected " + want);
      }
      DataType type = WeightLayout.keepsFloat32(e.getKey()) ? DataType.FLOAT32 : precision.weights();
      e.getValue().setInitializer((mgr, shape, ignored) -> hostToDevice(mgr, t, type));
    }
    m.materialize(parent);
    for (Parameter p : m.named.values()) {
      // the initializer holds the host copy of the weights: dropping it lets the Java heap free them (a model
      // would otherwise keep 4 bytes per parameter of heap for its whole life)
      p.setInitializer(null);
    }
    return m;
  }

  /**
   * A randomly initialized model: normal(0, 0.02) matrices with residual output projections scaled by
   * {@code 1/sqrt(2 * layers)}, unit norms, zero biases. The same seed gives the same weights on any machine.
   */
  public static LlamaModel random(LlamaConfig config, NDManager parent, long seed) {
    return create(config, parent, randomWeights(config, seed));
  }

  /** The parameters {@link #random} uses, as host tensors. */
  public static Map<String, HostTensor> randomWeights(LlamaConfig config, long seed) {
    SplittableRandom root = new SplittableRandom(seed);
    Map<String, HostTensor> w = new LinkedHashMap<>();
    LlamaModel shapes = new LlamaModel(config, Precision.FP32);
    double residual = 0.02 / Math.sqrt(2.0 * config.numLayers());
    for (var e : shapes.named.entrySet()) {
      String name = e.getKey();
      long[] shape = e.getValue().getShape().getShape();
      float[] data = new float[(int) HostTensor.numel(shape)];
      SplittableRandom rng = root.split();
      if (name.endsWith("norm.weight")) {
        java.util.Arrays.fill(data, 1f);
      } else if (!name.endsWith("bias")) {
        double std = name.endsWith("o_proj.weight") || name.endsWith("down_proj.weight")
            || name.endsWith(WeightLayout.EXPERTS_DOWN) ? residual : 0.02;
        for (int i = 0; i < data.length; i++) {
          data[i] = (float) (gaussian(rng) * std);
        }
      }
      w.put(name, new HostTensor(name, shape, data));
    }
    return w;
  }

  private static double gaussian(SplittableRandom rng) {
    // Box-Muller: deterministic given the generator, unlike Random.nextGaussian's cached second value.
    double u1 = 1.0 - rng.nextDouble();
    double u2 = rng.nextDouble();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  private void materialize(NDManager parent) {
    manager = parent.newSubManager();
    manager.setName("llama-parameters");
    initialize(manager, precision.weights(), new Shape(1, 1));
    rope = new Rope(manager, config, true, precision.compute());
    Rope plain = config.ropeScaling() != null && !config.ropeScalingInWindowedLayers() && config.hasSlidingWindows()
        ? new Rope(manager, config, false, precision.compute()) : rope;
    for (int i = 0; i < layers.size(); i++) {
      layerRopes[i] = config.slidingWindows()[i] > 0 ? plain : rope;
      layers.get(i).setRope(layerRopes[i]);
    }
    setTrainable(false);
  }

  public LlamaConfig config() {
    return config;
  }

  /** How this model holds its parameters and in which type it computes. */
  public Precision precision() {
    return precision;
  }

  /** A host tensor as an array of {@code type} in {@code m} (no float32 intermediate is left behind). */
  private static NDArray hostToDevice(NDManager m, HostTensor t, DataType type) {
    return Precision.converted(m.create(t.data(), new Shape(t.shape())), type, m);
  }

  /** The manager that owns the parameters (its device is the model's device). */
  public NDManager manager() {
    return manager;
  }

  /** The base parameters and the attached adapter's. */
  private List<Parameter> allParameters() {
    List<Parameter> all = new ArrayList<>(named.values());
    all.addAll(lora.values());
    return all;
  }

  /** Parameters by internal name, in model order. */
  public Map<String, Parameter> namedParameters() {
    return Collections.unmodifiableMap(named);
  }

  /** Bytes the parameters take on the device, in the type they are held in. */
  public long parameterBytes() {
    long bytes = 0;
    for (Parameter p : allParameters()) {
      NDArray a = p.getArray();
      bytes += a.getShape().size() * Precision.typeOf(a).getNumOfBytes();
    }
    return bytes;
  }

  /** Bytes the parameters' gradients take on the device (0 while the model is frozen). */
  public long gradientBytes() {
    long bytes = 0;
    for (Parameter p : allParameters()) {
      NDArray a = p.getArray();
      if (a.hasGradient()) {
        try (NDArray g = a.getGradient()) {
          bytes += g.getShape().size() * Precision.typeOf(a).getNumOfBytes(); // gradients take their type
        }
      }
    }
    return bytes;
  }

  /**
   * Turns gradients on (learner) or off (generation, reference models) for the trained parameters: every
   * parameter, or with LoRA attached only the adapter's (the base stays frozen). A trainable model decodes from its
   * plain parameters ({@link #setReorderedWeights}); call it before other threads decode with this model.
   */
  public void setTrainable(boolean trainable) {
    this.trainable = trainable;
    // copies made before a spell of training must not outlive it, even if no forward ran in between
    weightsChanged();
    for (Parameter p : named.values()) {
      p.freeze(!trainable || !lora.isEmpty());
    }
    for (Parameter p : lora.values()) {
      p.freeze(!trainable);
    }
  }

  /** The parameters a learner trains: the LoRA adapter's when one is attached, else all of them. */
  public Map<String, Parameter> trainableParameters() {
    return Collections.unmodifiableMap(lora.isEmpty() ? named : lora);
  }

  /**
   * Attaches a fresh LoRA adapter to the modules {@code settings} targets, as PEFT initializes one: {@code A}
   * uniform in {@code +-1/sqrt(in)} (Kaiming-uniform with {@code a = sqrt(5)}), {@code B} zero, so the model's
   * outputs are unchanged until B is trained. The base parameters are frozen from then on.
   */
  public void attachLora(PeftAdapter.Settings settings, long seed) {
    SplittableRandom rng = new SplittableRandom(seed);
    List<PeftAdapter.Module> modules = new ArrayList<>();
    for (String module : settings.modules(config)) {
      long[] shape = loraShape(module);
      int r = settings.rankOf(module);
      float[] a = new float[(int) (r * shape[1])];
      double bound = 1 / Math.sqrt(shape[1]);
      for (int i = 0; i < a.length; i++) {
        a[i] = (float) ((2 * rng.nextDouble() - 1) * bound);
      }
      modules.add(new PeftAdapter.Module(module, new HostTensor("lora_A", new long[] {r, shape[1]}, a),
          new HostTensor("lora_B", new long[] {shape[0], r}, new float[(int) (shape[0] * r)]),
          settings.scalingOf(module)));
    }
    attachLora(new PeftAdapter(settings, modules));
  }

  /**
   * Attaches a LoRA adapter with the given values (to continue training one, or to run base + adapter without
   * merging). The base parameters are frozen from then on; generation with a cache runs op by op. Call it before
   * the model is made trainable and before other threads use it (forwards read the adapter without locking).
   */
  public synchronized void attachLora(PeftAdapter adapter) {
    if (config.latent() != null) {
      throw new IllegalArgumentException("LoRA on a model with multi-head latent attention (" + config.architecture()
          + ") is not supported: its projections (q_a_proj, kv_b_proj, ...) are not LoRA targets yet");
    }
    if (!lora.isEmpty()) {
      throw new IllegalStateException("a LoRA adapter is already attached");
    }
    for (Parameter p : named.values()) {
      if (p.requiresGradient()) {
        // a learner built before would hold the base's parameters in its optimizer and never see the adapter's
        throw new IllegalStateException("attach LoRA before the model is made trainable (before building a learner)");
      }
    }
    for (PeftAdapter.Module module : adapter.modules().values()) { // all checked before anything changes
      long[] shape = loraShape(module.name());
      if (module.b().shape()[0] != shape[0] || module.a().shape()[1] != shape[1]) {
        throw new IllegalArgumentException("LoRA module " + module.name() + ": B @ A is [" + module.b().shape()[0]
            + ", " + module.a().shape()[1] + "] but the layer is [" + shape[0] + ", " + shape[1] + "]");
      }
    }
    Map<Integer, LoraPart[]> attention = new java.util.TreeMap<>();
    Map<Integer, LoraPart[]> mlp = new java.util.TreeMap<>();
    NDManager m = manager.newSubManager();
    m.setName("lora");
    for (PeftAdapter.Module module : adapter.modules().values()) {
      String[] parts = module.name().split("\\.");
      int layer = Integer.parseInt(parts[2]);
      String proj = parts[4];
      Parameter a = loraParameter(module.name() + ".lora_A.weight", module.a(), m);
      Parameter b = loraParameter(module.name() + ".lora_B.weight", module.b(), m);
      LoraPart part = new LoraPart(a, b, module.scaling(), adapter.settings().dropout(), precision);
      loraModules.put(module.name(), part);
      int at = PeftAdapter.LINEAR_MODULES.indexOf(proj);
      if (at < 4) {
        attention.computeIfAbsent(layer, k -> new LoraPart[4])[at] = part;
      } else {
        mlp.computeIfAbsent(layer, k -> new LoraPart[3])[at - 4] = part;
      }
    }
    attention.forEach((i, parts) -> layers.get(i).attention().setLora(parts));
    mlp.forEach((i, parts) -> layers.get(i).mlp().setLora(parts));
    loraSettings = adapter.settings();
    for (Parameter p : named.values()) {
      p.freeze(true);
    }
  }

  /**
   * Makes this (rollout) model take adapter-only versions: from now on {@link #loadParameters} accepts a LoRA
   * adapter's tensors under PEFT's names for the modules {@code settings} targets, and computes as base + adapter,
   * merged into its weights or as side products. Until the first adapter arrives it computes as the base.
   *
   * @param settings the learner's adapter settings (rank, alpha, targets)
   * @param how merged into the weights, or side products per forward
   */
  public synchronized void takeAdapterUpdates(PeftAdapter.Settings settings, AdapterUpdates how) {
    if (mergedLora != null || !lora.isEmpty()) {
      throw new IllegalStateException("this model already takes a LoRA adapter");
    }
    if (how == AdapterUpdates.MERGED) {
      mergedLora = new MergedLora(config, settings, named, manager);
    } else {
      loraType = precision.weights(); // nothing trains here: no cast of A and B in every forward
      attachLora(settings, 0); // B = 0: the base's outputs until the first version arrives
    }
    takesAdapters = true;
  }

  /**
   * The tensors a rollout model needs for a new policy version, in float32 under their map keys: the attached
   * adapter's alone (PEFT's names; for a model that {@linkplain #takeAdapterUpdates takes adapter updates}) when one
   * is attached, else every parameter.
   */
  public Map<String, HostTensor> policyUpdate() {
    if (lora.isEmpty()) {
      return toHostTensors();
    }
    Map<String, HostTensor> out = new LinkedHashMap<>();
    lora.forEach((name, p) -> out.put(name, hostCopy(name, p)));
    return out;
  }

  /**
   * The weights the model computes with, in internal names: the parameters, with the attached LoRA adapter merged
   * into them (what a rollout engine without the adapter needs to generate as this model does).
   */
  public Map<String, HostTensor> effectiveHostTensors() {
    Map<String, HostTensor> base = toHostTensors();
    PeftAdapter adapter = lora();
    return adapter == null ? base
        : WeightLayout.fromHuggingFace(config, adapter.mergeInto(config, WeightLayout.toHuggingFace(config, base)),
            "the policy with its LoRA adapter merged");
  }

  /**
   * Overwrites the attached adapter's values (resuming a run). Call it with gradients off; the adapter must name
   * the attached modules with the same shapes.
   */
  public void setLoraValues(PeftAdapter adapter) {
    if (loraModules.isEmpty()) {
      throw new IllegalStateException("no LoRA adapter is attached");
    }
    if (!loraModules.keySet().equals(adapter.modules().keySet())) {
      throw new IllegalArgumentException("the adapter's modules " + adapter.modules().keySet()
          + " differ from the attached ones " + loraModules.keySet());
    }
    Map<String, HostTensor> values = new LinkedHashMap<>();
    for (PeftAdapter.Module m : adapter.modules().values()) {
      double attached = loraModules.get(m.name()).scaling();
      if (Math.abs(m.scaling() - attached) > 1e-12 * attached) {
        throw new IllegalArgumentException("LoRA module " + m.name() + ": the adapter's scaling " + m.scaling()
            + " differs from the attached one " + attached + " (lora_alpha or r changed)");
      }
      values.put(PREFIX_LORA + m.name() + ".lora_A.weight", m.a());
      values.put(PREFIX_LORA + m.name() + ".lora_B.weight", m.b());
    }
    write(lora, values);
  }

  /**
   * Runs {@code task} with the attached adapter switched off, so the model computes as its base (PEFT's
   * {@code disable_adapter}): a LoRA learner's KL reference without a second copy of the base. Only for the thread
   * that owns the model: the switch is the model's, not the thread's.
   */
  public <T> T withoutAdapter(java.util.function.Supplier<T> task) {
    loraModules.values().forEach(p -> p.setEnabled(false));
    try {
      return task.get();
    } finally {
      loraModules.values().forEach(p -> p.setEnabled(true));
    }
  }

  /** Whether a LoRA adapter is attached. */
  public boolean hasLora() {
    return !lora.isEmpty();
  }

  /** The attached adapter's current values (float32), or null when none is attached. */
  public PeftAdapter lora() {
    if (lora.isEmpty()) {
      return null;
    }
    List<PeftAdapter.Module> modules = new ArrayList<>();
    loraModules.forEach((module, part) -> modules.add(new PeftAdapter.Module(module,
        hostCopy(part.a().getName(), part.a()), hostCopy(part.b().getName(), part.b()), part.scaling())));
    return new PeftAdapter(loraSettings, modules);
  }

  /** A parameter's values on the host, as float32 whatever its type, under its map key. */
  private HostTensor hostCopy(String name, Parameter p) {
    NDArray a = p.getArray();
    float[] data;
    if (Precision.typeOf(a) == DataType.FLOAT32) {
      data = a.toFloatArray();
    } else {
      try (NDManager scratch = manager.newSubManager()) {
        data = Bf16Casts.cast(a, DataType.FLOAT32, scratch).toFloatArray();
      }
    }
    return new HostTensor(name, a.getShape().getShape(), data);
  }

  /** A LoRA matrix as a (frozen) parameter named {@code base_model.model.<tensor>}, registered in {@link #lora}. */
  private Parameter loraParameter(String tensor, HostTensor values, NDManager m) {
    String name = PREFIX_LORA + tensor;
    Parameter p = Parameter.builder().setName(name).setType(Parameter.Type.WEIGHT).build();
    // float32 whatever the base's type (an adapter trains in float32 over a bfloat16 base as over float32
    // masters), except on a rollout model taking side products
    p.setArray(hostToDevice(m, values, loraType));
    p.freeze(true);
    lora.put(name, p);
    return p;
  }

  /** {@code [out, in]} of a projection module ({@code model.layers.N.self_attn.q_proj}, ...). */
  private long[] loraShape(String module) {
    String[] parts = module.split("\\.");
    if (parts.length != 5 || !parts[0].equals("model") || !parts[1].equals("layers")
        || !PeftAdapter.LINEAR_MODULES.contains(parts[4])) {
      throw new IllegalArgumentException("LoRA module '" + module + "' is not a projection of a decoder block "
          + "(model.layers.N.self_attn.{q,k,v,o}_proj or model.layers.N.mlp.{gate,up,down}_proj)");
    }
    int layer = Integer.parseInt(parts[2]);
    if (layer < 0 || layer >= config.numLayers()) {
      throw new IllegalArgumentException("LoRA module '" + module + "': the model has " + config.numLayers()
          + " layers");
    }
    if (config.isSparse(layer) && !PeftAdapter.ATTENTION_MODULES.contains(parts[4])) {
      throw new IllegalArgumentException("LoRA module '" + module + "': layer " + layer + "'s MLP is a mixture of "
          + "experts, and LoRA on experts is not supported (adapt its attention projections)");
    }
    long d = config.hiddenSize();
    long q = (long) config.numHeads() * config.headDim();
    long kv = (long) config.numKvHeads() * config.headDim();
    long inner = config.intermediateSize();
    return switch (parts[4]) {
      case "q_proj" -> new long[] {q, d};
      case "k_proj", "v_proj" -> new long[] {kv, d};
      case "o_proj" -> new long[] {d, q};
      case "gate_proj", "up_proj" -> new long[] {inner, d};
      default -> new long[] {d, inner};
    };
  }

  /** Copies the parameters to host memory (internal names), as float32 whatever the parameters' type. */
  public Map<String, HostTensor> toHostTensors() {
    Map<String, HostTensor> out = new LinkedHashMap<>();
    for (var e : named.entrySet()) {
      out.put(e.getKey(), hostCopy(e.getKey(), e.getValue()));
    }
    return out;
  }

  /** The parameters in Hugging Face naming (separate q/k/v and gate/up). */
  public Map<String, HostTensor> toHuggingFace() {
    return WeightLayout.toHuggingFace(config, toHostTensors());
  }

  /**
   * Overwrites parameters in place with new values (for example a newer policy version). Call it with gradients
   * off on the calling thread; every tensor must match its parameter's shape. A model that {@linkplain
   * #takeAdapterUpdates takes adapter updates} (or has an adapter attached) is given adapter tensors (PEFT's names)
   * instead, all of them at once: paired by {@link PeftAdapter#of}, then merged or written as
   * {@link #setLoraValues}.
   */
  public void loadParameters(Map<String, HostTensor> weights) {
    try {
      load(weights);
    } finally {
      weightsChanged(); // also after a refused version: a merge may have failed half way
    }
  }

  /**
   * Tells the model its parameters were written from outside it ({@link #loadParameters}, which every policy version
   * goes through, merged adapters included, tells it itself): copies derived from them for decoding are remade
   * before the next forward.
   */
  public void weightsChanged() {
    weightsEpoch.incrementAndGet();
  }

  private void load(Map<String, HostTensor> weights) {
    Map<String, HostTensor> byName = new LinkedHashMap<>();
    boolean adapter = false;
    for (HostTensor t : weights.values()) {
      byName.put(t.name(), t);
      adapter |= t.name().startsWith(PREFIX_LORA);
    }
    if (!adapter) {
      if (takesAdapters && !byName.isEmpty()) {
        throw new IllegalArgumentException("this model takes adapter-only versions (base weights frozen), but was "
            + "given full weights (" + byName.keySet().iterator().next() + ", ...)");
      }
      write(named, byName);
    } else if (mergedLora != null || !lora.isEmpty()) {
      PeftAdapter version;
      try {
        version = PeftAdapter.of(mergedLora != null ? mergedLora.settings() : loraSettings, byName.values(),
            "an adapter-only version");
      } catch (ModelFormatException e) {
        throw new IllegalArgumentException(e.getMessage(), e);
      }
      if (mergedLora != null) {
        mergedLora.apply(version);
      } else {
        setLoraValues(version);
      }
    } else {
      throw new IllegalArgumentException("'" + byName.keySet().stream().filter(n -> n.startsWith(PREFIX_LORA))
          .findFirst().orElseThrow() + "' is a LoRA adapter tensor, but this model takes no adapter");
    }
  }

  /**
   * Overwrites {@code targets} (by name) in place with {@code values}; every name and shape is checked before
   * anything is written.
   */
  private void write(Map<String, Parameter> targets, Map<String, HostTensor> values) {
    for (var e : values.entrySet()) {
      Parameter p = targets.get(e.getKey());
      if (p == null) {
        throw new IllegalArgumentException("unknown parameter '" + e.getKey() + "'");
      }
      if (!new Shape(e.getValue().shape()).equals(p.getShape())) {
        throw new IllegalArgumentException("parameter '" + e.getKey() + "' has shape "
            + new Shape(e.getValue().shape()) + ", expected " + p.getShape());
      }
    }
    for (var e : values.entrySet()) {
      NDArray p = targets.get(e.getKey()).getArray();
      DataType type = Precision.typeOf(p);
      if (type == DataType.FLOAT32) {
        p.set(FloatBuffer.wrap(e.getValue().data()));
      } else {
        try (NDManager scratch = manager.newSubManager()) {
          Ops.writeAlong(p, hostToDevice(scratch, e.getValue(), type), 0, 0); // rounds to nearest even
        }
      }
    }
  }

  /** Longest sequence (prompt plus completion) the rotary tables cover. */
  public int maxPositions() {
    return rope.maxPositions();
  }

  /**
   * Runs the decoder over {@code T} new tokens of each sequence. Logits are float32 in every precision.
   *
   * @param tokens int64 {@code [B, T]}; every result lives in its manager
   * @param positions int64 {@code [B, T]}: the rotary position of each token
   * @param mask additive {@code [B or 1, 1, T, S]} where S counts cached plus new positions (0 = attend)
   * @param cache the batch's cache (appended to and advanced by T), or null
   * @param lastOnly return logits of the last position only ({@code [B, 1, V]}) instead of all ({@code [B, T, V]})
   */
  public NDArray forward(NDArray tokens, NDArray positions, NDArray mask, KvCache cache, boolean lastOnly) {
    return forward(tokens, positions, mask, cache, lastOnly, null);
  }

  /**
   * {@link #forward(NDArray, NDArray, NDArray, KvCache, boolean)} whose sparse layers record or replay their expert
   * choices in {@code routing} (null: the routers choose, nothing is recorded; ignored by a dense model).
   */
  public NDArray forward(NDArray tokens, NDArray positions, NDArray mask, KvCache cache, boolean lastOnly,
      Routing routing) {
    DecodeScript script = cache == null || JniUtils.isGradMode() ? null : decodeScript();
    if (cache != null && tokens.getShape().get(0) != cache.decodedRows()) {
      throw new IllegalArgumentException("the forward has " + tokens.getShape().get(0) + " rows, the cache decodes "
          + cache.decodedRows() + " (KvCache.readInBlocks)");
    }
    if (script != null) {
      NDManager step = tokens.getManager();
      int t = (int) tokens.getShape().get(1);
      cache.requireRoom(t); // the script's slices would stop at the capacity instead
      NDArray[] masks = layerMasks(precision.fromFloat32(mask, step), t, step);
      NDArray logits = script.forward(tokens, positions, masks, cache, lastOnly, weightsEpoch.get());
      cache.advance(t);
      return logits;
    }
    if (cache != null && cache.leavesRowsOut()) {
      throw new IllegalStateException("blocks of a cache's rows that leave rows out are decoded by the compiled "
          + "decode step only (this forward runs eagerly: decodesScripted() is false)");
    }
    NDArray x = hidden(tokens, positions, mask, cache, routing);
    if (lastOnly) {
      long t = x.getShape().get(1);
      x = Ops.slice(x, 1, t - 1, t, tokens.getManager());
    }
    return headLogits(norm.apply(x));
  }

  /**
   * Whether generation with a KV cache runs as one TorchScript call per forward ({@link DecodeScript}, the default)
   * or op by op through DJL (the eager blocks training uses). Both give the same logits (to rounding where the script
   * reads {@linkplain #setReorderedWeights reordered copies}); the switch exists to compare them ({@code bench
   * generate --decode}).
   */
  public synchronized void setScriptedDecode(boolean scripted) {
    this.scriptedDecode = scripted;
  }

  /**
   * Whether the compiled decode step on the CPU multiplies large matrices through oneDNN-layout copies of them (the
   * default; {@link ReorderedWeights}: about 1.6x the speed of a d=512 step, one extra copy of those matrices in
   * memory) or the plain parameters. A trainable model never uses copies. The switch exists to compare the two
   * ({@code bench generate --reorder-weights}) and to save the memory. Set it (as {@link #setTrainable}) before other
   * threads decode with this model: a change replaces the compiled step, which a running forward may be using.
   */
  public synchronized void setReorderedWeights(boolean reorder) {
    this.reorderWeights = reorder;
  }

  /** How many weight matrices the compiled decode step reads from reordered copies now (0: none, or eager). */
  public int reorderedMatrices() {
    DecodeScript script = decodeScript();
    return script == null ? 0 : script.reorderedMatrices();
  }

  /**
   * Whether a forward with a KV cache (and no autograd) runs the compiled decode step (not with eager decoding
   * chosen, mixed precision, LoRA side products, mixtures of experts or latent attention).
   */
  public boolean decodesScripted() {
    return decodeScript() != null;
  }

  /**
   * The compiled decode step, made on first use; null when eager decoding is chosen, the precision is mixed, or the
   * model has mixture-of-experts layers or latent attention (not scripted: they decode op by op).
   */
  private synchronized DecodeScript decodeScript() {
    if (!scriptedDecode || !lora.isEmpty() || precision.weights() != precision.compute() || manager == null
        || config.moe() != null || config.latent() != null) {
      return null;
    }
    boolean reorder = reorderWeights && !trainable;
    if (decodeScript != null && decodeScript.reorders() != reorder) {
      decodeScript.close();
      decodeScript = null;
    }
    if (decodeScript == null) {
      decodeScript = new DecodeScript(config, precision, layers, embed, norm.weight(), head, layerRopes, reorder,
          manager);
    }
    return decodeScript;
  }

  /** The output head over final hidden states, as float32 logits. */
  private NDArray headLogits(NDArray normed) {
    NDManager m = normed.getManager();
    NDArray logits = Linear.linear(normed, precision.weight(head == null ? embed : head, m)).singletonOrThrow();
    NDArray wide = precision.toFloat32(logits, m);
    if (wide != logits) {
      logits.close();
    }
    return wide;
  }

  /**
   * Repeats a {@code [B, 1, T, S]} mask for the G query heads that attention folds into its row axis
   * ({@code [B, 1, G*T, S]}, rows ordered by head, then position). A one-row mask broadcasts as it is.
   */
  static NDArray groupRows(NDArray mask, int group) {
    return group == 1 || mask.getShape().get(2) == 1 ? mask : mask.tile(new long[] {1, 1, group, 1});
  }

  /** The decoder layers over the new tokens (before the final norm); appends to and advances the cache. */
  private NDArray hidden(NDArray tokens, NDArray positions, NDArray mask, KvCache cache, Routing routing) {
    NDArray[] masks = layerMasks(precision.fromFloat32(mask, tokens.getManager()), (int) tokens.getShape().get(1),
        tokens.getManager());
    return hidden(tokens, positions, masks, null, cache, routing);
  }

  /**
   * The decoder layers over {@code tokens}, each attending with its mask, or (where {@code shared} is given) within
   * the rows of that packed sequence.
   */
  private NDArray hidden(NDArray tokens, NDArray positions, NDArray[] masks, SharedPromptRows shared, KvCache cache,
      Routing routing) {
    NDManager step = tokens.getManager();
    NDArray rows = Embedding.embedding(tokens, embed.getArray(), SparseFormat.DENSE).singletonOrThrow();
    // rows of the embedding in its parameters' type; under mixed precision cast here, not the whole table
    NDArray x = precision.weights() == precision.compute() ? rows : precision.fromFloat32(rows, step);
    Map<Rope, Rope.Angles> angles = new java.util.IdentityHashMap<>();
    boolean training = cache == null && JniUtils.isGradMode();
    for (int i = 0; i < layers.size(); i++) {
      NDArray mask = masks == null ? null : masks[i];
      SharedPromptRows.Layer rowsOf = shared == null ? null
          : shared.layer(config.slidingWindows()[i], config.groupSize(), precision);
      if (training) {
        // each layer's intermediates live in their own manager, closed when the layer is done: autograd keeps
        // what backward needs, so a training step holds about what PyTorch would, not every temporary of the
        // whole forward pass until the step ends
        try (NDManager scope = step.newSubManager()) {
          NDArray in = x.reshape(x.getShape()); // an alias of x owned by the scope, so results land there too
          in.attach(scope);
          NDArray out = layers.get(i).apply(in, anglesOf(i, angles, positions), mask, null, routing, rowsOf, scope);
          out.attach(step);
          x = out;
        }
      } else {
        x = layers.get(i).apply(x, anglesOf(i, angles, positions), mask, cache, routing, rowsOf, step);
      }
    }
    if (cache != null) {
      cache.advance((int) tokens.getShape().get(1));
    }
    return x;
  }

  /** Layer i's rotary angles for the positions, computed once per distinct rotary table. */
  private Rope.Angles anglesOf(int i, Map<Rope, Rope.Angles> cache, NDArray positions) {
    return cache.computeIfAbsent(layerRopes[i], r -> r.angles(positions));
  }

  /**
   * Each layer's additive mask, grouped for its query heads: the given mask for full-attention layers, and for a
   * sliding-window layer also every key {@code w} or more positions before its query masked. The T queries are the
   * last T of the S key columns (with a KV cache, the cached ones come first); within a row positions and columns
   * differ by the row's padding, so the window can be measured in columns.
   */
  private NDArray[] layerMasks(NDArray mask, int t, NDManager step) {
    NDArray full = groupRows(mask, config.groupSize());
    NDArray[] out = new NDArray[layers.size()];
    Map<Integer, NDArray> windowed = new java.util.HashMap<>();
    int s = (int) mask.getShape().get(3);
    for (int i = 0; i < out.length; i++) {
      int w = config.slidingWindows()[i];
      // a window as wide as the columns masks nothing (Mistral's 32k window on short sequences)
      out[i] = w == 0 || w >= s ? full : windowed.computeIfAbsent(w, x -> {
        float[] band = new float[t * s];
        for (int q = 0; q < t; q++) {
          int column = s - t + q;
          for (int k = 0; k <= column - x; k++) {
            band[q * s + k] = MASKED;
          }
        }
        NDArray b = precision.fromFloat32(step.create(band, new Shape(1, 1, t, s)), step);
        return groupRows(mask.add(b), config.groupSize());
      });
    }
    return out;
  }

  /**
   * Final hidden states {@code [B, T, d]} (after the last norm, before the output head) of right-padded sequences,
   * as float32: what a sequence classifier's score head reads.
   */
  public NDArray hiddenStates(NDArray tokens) {
    NDManager m = tokens.getManager();
    int t = (int) tokens.getShape().get(1);
    return precision.toFloat32(norm.apply(hidden(tokens, positions(tokens), causalMask(m, t), null, null)), m);
  }

  /** Positions 0..T-1 for every row of right-padded {@code tokens}, checked against the rotary tables. */
  private NDArray positions(NDArray tokens) {
    long b = tokens.getShape().get(0);
    int t = (int) tokens.getShape().get(1);
    requireWithinPositions(t);
    return tokens.getManager().arange(0L, (long) t, 1L, DataType.INT64).reshape(1, t).repeat(0, b);
  }

  /** Logits {@code [B, T, V]} of right-padded sequences (positions 0..T-1, causal attention). */
  public NDArray logits(NDArray tokens) {
    return logits(tokens, null);
  }

  /** {@link #logits(NDArray)} with the sparse layers' expert choices recorded or replayed in {@code routing}. */
  public NDArray logits(NDArray tokens, Routing routing) {
    return forward(tokens, positions(tokens), causalMask(tokens.getManager(), (int) tokens.getShape().get(1)), null,
        false, routing);
  }

  /** An additive causal mask {@code [1, 1, T, T]}. */
  public static NDArray causalMask(NDManager m, int t) {
    float[] mask = new float[t * t];
    for (int i = 0; i < t; i++) {
      for (int j = i + 1; j < t; j++) {
        mask[i * t + j] = MASKED;
      }
    }
    return m.create(mask, new Shape(1, 1, t, t));
  }

  /**
   * Per-token log-probs of given sequences under this model, in one batched forward pass that autograd can
   * differentiate (when gradients are on for this thread and the model is trainable).
   *
   * <p>Entry {@code [b, t]} is {@code log softmax(logits[b, t] / temperature)[tokens[b][t + 1]]}: the log-prob of
   * token {@code t + 1} given the tokens before it. Rows are right-padded with token 0; entries past a row's end
   * are meaningless and must be masked by the caller (the learner's completion mask does that).
   *
   * @param m the manager that owns the inputs and results
   * @param sequences token ids, prompt plus completion, each at least 2 long
   * @param temperature the sampling temperature the behaviour log-probs used (1 for none)
   * @return {@code [B, Tmax - 1]} float32
   */
  public NDArray tokenLogProbs(NDManager m, int[][] sequences, float temperature) {
    NDArray tokens = paddedTokens(m, sequences);
    return selectLogProbs(logits(tokens), tokens, temperature);
  }

  /**
   * The next-token distributions at chosen positions of right-padded rows, for training: entry {@code i} is
   * {@code log softmax(logits[b, t] / temperature)} where {@code positions[i] = b * T + t}. Only the chosen
   * positions' hidden states go through the output head, so scoring a completion costs its own tokens, not the
   * prompt's or the padding's, and no full {@code [B, T, V]} logits tensor is made.
   *
   * @param tokens int64 {@code [B, T]}; every result lives in its manager
   * @param positions int64 {@code [N]} flat indices into {@code [B, T]}
   * @param temperature the sampling temperature the behaviour log-probs used (1 for none)
   * @return {@code [N, V]} float32, differentiable when gradients are on and the model is trainable
   */
  public NDArray logSoftmaxAt(NDArray tokens, NDArray positions, float temperature) {
    return logSoftmaxAt(tokens, positions, temperature, null);
  }

  /**
   * {@link #logSoftmaxAt(NDArray, NDArray, float)} whose sparse layers record or replay their expert choices in
   * {@code routing} (the tokens in {@code [B, T]} order; null: the routers choose).
   */
  public NDArray logSoftmaxAt(NDArray tokens, NDArray positions, float temperature, Routing routing) {
    requirePositive(temperature);
    NDManager m = tokens.getManager();
    int t = (int) tokens.getShape().get(1);
    return logSoftmaxOf(hidden(tokens, positions(tokens), causalMask(m, t), null, routing), positions, temperature);
  }

  /**
   * The next-token distributions that score the completions of shared-prompt rows, for training: entry {@code i}
   * is {@code log softmax(logits / temperature)} at {@code rows.scored()[i]} (its completion token is
   * {@code rows.targets()[i]}). Each distinct prompt runs once for all its samples; the result equals {@link
   * #logSoftmaxAt(NDArray, NDArray, float, Routing)} over the same samples as right-padded rows, to rounding.
   *
   * @param routing the sparse layers' expert choices, recorded or replayed, for the packed tokens in order (null:
   *     the routers choose)
   * @return {@code [M, V]} float32, differentiable when gradients are on and the model is trainable
   */
  public NDArray logSoftmaxAt(SharedPromptRows rows, float temperature, Routing routing) {
    requirePositive(temperature);
    requireWithinPositions(rows.longestSequence());
    NDArray h = hidden(rows.tokens(), rows.positions(), null, rows, null, routing);
    return logSoftmaxOf(h, rows.scored(), temperature);
  }

  private void requireWithinPositions(int tokens) {
    if (tokens > rope.maxPositions()) {
      throw new IllegalArgumentException("sequence of " + tokens + " tokens exceeds max_position_embeddings "
          + rope.maxPositions());
    }
  }

  private static void requirePositive(float temperature) {
    if (!(temperature > 0)) {
      throw new IllegalArgumentException("temperature must be positive for scoring, got " + temperature);
    }
  }

  /** {@code log softmax} of the output head over the hidden states {@code h} at flat indices {@code at}. */
  private NDArray logSoftmaxOf(NDArray h, NDArray at, float temperature) {
    NDArray rows = Embedding.embedding(at, h.reshape(-1, config.hiddenSize()), SparseFormat.DENSE)
        .singletonOrThrow();
    NDArray logits = headLogits(norm.apply(rows));
    NDArray scaled = temperature == 1f ? logits : Ops.div(logits, temperature);
    NDArray out = scaled.logSoftmax(-1);
    // backward needs neither full-vocabulary input (log-softmax keeps its output, the head its input rows):
    // closing the handles frees them now rather than when the step's manager closes
    if (scaled != logits) {
      scaled.close();
    }
    logits.close();
    return out;
  }

  /** Picks {@code logSoftmax[i, targets[i]]}: {@code [N, V]} and int64 {@code [N]} give {@code [N]}. */
  public static NDArray pick(NDArray logSoftmax, NDArray targets) {
    return logSoftmax.gather(targets.expandDims(-1), 1).squeeze(-1);
  }

  /** Log-probs of {@code tokens[:, 1:]} under {@code logits[:, :-1]} at a temperature; {@code [B, T-1]}. */
  public static NDArray selectLogProbs(NDArray logits, NDArray tokens, float temperature) {
    return gatherTargets(shiftedLogSoftmax(logits, tokens.getManager(), temperature), tokens);
  }

  /**
   * {@code log softmax(logits[:, :-1] / temperature)}: the next-token distributions {@code [B, T-1, V]} that
   * predict {@code tokens[:, 1:]} (results in {@code m}).
   */
  public static NDArray shiftedLogSoftmax(NDArray logits, NDManager m, float temperature) {
    requirePositive(temperature);
    long t = logits.getShape().get(1);
    NDArray scaled = temperature == 1f ? logits : Ops.div(logits, temperature);
    return Ops.slice(scaled, 1, 0, t - 1, m).logSoftmax(-1);
  }

  /** Picks {@code logProbs[b, t, tokens[b, t + 1]]} from shifted log-probs {@code [B, T-1, V]}. */
  public static NDArray gatherTargets(NDArray logProbs, NDArray tokens) {
    NDManager m = tokens.getManager();
    long t = tokens.getShape().get(1);
    NDArray targets = Ops.slice(tokens, 1, 1, t, m).expandDims(-1);
    return logProbs.gather(targets, 2).squeeze(-1);
  }

  /** Right-pads token rows with 0 into an int64 {@code [B, Tmax]} array. */
  public static NDArray paddedTokens(NDManager m, int[][] sequences) {
    int t = 0;
    for (int[] s : sequences) {
      t = Math.max(t, s.length);
    }
    if (t < 2) {
      throw new IllegalArgumentException("sequences to score need at least 2 tokens");
    }
    long[] flat = new long[sequences.length * t];
    for (int b = 0; b < sequences.length; b++) {
      for (int i = 0; i < sequences[b].length; i++) {
        flat[b * t + i] = sequences[b][i];
      }
    }
    return m.create(flat, new Shape(sequences.length, t));
  }

  @Override
  protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> p) {
    return new NDList(logits(inputs.singletonOrThrow()));
  }

  @Override
  protected void initializeChildBlocks(NDManager m, DataType dataType, Shape... inputShapes) {
    Shape hidden = new Shape(inputShapes[0].get(0), inputShapes[0].get(1), config.hiddenSize());
    for (var child : getChildren().values()) {
      child.initialize(m, dataType, hidden);
    }
  }

  @Override
  public Shape[] getOutputShapes(Shape[] inputShapes) {
    return new Shape[] {new Shape(inputShapes[0].get(0), inputShapes[0].get(1), config.vocabSize())};
  }

  @Override
  public synchronized void close() {
    if (mergedLora != null) {
      mergedLora.close();
      mergedLora = null;
    }
    if (decodeScript != null) {
      decodeScript.close();
      decodeScript = null;
    }
    if (manager != null) {
      manager.close();
      manager = null;
    }
  }
}
