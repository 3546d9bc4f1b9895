package dev.nucleon.model.lora;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nucleon.model.LlamaConfig;
import dev.nucleon.model.ModelFormatException;
import dev.nucleon.model.io.HostTensor;
import dev.nucleon.model.io.Safetensors;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * A LoRA adapter in PEFT's layout: a folder with {@code adapter_config.json} and {@code adapter_model.safetensors}.
 *
 * <p>For each adapted linear layer {@code W [out, in]} (a module such as
 * {@code model.layers.0.self_attn.q_proj}) the file holds {@code base_model.model.<module>.lora_A.weight [r, in]}
 * and {@code base_model.model.<module>.lora_B.weight [out, r]}, and the layer computes
 * {@code W x + scaling * B A x} with {@code scaling = lora_alpha / r} ({@code lora_alpha / sqrt(r)} with
 * {@code use_rslora}); {@code rank_pattern} and {@code alpha_pattern} give single modules their own r and alpha.
 * Merging writes {@code W + scaling * (B @ A)} into the weight, as PEFT's {@code merge_and_unload} does.
 *
 * <p>What this loader does not apply is refused by name rather than ignored: DoRA, trained biases, modules saved
 * whole ({@code modules_to_save}), initializations that rewrote the base (PiSSA, OLoRA, LoftQ, ...), PEFT's other
 * LoRA variants, embedding adapters. Tensor names may lack the {@code base_model.model.} prefix (transformers'
 * own adapter saving writes them so).
 */
public final class PeftAdapter {

  public static final String CONFIG = "adapter_config.json";
  public static final String WEIGHTS = "adapter_model.safetensors";

  /** The linear layers of a decoder block, by the names PEFT's {@code target_modules} use. */
  public static final List<String> LINEAR_MODULES =
      List.of("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj");

  public static final List<String> ATTENTION_MODULES = List.of("q_proj", "k_proj", "v_proj", "o_proj");
  private static final String PREFIX = "base_model.model.";
  private static final String A_SUFFIX = ".lora_A.weight";
  private static final String B_SUFFIX = ".lora_B.weight";
  private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

  /** PEFT settings that change what an adapted layer computes; an adapter with any of them set is refused. */
  private static final List<String> REFUSED_WHEN_SET = List.of("use_dora", "lora_bias", "modules_to_save",
      "layer_replication", "alora_invocation_tokens", "use_qalora", "use_bdlora", "arrow_config", "kasa_config",
      "velora_config", "monteclora_config", "target_parameters", "trainable_token_indices", "megatron_config");

  /** init_lora_weights values under which PEFT rewrites the base weights before training (PiSSA, OLoRA, ...). */
  private static final Pattern BASE_CHANGING_INIT = Pattern.compile("pissa.*|olora|corda|loftq|lora_ga");

  /**
   * One adapted linear layer.
   *
   * @param name the module, e.g. {@code model.layers.0.self_attn.q_proj} (its weight is {@code name + ".weight"})
   * @param a {@code lora_A}, {@code [r, in]}
   * @param b {@code lora_B}, {@code [out, r]}
   * @param scaling what {@code B A x} is multiplied by
   */
  public record Module(String name, HostTensor a, HostTensor b, double scaling) {

    public Module {
      if (a.shape().length != 2 || b.shape().length != 2 || a.shape()[0] != b.shape()[1]) {
        throw new ModelFormatException("LoRA module " + name + ": lora_A " + Arrays.toString(a.shape())
            + " and lora_B " + Arrays.toString(b.shape()) + " do not make [out, r] x [r, in]");
      }
    }

    public int rank() {
      return (int) a.shape()[0];
    }
  }

  /**
   * The settings PEFT's {@code LoraConfig} records that this project reads and writes.
   *
   * @param rank {@code r}
   * @param alpha {@code lora_alpha}
   * @param dropout {@code lora_dropout} (training only; merging ignores it)
   * @param rslora {@code use_rslora}: scaling {@code alpha / sqrt(r)}
   * @param targets {@code target_modules}: short module names, or {@code all-linear}
   * @param targetsAsString whether {@code target_modules} is one string (a regular expression, or
   *     {@code all-linear}, which PEFT expands only in this form) rather than a list
   * @param rankPattern per-module r, keyed by a regular expression on the module name's tail
   * @param alphaPattern per-module alpha, likewise
   * @param baseModel {@code base_model_name_or_path}, or null
   */
  public record Settings(int rank, double alpha, double dropout, boolean rslora, List<String> targets,
      boolean targetsAsString, Map<String, Integer> rankPattern, Map<String, Double> alphaPattern, String baseModel) {

    public Settings {
      if (rank < 1) {
        throw new IllegalArgumentException("LoRA rank must be at least 1, got " + rank);
      }
      if (!(alpha > 0)) {
        throw new IllegalArgumentException("LoRA alpha must be positive, got " + alpha);
      }
      if (!(dropout >= 0 && dropout < 1)) {
        throw new IllegalArgumentException("LoRA dropout must be in [0, 1), got " + dropout);
      }
      targets = List.copyOf(targets);
      if (targetsAsString && targets.size() != 1) {
        throw new IllegalArgumentException("a target_modules string is one entry, got " + targets);
      }
      rankPattern = Collections.unmodifiableMap(new LinkedHashMap<>(rankPattern));
      alphaPattern = Collections.unmodifiableMap(new LinkedHashMap<>(alphaPattern));
    }

    /** Plain settings: one rank and alpha for every target ({@code all-linear} alone is written as PEFT's string). */
    public static Settings of(int rank, double alpha, double dropout, List<String> targets) {
      return new Settings(rank, alpha, dropout, false, targets, targets.equals(List.of("all-linear")), Map.of(),
          Map.of(), null);
    }

    /** These settings naming the base model they adapt ({@code base_model_name_or_path}). */
    public Settings withBaseModel(String base) {
      return new Settings(rank, alpha, dropout, rslora, targets, targetsAsString, rankPattern, alphaPattern, base);
    }

    /** The rank of a module: its {@code rank_pattern} entry, else {@code r}. */
    public int rankOf(String module) {
      String key = patternKey(rankPattern.keySet(), module);
      return key == null ? rank : rankPattern.get(key);
    }

    /** The scaling of a module: alpha over r (or over sqrt(r) with rsLoRA), with its patterns applied. */
    public double scalingOf(String module) {
      String key = patternKey(alphaPattern.keySet(), module);
      double a = key == null ? alpha : alphaPattern.get(key);
      int r = rankOf(module);
      return rslora ? a / Math.sqrt(r) : a / r;
    }

    /**
     * The modules these targets name in a model of config {@code c}, in model order ({@code all-linear}: every
     * projection of every block; the output head is not a target, as in PEFT; in a mixture-of-experts layer only
     * the attention projections, since LoRA on experts is not built).
     */
    public List<String> modules(LlamaConfig c) {
      checkTargets(targets);
      if (c.latent() != null) {
        throw new IllegalArgumentException("LoRA on a model with multi-head latent attention (" + c.architecture()
            + ") is not supported: its projections (q_a_proj, kv_b_proj, ...) are not LoRA targets yet");
      }
      List<String> shortNames = targets.contains("all-linear") ? LINEAR_MODULES : targets;
      List<String> out = new ArrayList<>();
      for (int i = 0; i < c.numLayers(); i++) {
        for (String m : LINEAR_MODULES) {
          // a sparse layer's MLP is a mixture of experts: its experts are not adapted (attention still is)
          if (shortNames.contains(m) && (ATTENTION_MODULES.contains(m) || !c.isSparse(i))) {
            out.add("model.layers." + i + (ATTENTION_MODULES.contains(m) ? ".self_attn." : ".mlp.") + m);
          }
        }
      }
      return out;
    }
  }

  /**
   * Throws naming the first target that is neither {@code all-linear} nor a projection of {@link #LINEAR_MODULES},
   * or when there is none.
   */
  public static void checkTargets(List<String> targets) {
    for (String t : targets) {
      if (!t.equals("all-linear") && !LINEAR_MODULES.contains(t)) {
        throw new IllegalArgumentException("unknown LoRA target '" + t + "': expected all-linear or some of "
            + LINEAR_MODULES);
      }
    }
    if (targets.isEmpty()) {
      throw new IllegalArgumentException("LoRA targets are empty: name all-linear or some of " + LINEAR_MODULES);
    }
  }

  private final Settings settings;
  private final Map<String, Module> modules;

  /** An adapter of these modules (each module's rank must be the settings' rank for it). */
  public PeftAdapter(Settings settings, List<Module> modules) {
    if (modules.isEmpty()) {
      throw new IllegalArgumentException("a LoRA adapter needs at least one module");
    }
    this.settings = settings;
    Map<String, Module> byName = new LinkedHashMap<>();
    for (Module m : modules) {
      if (m.rank() != settings.rankOf(m.name())) {
        throw new ModelFormatException("LoRA module " + m.name() + " has rank " + m.rank() + " but the config "
            + "gives it r = " + settings.rankOf(m.name()));
      }
      if (byName.put(m.name(), m) != null) {
        throw new IllegalArgumentException("LoRA module " + m.name() + " given twice");
      }
    }
    this.modules = Collections.unmodifiableMap(byName);
  }

  public Settings settings() {
    return settings;
  }

  /** The adapted modules by name, in file order. */
  public Map<String, Module> modules() {
    return modules;
  }

  /**
   * Checks that this adapter is what {@code expected} would attach to a model of {@code config}: the same modules,
   * each with the same rank and scaling (what a rollout model merging adapter-only versions assumes).
   *
   * @throws IllegalArgumentException naming the first difference
   */
  public void requireLike(Settings expected, LlamaConfig config) {
    java.util.Set<String> want = new java.util.LinkedHashSet<>(expected.modules(config));
    if (!want.equals(modules.keySet())) {
      java.util.Set<String> missing = new java.util.TreeSet<>(want);
      missing.removeAll(modules.keySet());
      java.util.Set<String> extra = new java.util.TreeSet<>(modules.keySet());
      extra.removeAll(want);
      throw new IllegalArgumentException("the adapter adapts other modules than targets " + expected.targets()
          + " give" + (missing.isEmpty() ? "" : "; it lacks " + missing) + (extra.isEmpty() ? "" : "; it also has "
          + extra));
    }
    for (Module m : modules.values()) {
      double s = expected.scalingOf(m.name());
      if (m.rank() != expected.rankOf(m.name()) || Math.abs(m.scaling() - s) > 1e-12 * s) {
        throw new IllegalArgumentException("LoRA module " + m.name() + " has r = " + m.rank() + " and scaling "
            + m.scaling() + " in the adapter, but the settings give r = " + expected.rankOf(m.name())
            + " and scaling " + s + " (lora alpha / r)");
      }
    }
  }

  /**
   * The adapter's tensors under PEFT's names ({@code base_model.model.<module>.lora_A.weight}, {@code lora_B}), in
   * module order: as the weights file holds them, and as a policy version carries them to rollout models.
   */
  public Map<String, HostTensor> tensors() {
    Map<String, HostTensor> out = new LinkedHashMap<>();
    for (Module m : modules.values()) {
      out.put(PREFIX + m.name() + A_SUFFIX, m.a().renamed(PREFIX + m.name() + A_SUFFIX));
      out.put(PREFIX + m.name() + B_SUFFIX, m.b().renamed(PREFIX + m.name() + B_SUFFIX));
    }
    return out;
  }

  /** This adapter's matrices under other settings (the run's dropout and base model; the same ranks and scalings). */
  public PeftAdapter withSettings(Settings other) {
    return new PeftAdapter(other, List.copyOf(modules.values()));
  }

  /** Reads an adapter folder ({@code adapter_config.json} + {@code adapter_model.safetensors}). */
  public static PeftAdapter read(Path dir) {
    Path configFile = dir.resolve(CONFIG);
    if (!Files.isRegularFile(configFile)) {
      throw new ModelFormatException(dir + ": no " + CONFIG + " (expected a PEFT LoRA adapter folder)");
    }
    Settings settings;
    try {
      settings = settings(JSON.readTree(configFile.toFile()), configFile);
    } catch (IOException e) {
      throw new ModelFormatException(configFile + ": unreadable JSON: " + e.getMessage(), e);
    }
    Path weights = dir.resolve(WEIGHTS);
    if (!Files.isRegularFile(weights)) {
      throw new ModelFormatException(dir + ": no " + WEIGHTS + (Files.exists(dir.resolve("adapter_model.bin"))
          ? " (adapter_model.bin is a pickle, which is not read: save the adapter with safe_serialization=True)"
          : ""));
    }
    return of(settings, Safetensors.read(weights).values(), weights.toString());
  }

  /**
   * An adapter from its tensors under PEFT's names ({@code [base_model.model.]<module>.lora_A.weight} and
   * {@code lora_B}), paired by module, with the scalings {@code settings} give: as a weights file or a policy
   * version holds them.
   *
   * @param source what the tensors came from, for messages
   * @throws ModelFormatException naming a tensor that is not a LoRA matrix, or a module without its A or B
   */
  public static PeftAdapter of(Settings settings, java.util.Collection<HostTensor> tensors, String source) {
    Map<String, HostTensor[]> pairs = new LinkedHashMap<>();
    for (HostTensor t : tensors) {
      String n = t.name();
      boolean isA = n.endsWith(A_SUFFIX);
      // PeftModel.save_pretrained prefixes base_model.model.; transformers' own save of an adapter does not
      String bare = n.startsWith(PREFIX) ? n.substring(PREFIX.length()) : n;
      if (!(isA || n.endsWith(B_SUFFIX)) || bare.length() <= A_SUFFIX.length()) {
        throw new ModelFormatException(source + ": tensor '" + n + "' is not a LoRA matrix (expected "
            + PREFIX + "<module>" + A_SUFFIX + " or " + B_SUFFIX + "; embedding adapters, DoRA magnitudes and "
            + "saved modules are not supported)");
      }
      String module = bare.substring(0, bare.length() - A_SUFFIX.length());
      pairs.computeIfAbsent(module, k -> new HostTensor[2])[isA ? 0 : 1] = t;
    }
    if (pairs.isEmpty()) {
      throw new ModelFormatException(source + ": holds no LoRA matrices");
    }
    List<Module> modules = new ArrayList<>();
    for (var e : pairs.entrySet()) {
      HostTensor[] ab = e.getValue();
      if (ab[0] == null || ab[1] == null) {
        String has = ab[0] == null ? "lora_B" : "lora_A";
        String lacks = ab[0] == null ? "lora_A" : "lora_B";
        throw new ModelFormatException(source + ": module " + e.getKey() + " has " + has + " but no " + lacks);
      }
      modules.add(new Module(e.getKey(), ab[0], ab[1], settings.scalingOf(e.getKey())));
    }
    return new PeftAdapter(settings, modules);
  }

  /** Parses PEFT's config, refusing the features this loader would otherwise silently drop. */
  private static Settings settings(JsonNode c, Path file) {
    String type = c.path("peft_type").asText("");
    if (!type.equals("LORA")) {
      throw new ModelFormatException(file + ": peft_type is '" + type + "'; only LORA adapters are supported");
    }
    // set, each of these changes what the adapted layer computes (or the base weights it applies to) in ways a
    // merge of W + s B A would silently get wrong; fan_in_fan_out is ignored, as PEFT ignores it for nn.Linear
    for (String key : REFUSED_WHEN_SET) {
      JsonNode v = c.get(key);
      if (v != null && !v.isNull() && !(v.isBoolean() && !v.asBoolean()) && !(v.isContainerNode() && v.isEmpty())) {
        throw new ModelFormatException(file + ": " + key + " is set (" + v + "), which this loader cannot apply");
      }
    }
    String bias = c.path("bias").asText("none");
    if (!bias.equals("none")) {
      throw new ModelFormatException(file + ": bias is '" + bias + "'; adapters that train biases are not supported");
    }
    JsonNode init = c.get("init_lora_weights");
    if (init != null && init.isTextual() && BASE_CHANGING_INIT.matcher(init.asText()).matches()) {
      throw new ModelFormatException(file + ": init_lora_weights is '" + init.asText() + "', which rewrote the "
          + "base weights the adapter was trained on; merge it with PEFT against that changed base");
    }
    List<String> targets = new ArrayList<>();
    JsonNode t = c.get("target_modules");
    if (t != null && t.isArray()) {
      t.forEach(x -> targets.add(x.asText()));
    } else if (t != null && t.isTextual()) {
      targets.add(t.asText());
    }
    boolean targetsAsString = t != null && t.isTextual();
    Map<String, Integer> rankPattern = new LinkedHashMap<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = c.path("rank_pattern").fields(); it.hasNext(); ) {
      var e = it.next();
      rankPattern.put(e.getKey(), e.getValue().asInt());
    }
    Map<String, Double> alphaPattern = new LinkedHashMap<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = c.path("alpha_pattern").fields(); it.hasNext(); ) {
      var e = it.next();
      alphaPattern.put(e.getKey(), e.getValue().asDouble());
    }
    JsonNode base = c.get("base_model_name_or_path");
    try {
      // PEFT's LoraConfig defaults: r = 8, lora_alpha = 8, lora_dropout = 0
      return new Settings(c.path("r").asInt(8), c.path("lora_alpha").asDouble(8), c.path("lora_dropout").asDouble(0),
          c.path("use_rslora").asBoolean(false), targets, targetsAsString, rankPattern, alphaPattern,
          base == null || base.isNull() ? null : base.asText());
    } catch (IllegalArgumentException e) {
      throw new ModelFormatException(file + ": " + e.getMessage(), e);
    }
  }


  /**
   * PEFT's pattern lookup: the first key that matches the end of the module name after a dot (or the whole
   * name), or null.
   */
  static String patternKey(Iterable<String> keys, String module) {
    for (String key : keys) {
      Pattern p;
      try {
        p = Pattern.compile("(.*\\.)?(" + key + ")");
      } catch (java.util.regex.PatternSyntaxException e) {
        throw new ModelFormatException("rank_pattern/alpha_pattern key '" + key + "' is not a regular expression "
            + "this loader can read: " + e.getDescription(), e);
      }
      if (p.matcher(module).matches()) {
        return key;
      }
    }
    return null;
  }

  /**
   * The weights with every adapted module merged: {@code W + scaling * (B @ A)}, the product first, then the
   * scaling, then the sum, as PEFT merges (in float32 here; PEFT computes the delta in the adapter's type, which is
   * float32 or less precise). Tensors the adapter does not touch are the same objects.
   *
   * @param config the base model's config
   * @param weights Hugging Face names ({@code model.layers.0.self_attn.q_proj.weight}, ...)
   * @throws ModelFormatException naming the module when its weight is missing or its shape does not fit, or when
   *     it adapts the output head or embedding of a model that ties them (the model would ignore the change)
   */
  public Map<String, HostTensor> mergeInto(LlamaConfig config, Map<String, HostTensor> weights) {
    Map<String, HostTensor> out = new LinkedHashMap<>(weights);
    for (Module m : modules.values()) {
      if (config.tieWordEmbeddings() && (m.name().equals("lm_head") || m.name().equals("model.embed_tokens"))) {
        throw new ModelFormatException("LoRA module " + m.name() + ": the base model ties its output head to its "
            + "embedding, so an adapter of one of them cannot be merged");
      }
      String name = m.name() + ".weight";
      HostTensor w = weights.get(name);
      if (w == null) {
        throw new ModelFormatException("LoRA module " + m.name() + ": the base model has no weight '" + name
            + "' (is the adapter for another model?)");
      }
      long outDim = m.b().shape()[0];
      long inDim = m.a().shape()[1];
      if (w.shape().length != 2 || w.shape()[0] != outDim || w.shape()[1] != inDim) {
        throw new ModelFormatException("LoRA module " + m.name() + ": B @ A is [" + outDim + ", " + inDim
            + "] but the weight is " + Arrays.toString(w.shape()));
      }
      out.put(name, new HostTensor(name, w.shape(), merged(w.data(), m, (int) outDim, (int) inDim)));
    }
    return out;
  }

  private static float[] merged(float[] w, Module m, int outDim, int inDim) {
    int r = m.rank();
    float[] a = m.a().data();
    float[] b = m.b().data();
    float scale = (float) m.scaling();
    float[] out = w.clone();
    float[] row = new float[inDim];
    for (int o = 0; o < outDim; o++) {
      Arrays.fill(row, 0f);
      for (int k = 0; k < r; k++) {
        float bk = b[o * r + k];
        int base = k * inDim;
        for (int i = 0; i < inDim; i++) {
          row[i] += bk * a[base + i];
        }
      }
      int at = o * inDim;
      for (int i = 0; i < inDim; i++) {
        out[at + i] += row[i] * scale;
      }
    }
    return out;
  }

  /** Writes the adapter as PEFT saves one: {@code adapter_config.json} and {@code adapter_model.safetensors}. */
  public void write(Path dir) {
    try {
      Files.createDirectories(dir);
      ObjectNode c = JSON.createObjectNode();
      c.put("peft_type", "LORA");
      c.put("task_type", "CAUSAL_LM");
      c.put("base_model_name_or_path", settings.baseModel());
      c.put("r", settings.rank());
      c.put("lora_alpha", settings.alpha());
      c.put("lora_dropout", settings.dropout());
      c.put("use_rslora", settings.rslora());
      if (settings.targetsAsString()) {
        c.put("target_modules", settings.targets().get(0));
      } else {
        ArrayNode targets = c.putArray("target_modules");
        settings.targets().forEach(targets::add);
      }
      ObjectNode rp = c.putObject("rank_pattern");
      settings.rankPattern().forEach(rp::put);
      ObjectNode ap = c.putObject("alpha_pattern");
      settings.alphaPattern().forEach(ap::put);
      c.put("bias", "none");
      c.put("fan_in_fan_out", false);
      c.put("use_dora", false);
      c.putNull("modules_to_save");
      c.put("init_lora_weights", true);
      c.put("inference_mode", true);
      Files.writeString(dir.resolve(CONFIG), JSON.writeValueAsString(c));
      Safetensors.write(dir.resolve(WEIGHTS), tensors().values(), Map.of("format", "pt"));
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write the adapter to " + dir, e);
    }
  }
}
