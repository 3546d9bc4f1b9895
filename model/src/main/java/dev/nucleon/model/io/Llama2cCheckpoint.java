package dev.nucleon.model.io;

import dev.nucleon.model.LlamaConfig;
import dev.nucleon.model.ModelFormatException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Imports llama2.c "legacy" checkpoints ({@code model.bin}): a header of seven little-endian int32 (dim, hidden_dim,
 * n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative vocab_size means a separate output matrix), then
 * float32 arrays: token embedding, attention norms, wq, wk, wv, wo, MLP norms, w1, w2, w3, final norm, two unused
 * rotary tables, and the classifier when it is not shared.
 *
 * <p>llama2.c rotates adjacent pairs {@code (2i, 2i+1)} of each head; Hugging Face checkpoints rotate halves
 * {@code (i, i + D/2)}. Rows of wq and wk are permuted per head (llama2.c row {@code 2i + h} becomes row
 * {@code h * D/2 + i}), which leaves every attention score unchanged, so the imported model computes the same
 * logits in the Hugging Face layout.
 */
public final class Llama2cCheckpoint {

  private Llama2cCheckpoint() {}

  /** The model's config and its weights under Hugging Face names. */
  public record Imported(LlamaConfig config, Map<String, HostTensor> weights) {}

  public static Imported read(Path file) {
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      long size = ch.size();
      if (size < 28) {
        throw new ModelFormatException(file + ": too short for a llama2.c header (" + size + " bytes)");
      }
      ByteBuffer buf = ch.map(FileChannel.MapMode.READ_ONLY, 0, size).order(ByteOrder.LITTLE_ENDIAN);
      int dim = buf.getInt();
      int hidden = buf.getInt();
      int layers = buf.getInt();
      int heads = buf.getInt();
      int kvHeads = buf.getInt();
      int vocab = buf.getInt();
      int seqLen = buf.getInt();
      boolean shared = vocab > 0;
      vocab = Math.abs(vocab);
      if (dim <= 0 || hidden <= 0 || layers <= 0 || heads <= 0 || kvHeads <= 0 || vocab == 0 || seqLen <= 0
          || dim % heads != 0) {
        throw new ModelFormatException(file + ": not a llama2.c checkpoint (header dim=" + dim + " hidden=" + hidden
            + " layers=" + layers + " heads=" + heads + " kv_heads=" + kvHeads + " vocab=" + vocab + " seq_len="
            + seqLen + ")");
      }
      LlamaConfig config;
      try {
        config = new LlamaConfig("LlamaForCausalLM", vocab, dim, hidden, layers, heads, kvHeads, dim / heads,
            10000.0, null, 1e-5, seqLen, shared, false, 1, new int[] {2});
      } catch (IllegalArgumentException e) {
        throw new ModelFormatException(file + ": " + e.getMessage(), e);
      }
      int hs = dim / heads;
      int kvDim = kvHeads * hs;
      FloatBuffer f = buf.asFloatBuffer();
      Reader r = new Reader(file, f, size);
      float[] emb = r.next("token_embedding_table", (long) vocab * dim);
      float[] rmsAtt = r.next("rms_att_weight", (long) layers * dim);
      float[] wq = r.next("wq", (long) layers * dim * dim);
      float[] wk = r.next("wk", (long) layers * kvDim * dim);
      float[] wv = r.next("wv", (long) layers * kvDim * dim);
      float[] wo = r.next("wo", (long) layers * dim * dim);
      float[] rmsFfn = r.next("rms_ffn_weight", (long) layers * dim);
      float[] w1 = r.next("w1", (long) layers * hidden * dim);
      float[] w2 = r.next("w2", (long) layers * dim * hidden);
      float[] w3 = r.next("w3", (long) layers * hidden * dim);
      float[] rmsFinal = r.next("rms_final_weight", dim);
      r.skip("freq_cis_real", (long) seqLen * hs / 2);
      r.skip("freq_cis_imag", (long) seqLen * hs / 2);
      float[] wcls = shared ? null : r.next("wcls", (long) vocab * dim);

      Map<String, HostTensor> w = new LinkedHashMap<>();
      put(w, "model.embed_tokens.weight", emb, vocab, dim);
      for (int l = 0; l < layers; l++) {
        String p = "model.layers." + l + ".";
        put(w, p + "input_layernorm.weight", slice(rmsAtt, l, dim), dim);
        put(w, p + "self_attn.q_proj.weight", permuteRope(slice(wq, l, dim * dim), heads, hs, dim), dim, dim);
        put(w, p + "self_attn.k_proj.weight", permuteRope(slice(wk, l, kvDim * dim), kvHeads, hs, dim), kvDim, dim);
        put(w, p + "self_attn.v_proj.weight", slice(wv, l, kvDim * dim), kvDim, dim);
        put(w, p + "self_attn.o_proj.weight", slice(wo, l, dim * dim), dim, dim);
        put(w, p + "post_attention_layernorm.weight", slice(rmsFfn, l, dim), dim);
        put(w, p + "mlp.gate_proj.weight", slice(w1, l, hidden * dim), hidden, dim);
        put(w, p + "mlp.down_proj.weight", slice(w2, l, dim * hidden), dim, hidden);
        put(w, p + "mlp.up_proj.weight", slice(w3, l, hidden * dim), hidden, dim);
      }
      put(w, "model.norm.weight", rmsFinal, dim);
      if (!shared) {
        put(w, "lm_head.weight", wcls, vocab, dim);
      }
      return new Imported(config, w);
    } catch (NoSuchFileException e) {
      throw new ModelFormatException(file + ": file not found");
    } catch (IOException e) {
      throw new ModelFormatException(file + ": cannot read: " + e.getMessage(), e);
    }
  }

  private static final class Reader {
    private final Path file;
    private final FloatBuffer f;
    private final long size;

    Reader(Path file, FloatBuffer f, long size) {
      this.file = file;
      this.f = f;
      this.size = size;
    }

    float[] next(String what, long count) {
      check(what, count);
      float[] out = new float[(int) count];
      f.get(out);
      return out;
    }

    void skip(String what, long count) {
      check(what, count);
      f.position(f.position() + (int) count);
    }

    private void check(String what, long count) {
      if (count > f.remaining()) {
        throw new ModelFormatException(file + ": truncated llama2.c checkpoint: array '" + what + "' needs "
            + count * 4 + " bytes at offset " + (28 + 4L * f.position()) + " but the file has " + size + " bytes");
      }
    }
  }

  private static float[] slice(float[] all, int layer, int per) {
    float[] out = new float[per];
    System.arraycopy(all, layer * per, out, 0, per);
    return out;
  }

  private static void put(Map<String, HostTensor> w, String name, float[] data, long... shape) {
    w.put(name, new HostTensor(name, shape, data));
  }

  /** llama2.c row {@code 2i + h} of each head becomes row {@code h * hs/2 + i}. */
  static float[] permuteRope(float[] w, int heads, int hs, int cols) {
    float[] out = new float[w.length];
    int half = hs / 2;
    for (int head = 0; head < heads; head++) {
      for (int i = 0; i < half; i++) {
        for (int h = 0; h < 2; h++) {
          int src = head * hs + 2 * i + h;
          int dst = head * hs + h * half + i;
          System.arraycopy(w, src * cols, out, dst * cols, cols);
        }
      }
    }
    return out;
  }
}
