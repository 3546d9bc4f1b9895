package dev.nucleon.model;

import dev.nucleon.model.io.HostTensor;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Set;

/**
 * Converts between Hugging Face tensor names and shapes and the model's own parameters.
 *
 * <p>Hugging Face Llama-family checkpoints store {@code q_proj}, {@code k_proj}, {@code v_proj} and {@code gate_proj},
 * {@code up_proj} separately; the model keeps them fused (see {@link Attention} and {@link SwiGluMlp}). Everything
 * else keeps its Hugging Face name. Loading checks that every expected tensor is there with the shape the config
 * implies, and names the tensor and the file when one is not.
 */
public final class WeightLayout {

  private WeightLayout() {}

  /** A sparse layer's router ({@code [experts, d]}), by its name within the layer (Hugging Face's and ours). */
  static final String ROUTER = "mlp.gate.weight";
  /** A sparse layer's router bias ({@code [experts]}, gpt-oss). */
  static final String ROUTER_BIAS = "mlp.gate.bias";
  /** A sparse layer's per-expert choice bias {@code [experts]} (ours, and DeepSeek-V3's name). */
  static final String CORRECTION_BIAS = "mlp.gate.e_score_correction_bias";
  /** ERNIE 4.5's name for the choice bias, {@code [1, experts]}. */
  static final String ERNIE_CORRECTION_BIAS = "mlp.moe_statics.e_score_correction_bias";
  /** Every routed expert's gate and up rows, stacked: {@code [experts, 2 * inner, d]} (transformers 5's name). */
  static final String EXPERTS_GATE_UP = "mlp.experts.gate_up_proj";
  /** Every routed expert's down projection, stacked: {@code [experts, d, inner]}. */
  static final String EXPERTS_DOWN = "mlp.experts.down_proj";
  /** Every routed expert's gate and up biases, stacked: {@code [experts, 2 * inner]}, gate first (gpt-oss). */
  static final String EXPERTS_GATE_UP_BIAS = "mlp.experts.gate_up_proj_bias";
  /** Every routed expert's down bias, stacked: {@code [experts, d]} (gpt-oss). */
  static final String EXPERTS_DOWN_BIAS = "mlp.experts.down_proj_bias";
  /** Attention's per-head sink logits {@code [heads]} (gpt-oss). */
  static final String SINKS = "self_attn.sinks";

  /**
   * Whether the family's checkpoints store the routed experts stacked, as gpt-oss's do: {@code mlp.router.*},
   * {@code mlp.experts.gate_up_proj [E, d, 2I]} with gate and up in alternating columns, {@code down_proj
   * [E, I, d]} (inputs times weights, not weights times inputs), biases beside them. The others store one module
   * per expert.
   */
  private static boolean stackedExperts(LlamaConfig c) {
    return c.architecture().equals("GptOssForCausalLM");
  }

  /**
   * Whether a parameter stays float32 in a model held in bfloat16, and in a bfloat16 checkpoint (by our name or
   * the family's): the router and its biases (as transformers keeps ERNIE's, and the published bfloat16
   * checkpoints store them), so that which experts a token goes to does not move with the weights' rounding.
   */
  public static boolean keepsFloat32(String name) {
    return name.endsWith(ROUTER) || name.endsWith(ROUTER_BIAS) || name.endsWith(CORRECTION_BIAS)
        || name.endsWith(ERNIE_CORRECTION_BIAS) || name.endsWith(".mlp.router.weight")
        || name.endsWith(".mlp.router.bias");
  }

  /** Whether the family stores the choice bias as ERNIE does ({@code moe_statics}, {@code [1, E]}). */
  private static boolean erniesChoiceBias(LlamaConfig c) {
    return c.architecture().equals("Ernie4_5_MoeForCausalLM");
  }

  /**
   * A latent-attention layer's tensors (names within the layer, as DeepSeek-V3's checkpoints and the model both
   * name them) and their shapes: the query bottleneck or plain query projection, the latent projection (latent plus
   * the shared rotary key), the latent's expansion into every head's no-rope key and value, the output projection.
   */
  static Map<String, long[]> latentShapes(LlamaConfig c) {
    LlamaConfig.Latent l = c.latent();
    long d = c.hiddenSize();
    long h = c.numHeads();
    long qk = l.qkNopeDim() + l.qkRopeDim();
    Map<String, long[]> m = new LinkedHashMap<>();
    if (l.qLoraRank() > 0) {
      m.put("self_attn.q_a_proj.weight", new long[] {l.qLoraRank(), d});
      m.put("self_attn.q_a_layernorm.weight", new long[] {l.qLoraRank()});
      m.put("self_attn.q_b_proj.weight", new long[] {h * qk, l.qLoraRank()});
    } else {
      m.put("self_attn.q_proj.weight", new long[] {h * qk, d});
    }
    m.put("self_attn.kv_a_proj_with_mqa.weight", new long[] {l.kvLoraRank() + l.qkRopeDim(), d});
    m.put("self_attn.kv_a_layernorm.weight", new long[] {l.kvLoraRank()});
    m.put("self_attn.kv_b_proj.weight", new long[] {h * (l.qkNopeDim() + l.vHeadDim()), l.kvLoraRank()});
    m.put("self_attn.o_proj.weight", new long[] {d, h * l.vHeadDim()});
    return m;
  }

  /** What every layer's tensor names start with, before the layer index. */
  static final String LAYERS = "model.layers.";

  static String layer(int i) {
    return LAYERS + i + ".";
  }

  /** The Hugging Face names (within a layer) of a block's first and second norm, by norm placement. */
  static String[] blockNorms(LlamaConfig c) {
    return c.normPlacement() == LlamaConfig.NormPlacement.PRE
        ? new String[] {"input_layernorm", "post_attention_layernorm"}
        : new String[] {"post_attention_layernorm", "post_feedforward_layernorm"};
  }

  /** The length of the q and k norm weights, or 0 without q/k norms. */
  private static long[] qkNormLengths(LlamaConfig c) {
    return switch (c.qkNorm()) {
      case NONE -> new long[] {0, 0};
      case PER_HEAD -> new long[] {c.headDim(), c.headDim()};
      case FULL_WIDTH -> new long[] {(long) c.numHeads() * c.headDim(), (long) c.numKvHeads() * c.headDim()};
    };
  }

  /** Internal parameter names, in model order. */
  public static Set<String> internalNames(LlamaConfig c) {
    Set<String> names = new LinkedHashSet<>();
    names.add("model.embed_tokens.weight");
    String[] norms = blockNorms(c);
    for (int i = 0; i < c.numLayers(); i++) {
      String p = layer(i);
      names.add(p + norms[0] + ".weight");
      if (c.latent() != null) {
        latentShapes(c).keySet().forEach(n -> names.add(p + n));
      } else {
        names.add(p + "self_attn.qkv_proj.weight");
        if (c.attentionBias()) {
          names.add(p + "self_attn.qkv_proj.bias");
        }
        names.add(p + "self_attn.o_proj.weight");
        if (c.outputBias()) {
          names.add(p + "self_attn.o_proj.bias");
        }
      }
      if (c.qkNorm() != LlamaConfig.QkNorm.NONE) {
        names.add(p + "self_attn.q_norm.weight");
        names.add(p + "self_attn.k_norm.weight");
      }
      if (c.attentionSinks()) {
        names.add(p + SINKS);
      }
      names.add(p + norms[1] + ".weight");
      if (c.isSparse(i)) {
        names.add(p + ROUTER);
        if (c.moe().router().bias()) {
          names.add(p + ROUTER_BIAS);
        }
        if (c.moe().router().correctionBias()) {
          names.add(p + CORRECTION_BIAS);
        }
        names.add(p + EXPERTS_GATE_UP);
        names.add(p + EXPERTS_DOWN);
        if (c.moe().expertBias()) {
          names.add(p + EXPERTS_GATE_UP_BIAS);
          names.add(p + EXPERTS_DOWN_BIAS);
        }
        if (c.moe().sharedSize() > 0) {
          names.add(p + "mlp.shared_experts.gate_up_proj.weight");
          names.add(p + "mlp.shared_experts.down_proj.weight");
        }
        continue;
      }
      names.add(p + "mlp.gate_up_proj.weight");
      names.add(p + "mlp.down_proj.weight");
      if (c.outputBias()) {
        names.add(p + "mlp.gate_up_proj.bias");
        names.add(p + "mlp.down_proj.bias");
      }
    }
    names.add("model.norm.weight");
    if (!c.tieWordEmbeddings()) {
      names.add("lm_head.weight");
    }
    return names;
  }

  /** The Hugging Face tensors a checkpoint of this config holds, with their shapes. */
  public static Map<String, long[]> huggingFaceShapes(LlamaConfig c) {
    Map<String, long[]> m = new LinkedHashMap<>();
    long d = c.hiddenSize();
    long qDim = (long) c.numHeads() * c.headDim();
    long kvDim = (long) c.numKvHeads() * c.headDim();
    m.put("model.embed_tokens.weight", new long[] {c.vocabSize(), d});
    String[] norms = blockNorms(c);
    long[] qkNorm = qkNormLengths(c);
    for (int i = 0; i < c.numLayers(); i++) {
      String p = layer(i);
      m.put(p + norms[0] + ".weight", new long[] {d});
      if (c.latent() != null) {
        latentShapes(c).forEach((n, shape) -> m.put(p + n, shape));
      } else {
        m.put(p + "self_attn.q_proj.weight", new long[] {qDim, d});
        m.put(p + "self_attn.k_proj.weight", new long[] {kvDim, d});
        m.put(p + "self_attn.v_proj.weight", new long[] {kvDim, d});
        if (c.attentionBias()) {
          m.put(p + "self_attn.q_proj.bias", new long[] {qDim});
          m.put(p + "self_attn.k_proj.bias", new long[] {kvDim});
          m.put(p + "self_attn.v_proj.bias", new long[] {kvDim});
        }
        m.put(p + "self_attn.o_proj.weight", new long[] {d, qDim});
        if (c.outputBias()) {
          m.put(p + "self_attn.o_proj.bias", new long[] {d});
        }
      }
      if (c.qkNorm() != LlamaConfig.QkNorm.NONE) {
        m.put(p + "self_attn.q_norm.weight", new long[] {qkNorm[0]});
        m.put(p + "self_attn.k_norm.weight", new long[] {qkNorm[1]});
      }
      if (c.attentionSinks()) {
        m.put(p + SINKS, new long[] {c.numHeads()});
      }
      m.put(p + norms[1] + ".weight", new long[] {d});
      if (c.isSparse(i) && stackedExperts(c)) {
        LlamaConfig.Moe moe = c.moe();
        long e = moe.numExperts();
        long inner = moe.expertSize();
        m.put(p + "mlp.router.weight", new long[] {e, d});
        m.put(p + "mlp.router.bias", new long[] {e});
        m.put(p + EXPERTS_GATE_UP, new long[] {e, d, 2 * inner});
        m.put(p + EXPERTS_GATE_UP_BIAS, new long[] {e, 2 * inner});
        m.put(p + EXPERTS_DOWN, new long[] {e, inner, d});
        m.put(p + EXPERTS_DOWN_BIAS, new long[] {e, d});
        continue;
      }
      if (c.isSparse(i)) {
        LlamaConfig.Moe moe = c.moe();
        m.put(p + ROUTER, new long[] {moe.numExperts(), d});
        if (moe.router().correctionBias() && erniesChoiceBias(c)) {
          m.put(p + ERNIE_CORRECTION_BIAS, new long[] {1, moe.numExperts()});
        } else if (moe.router().correctionBias()) {
          m.put(p + CORRECTION_BIAS, new long[] {moe.numExperts()});
        }
        for (int e = 0; e < moe.numExperts(); e++) {
          m.put(p + "mlp.experts." + e + ".gate_proj.weight", new long[] {moe.expertSize(), d});
          m.put(p + "mlp.experts." + e + ".up_proj.weight", new long[] {moe.expertSize(), d});
          m.put(p + "mlp.experts." + e + ".down_proj.weight", new long[] {d, moe.expertSize()});
        }
        if (moe.sharedSize() > 0) {
          m.put(p + "mlp.shared_experts.gate_proj.weight", new long[] {moe.sharedSize(), d});
          m.put(p + "mlp.shared_experts.up_proj.weight", new long[] {moe.sharedSize(), d});
          m.put(p + "mlp.shared_experts.down_proj.weight", new long[] {d, moe.sharedSize()});
        }
        continue;
      }
      m.put(p + "mlp.gate_proj.weight", new long[] {c.intermediateSize(), d});
      m.put(p + "mlp.up_proj.weight", new long[] {c.intermediateSize(), d});
      m.put(p + "mlp.down_proj.weight", new long[] {d, c.intermediateSize()});
      if (c.outputBias()) {
        m.put(p + "mlp.gate_proj.bias", new long[] {c.intermediateSize()});
        m.put(p + "mlp.up_proj.bias", new long[] {c.intermediateSize()});
        m.put(p + "mlp.down_proj.bias", new long[] {d});
      }
    }
    m.put("model.norm.weight", new long[] {d});
    if (!c.tieWordEmbeddings()) {
      m.put("lm_head.weight", new long[] {c.vocabSize(), d});
    }
    return m;
  }

  /**
   * Checks Hugging Face tensors against the config and fuses them into the model's parameters.
   *
   * @param source what the tensors were read from, for error messages
   * @throws ModelFormatException when a tensor is missing, unexpected, or has the wrong shape
   */
  public static Map<String, HostTensor> fromHuggingFace(LlamaConfig c, Map<String, HostTensor> hf, String source) {
    Map<String, long[]> expected = huggingFaceShapes(c);
    for (var e : expected.entrySet()) {
      HostTensor t = hf.get(e.getKey());
      if (t == null) {
        throw new ModelFormatException(source + ": missing tensor '" + e.getKey() + "' (expected shape "
            + Arrays.toString(e.getValue()) + " from config.json)");
      }
      if (!Arrays.equals(t.shape(), e.getValue())) {
        throw new ModelFormatException(source + ": tensor '" + e.getKey() + "' has shape "
            + Arrays.toString(t.shape()) + " but config.json implies " + Arrays.toString(e.getValue()));
      }
    }
    for (String name : hf.keySet()) {
      boolean ignorable = name.endsWith("rotary_emb.inv_freq")
          || (c.tieWordEmbeddings() && name.equals("lm_head.weight")) || multiTokenPrediction(c, name);
      if (!expected.containsKey(name) && !ignorable) {
        throw new ModelFormatException(source + ": unexpected tensor '" + name + "' for " + c.architecture()
            + " with " + c.numLayers() + " layers");
      }
    }
    Map<String, HostTensor> out = new LinkedHashMap<>();
    for (String name : internalNames(c)) {
      HostTensor t;
      if (name.endsWith("qkv_proj.weight") || name.endsWith("qkv_proj.bias")) {
        String p = name.substring(0, name.indexOf("qkv_proj."));
        String suffix = name.endsWith("weight") ? "weight" : "bias";
        t = fuseQkv(c, name, hf.get(p + "q_proj." + suffix), hf.get(p + "k_proj." + suffix),
            hf.get(p + "v_proj." + suffix));
      } else if (stackedExperts(c) && name.contains(".mlp.")) {
        t = fromStacked(c, name, hf);
      } else if (name.endsWith(EXPERTS_GATE_UP) || name.endsWith(EXPERTS_DOWN)) {
        t = stackExperts(c, name, hf);
      } else if (name.endsWith(CORRECTION_BIAS) && erniesChoiceBias(c)) {
        HostTensor ernie = hf.get(name.replace(CORRECTION_BIAS, ERNIE_CORRECTION_BIAS));
        t = new HostTensor(name, new long[] {c.moe().numExperts()}, ernie.data());
      } else if (name.endsWith("gate_up_proj.weight") || name.endsWith("gate_up_proj.bias")) {
        String p = name.substring(0, name.indexOf("gate_up_proj."));
        String suffix = name.endsWith("weight") ? "weight" : "bias";
        t = concatRows(name, hf.get(p + "gate_proj." + suffix), hf.get(p + "up_proj." + suffix));
      } else {
        t = hf.get(name);
      }
      out.put(name, t.renamed(name));
    }
    return out;
  }

  /** Splits the model's parameters back into Hugging Face tensors, in Hugging Face order. */
  public static Map<String, HostTensor> toHuggingFace(LlamaConfig c, Map<String, HostTensor> internal) {
    Map<String, HostTensor> out = new LinkedHashMap<>();
    for (String name : huggingFaceShapes(c).keySet()) {
      String p = name.contains("self_attn.") ? name.substring(0, name.indexOf("self_attn.") + 10)
          : name.contains("mlp.") ? name.substring(0, name.indexOf("mlp.") + 4) : "";
      java.util.regex.Matcher expert = EXPERT.matcher(name);
      if (stackedExperts(c) && name.contains(".mlp.")) {
        out.put(name, toStacked(c, name, internal));
      } else if (expert.matches()) {
        String stacked = expert.group(1) + (expert.group(3).equals("down") ? EXPERTS_DOWN : EXPERTS_GATE_UP);
        out.put(name, expertPart(c, require(internal, stacked), Integer.parseInt(expert.group(2)), expert.group(3),
            name));
      } else if (name.endsWith(ERNIE_CORRECTION_BIAS)) {
        HostTensor bias = require(internal, name.replace(ERNIE_CORRECTION_BIAS, CORRECTION_BIAS));
        out.put(name, new HostTensor(name, new long[] {1, c.moe().numExperts()}, bias.data()));
      } else if (c.latent() == null && name.matches(".*\\.[qkv]_proj\\.(weight|bias)")) {
        String suffix = name.endsWith("weight") ? "weight" : "bias";
        HostTensor fused = require(internal, p + "qkv_proj." + suffix);
        out.put(name, splitQkv(c, fused, name.charAt(name.lastIndexOf('_') - 1), name));
      } else if (name.matches(".*\\.(gate|up)_proj\\.(weight|bias)")) {
        String suffix = name.endsWith("weight") ? "weight" : "bias";
        String mlp = name.substring(0, name.lastIndexOf(name.contains("gate_proj.") ? "gate_proj." : "up_proj."));
        HostTensor fused = require(internal, mlp + "gate_up_proj." + suffix);
        int inner = (int) fused.shape()[0] / 2; // the dense MLP's or the shared experts'
        out.put(name, rows(fused, name.contains("gate_proj.") ? 0 : inner, inner, name));
      } else {
        out.put(name, require(internal, name));
      }
    }
    return out;
  }

  /**
   * Whether a tensor belongs to DeepSeek-V3's multi-token-prediction module, stored as layers after the last
   * decoder layer ({@code num_nextn_predict_layers}): transformers does not load it, nor does Nucleon.
   */
  private static boolean multiTokenPrediction(LlamaConfig c, String name) {
    if (c.latent() == null || !name.startsWith(LAYERS)) {
      return false;
    }
    String rest = name.substring(LAYERS.length());
    int dot = rest.indexOf('.');
    return dot > 0 && rest.substring(0, dot).chars().allMatch(Character::isDigit)
        && Integer.parseInt(rest.substring(0, dot)) >= c.numLayers();
  }

  /** A routed expert's projection in Hugging Face's per-expert layout: prefix, expert index, gate / up / down. */
  private static final java.util.regex.Pattern EXPERT =
      java.util.regex.Pattern.compile("(.*\\.)mlp\\.experts\\.(\\d+)\\.(gate|up|down)_proj\\.weight");

  /**
   * A sparse layer's stacked expert tensor from the per-expert ones: {@code [E, 2I, d]} with each expert's gate
   * rows then its up rows, or {@code [E, d, I]} of down projections.
   */
  private static HostTensor stackExperts(LlamaConfig c, String name, Map<String, HostTensor> hf) {
    String p = name.substring(0, name.indexOf("mlp.experts."));
    int experts = c.moe().numExperts();
    long inner = c.moe().expertSize();
    long d = c.hiddenSize();
    boolean down = name.endsWith(EXPERTS_DOWN);
    int slab = (int) ((down ? 1 : 2) * inner * d);
    float[] out = new float[experts * slab];
    for (int e = 0; e < experts; e++) {
      String expert = p + "mlp.experts." + e + ".";
      if (down) {
        System.arraycopy(hf.get(expert + "down_proj.weight").data(), 0, out, e * slab, slab);
      } else {
        float[] gate = hf.get(expert + "gate_proj.weight").data();
        System.arraycopy(gate, 0, out, e * slab, gate.length);
        System.arraycopy(hf.get(expert + "up_proj.weight").data(), 0, out, e * slab + gate.length, gate.length);
      }
    }
    return new HostTensor(name, down ? new long[] {experts, d, inner} : new long[] {experts, 2 * inner, d}, out);
  }

  /**
   * One of our sparse-layer tensors from gpt-oss's stacked layout: router weight and bias renamed; {@code
   * gate_up_proj [E, d, 2I]} (column 2j = gate j, 2j + 1 = up j) transposed to {@code [E, 2I, d]} with gate rows
   * first, its bias de-interleaved alike; {@code down_proj [E, I, d]} transposed to {@code [E, d, I]}.
   */
  private static HostTensor fromStacked(LlamaConfig c, String name, Map<String, HostTensor> hf) {
    String p = name.substring(0, name.indexOf("mlp.") + 4);
    int experts = c.moe().numExperts();
    int inner = c.moe().expertSize();
    int d = c.hiddenSize();
    String part = name.substring(p.length());
    return switch ("mlp." + part) {
      case ROUTER -> hf.get(p + "router.weight").renamed(name);
      case ROUTER_BIAS -> hf.get(p + "router.bias").renamed(name);
      case EXPERTS_DOWN_BIAS -> hf.get(name);
      case EXPERTS_GATE_UP, EXPERTS_GATE_UP_BIAS, EXPERTS_DOWN -> {
        boolean bias = name.endsWith(EXPERTS_GATE_UP_BIAS);
        boolean down = name.endsWith(EXPERTS_DOWN);
        int rows = down ? d : 2 * inner; // ours: [E, rows, cols]
        int cols = bias ? 1 : down ? inner : d;
        float[] out = restack(hf.get(name).data(), experts, rows, cols, down, inner, false);
        yield new HostTensor(name, bias ? new long[] {experts, 2L * inner} : new long[] {experts, rows, cols}, out);
      }
      default -> throw new IllegalStateException("no gpt-oss tensor for '" + name + "'");
    };
  }

  /**
   * Moves a stacked expert tensor between our layout {@code [E, rows, cols]} and gpt-oss's {@code [E, cols, rows]}
   * (a bias: {@code cols = 1}), where gpt-oss's column for our row r is the row itself for down projections, and for
   * gate and up gate j at 2j, up j at 2j + 1 (our rows: gate 0..I-1, then up).
   *
   * @param toGptOss from ours to gpt-oss's, else the other way
   */
  private static float[] restack(float[] src, int experts, int rows, int cols, boolean down, int inner,
      boolean toGptOss) {
    float[] out = new float[src.length];
    for (int e = 0; e < experts; e++) {
      for (int r = 0; r < rows; r++) {
        int column = down ? r : r < inner ? 2 * r : 2 * (r - inner) + 1;
        for (int k = 0; k < cols; k++) {
          int ours = (e * rows + r) * cols + k;
          int theirs = (e * cols + k) * rows + column;
          if (toGptOss) {
            out[theirs] = src[ours];
          } else {
            out[ours] = src[theirs];
          }
        }
      }
    }
    return out;
  }

  /** Inverse of {@link #fromStacked}: a gpt-oss tensor of a sparse layer from ours. */
  private static HostTensor toStacked(LlamaConfig c, String name, Map<String, HostTensor> internal) {
    String p = name.substring(0, name.indexOf("mlp.") + 4);
    int experts = c.moe().numExperts();
    int inner = c.moe().expertSize();
    int d = c.hiddenSize();
    String part = name.substring(p.length());
    return switch (part) {
      case "router.weight" -> require(internal, p + "gate.weight").renamed(name);
      case "router.bias" -> require(internal, p + "gate.bias").renamed(name);
      case "experts.down_proj_bias" -> require(internal, name);
      case "experts.gate_up_proj", "experts.gate_up_proj_bias", "experts.down_proj" -> {
        boolean bias = part.endsWith("_bias");
        boolean down = part.equals("experts.down_proj");
        int rows = down ? d : 2 * inner;
        int cols = bias ? 1 : down ? inner : d;
        float[] out = restack(require(internal, name).data(), experts, rows, cols, down, inner, true);
        yield new HostTensor(name, bias ? new long[] {experts, 2L * inner}
            : down ? new long[] {experts, inner, d} : new long[] {experts, d, 2L * inner}, out);
      }
      default -> throw new IllegalStateException("no tensor of ours for gpt-oss's '" + name + "'");
    };
  }

  /** Inverse of {@link #stackExperts}: expert {@code e}'s gate, up or down projection. */
  private static HostTensor expertPart(LlamaConfig c, HostTensor stacked, int e, String part, String name) {
    int inner = c.moe().expertSize();
    int d = c.hiddenSize();
    int slab = (part.equals("down") ? 1 : 2) * inner * d;
    int from = e * slab + (part.equals("up") ? inner * d : 0);
    long[] shape = part.equals("down") ? new long[] {d, inner} : new long[] {inner, d};
    return new HostTensor(name, shape, Arrays.copyOfRange(stacked.data(), from, from + inner * d));
  }

  private static HostTensor require(Map<String, HostTensor> m, String name) {
    HostTensor t = m.get(name);
    if (t == null) {
      throw new IllegalArgumentException("missing parameter '" + name + "'");
    }
    return t;
  }

  /**
   * Where a projection module ({@code model.layers.N.self_attn.k_proj}, ...) lives among the internal parameters:
   * its weight's name and first row (q, k and v share one fused matrix, gate and up another).
   */
  record Placement(String weight, long firstRow, long rows) {}

  /** {@link Placement} of a projection module of a decoder block. */
  static Placement place(LlamaConfig c, String module) {
    int dot = module.lastIndexOf('.');
    String block = module.substring(0, dot + 1); // model.layers.N.self_attn. or model.layers.N.mlp.
    long q = (long) c.numHeads() * c.headDim();
    long kv = (long) c.numKvHeads() * c.headDim();
    long inner = c.intermediateSize();
    return switch (module.substring(dot + 1)) {
      case "q_proj" -> new Placement(block + "qkv_proj.weight", 0, q);
      case "k_proj" -> new Placement(block + "qkv_proj.weight", q, kv);
      case "v_proj" -> new Placement(block + "qkv_proj.weight", q + kv, kv);
      case "o_proj" -> new Placement(block + "o_proj.weight", 0, c.hiddenSize());
      case "gate_proj" -> new Placement(block + "gate_up_proj.weight", 0, inner);
      case "up_proj" -> new Placement(block + "gate_up_proj.weight", inner, inner);
      case "down_proj" -> new Placement(block + "down_proj.weight", 0, c.hiddenSize());
      default -> throw new IllegalArgumentException("'" + module + "' is not a projection of a decoder block");
    };
  }

  /** The fused projection: q rows, then k rows, then v rows. */
  static HostTensor fuseQkv(LlamaConfig c, String name, HostTensor q, HostTensor k, HostTensor v) {
    HostTensor qk = concatRows(name, q, k);
    return concatRows(name, qk, v);
  }

  /** Inverse of {@link #fuseQkv}: which is 'q', 'k' or 'v'. */
  static HostTensor splitQkv(LlamaConfig c, HostTensor fused, char which, String name) {
    int q = c.numHeads() * c.headDim();
    int kv = c.numKvHeads() * c.headDim();
    int start = which == 'q' ? 0 : which == 'k' ? q : q + kv;
    return rows(fused, start, which == 'q' ? q : kv, name);
  }

  /** Stacks rows of two matrices (or concatenates two vectors). */
  static HostTensor concatRows(String name, HostTensor a, HostTensor b) {
    float[] out = Arrays.copyOf(a.data(), a.data().length + b.data().length);
    System.arraycopy(b.data(), 0, out, a.data().length, b.data().length);
    long rows = a.shape()[0] + b.shape()[0];
    return new HostTensor(name, a.shape().length == 1 ? new long[] {rows} : new long[] {rows, a.shape()[1]}, out);
  }

  /** Rows {@code [start, start + count)} of a matrix (or entries of a vector). */
  static HostTensor rows(HostTensor t, int start, int count, String name) {
    int w = t.shape().length == 1 ? 1 : (int) t.shape()[1];
    float[] out = Arrays.copyOfRange(t.data(), start * w, (start + count) * w);
    return new HostTensor(name, t.shape().length == 1 ? new long[] {count} : new long[] {count, w}, out);
  }
}
