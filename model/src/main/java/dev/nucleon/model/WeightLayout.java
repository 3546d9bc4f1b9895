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
      names.add(p + "self_attn.qkv_proj.weight");
      if (c.attentionBias()) {
        names.add(p + "self_attn.qkv_proj.bias");
      }
      names.add(p + "self_attn.o_proj.weight");
      if (c.outputBias()) {
        names.add(p + "self_attn.o_proj.bias");
      }
      if (c.qkNorm() != LlamaConfig.QkNorm.NONE) {
        names.add(p + "self_attn.q_norm.weight");
        names.add(p + "self_attn.k_norm.weight");
      }
      names.add(p + norms[1] + ".weight");
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
      if (c.qkNorm() != LlamaConfig.QkNorm.NONE) {
        m.put(p + "self_attn.q_norm.weight", new long[] {qkNorm[0]});
        m.put(p + "self_attn.k_norm.weight", new long[] {qkNorm[1]});
      }
      m.put(p + norms[1] + ".weight", new long[] {d});
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
      boolean ignorable = name.endsWith("rotary_emb.inv_freq") || (c.tieWordEmbeddings() && name.equals("lm_head.weight"));
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
      if (name.matches(".*\\.[qkv]_proj\\.(weight|bias)")) {
        String suffix = name.endsWith("weight") ? "weight" : "bias";
        HostTensor fused = require(internal, p + "qkv_proj." + suffix);
        out.put(name, splitQkv(c, fused, name.charAt(name.lastIndexOf('_') - 1), name));
      } else if (name.matches(".*\\.(gate|up)_proj\\.(weight|bias)")) {
        String suffix = name.endsWith("weight") ? "weight" : "bias";
        HostTensor fused = require(internal, p + "gate_up_proj." + suffix);
        out.put(name, rows(fused, name.contains("gate_proj.") ? 0 : c.intermediateSize(), c.intermediateSize(),
            name));
      } else {
        out.put(name, require(internal, name));
      }
    }
    return out;
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
