package dev.nucleon.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import ai.djl.pytorch.jni.JniUtils;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;

/**
 * Causal grouped-query self-attention with rotary embeddings.
 *
 * <p>The q, k and v projections are one fused matrix (q rows, then k, then v, as Hugging Face orders them), so one
 * matrix product gives a {@code [B, T, H + 2K, D]} tensor from which queries, keys and values are views, and the
 * rotary embedding turns queries and keys in one go. The G query heads that share a key/value head are folded
 * into the row axis ({@code [B, K, G*T, D]}), so scores are one batched product against {@code [B, K, D, S]} keys
 * without expanding the keys per query head.
 *
 * <p>With attention sinks (gpt-oss), each query head has a learned logit joined to its scores as one more column
 * before the softmax and dropped after it: the probabilities over the keys then sum to less than one.
 */
public final class Attention extends AbstractBlock {

  private final int heads;
  private final int kvHeads;
  private final int group;
  private final int headDim;
  private final float scale;
  private final Parameter qkv;
  private final Parameter qkvBias;
  private final Parameter out;
  private final Parameter outBias;
  private final Parameter qNorm;
  private final Parameter kNorm;
  private final Parameter sinks;
  private final boolean fullWidthNorm;
  private final float normEps;
  private Rope rope;
  /** LoRA on q, k, v and o ({@code null} where a projection is not adapted); null when no adapter is attached. */
  private LoraPart[] lora;
  private static final LoraPart[] NO_LORA = new LoraPart[4];

  private final Precision precision;

  Attention(LlamaConfig c, Precision precision) {
    this.precision = precision;
    heads = c.numHeads();
    kvHeads = c.numKvHeads();
    group = c.groupSize();
    headDim = c.headDim();
    scale = (float) (1.0 / Math.sqrt(headDim));
    long rows = (long) (c.numHeads() + 2 * c.numKvHeads()) * headDim;
    qkv = addParameter(Parameter.builder().setName("qkv_proj").setType(Parameter.Type.WEIGHT)
        .optShape(new Shape(rows, c.hiddenSize())).build());
    qkvBias = c.attentionBias()
        ? addParameter(Parameter.builder().setName("qkv_bias").setType(Parameter.Type.BIAS)
            .optShape(new Shape(rows)).build())
        : null;
    out = addParameter(Parameter.builder().setName("o_proj").setType(Parameter.Type.WEIGHT)
        .optShape(new Shape(c.hiddenSize(), (long) c.numHeads() * headDim)).build());
    outBias = c.outputBias()
        ? addParameter(Parameter.builder().setName("o_proj_bias").setType(Parameter.Type.BIAS)
            .optShape(new Shape(c.hiddenSize())).build())
        : null;
    boolean normed = c.qkNorm() != LlamaConfig.QkNorm.NONE;
    fullWidthNorm = c.qkNorm() == LlamaConfig.QkNorm.FULL_WIDTH;
    qNorm = normed ? addParameter(Parameter.builder().setName("q_norm").setType(Parameter.Type.WEIGHT)
        .optShape(new Shape(fullWidthNorm ? (long) heads * headDim : headDim)).build()) : null;
    kNorm = normed ? addParameter(Parameter.builder().setName("k_norm").setType(Parameter.Type.WEIGHT)
        .optShape(new Shape(fullWidthNorm ? (long) kvHeads * headDim : headDim)).build()) : null;
    normEps = (float) c.rmsNormEps();
    sinks = c.attentionSinks() ? addParameter(Parameter.builder().setName("sinks").setType(Parameter.Type.WEIGHT)
        .optShape(new Shape(heads)).build()) : null;
  }

  Parameter sinks() {
    return sinks;
  }

  int group() {
    return group;
  }

  /** The factor queries are scaled by before their product with the keys. */
  float scale() {
    return scale;
  }

  Rope.Angles angles(NDArray positions) {
    return rope.angles(positions);
  }

  Parameter outBias() {
    return outBias;
  }

  Parameter qNorm() {
    return qNorm;
  }

  Parameter kNorm() {
    return kNorm;
  }

  /**
   * Queries or keys {@code [B, T, n, D]} as RoPE sees them: RMSNorm per head (over D) or over each position's whole
   * width (n x D) where the family has a q/k norm, else as they are.
   */
  private NDArray norm(NDArray x, Parameter weight) {
    if (weight == null) {
      return x;
    }
    if (!fullWidthNorm) {
      return RmsNorm.normalize(x, weight, normEps, precision);
    }
    Shape s = x.getShape();
    return RmsNorm.normalize(x.reshape(s.get(0), s.get(1), -1), weight, normEps, precision).reshape(s);
  }

  void setRope(Rope rope) {
    this.rope = rope;
  }

  /** Attaches LoRA to q, k, v and o ({@code parts} in that order, null entries not adapted), or detaches (null). */
  void setLora(LoraPart[] parts) {
    this.lora = parts;
  }

  Parameter qkv() {
    return qkv;
  }

  Parameter qkvBias() {
    return qkvBias;
  }

  Parameter out() {
    return out;
  }

  /**
   * Attends {@code x [B, T, d]}.
   *
   * @param angles cos/sin for the T new positions of each sequence
   * @param mask additive mask broadcastable to {@code [B, K, G*T, S]}, rows ordered (query head, position)
   *     (0 = attend, large negative = not); {@link LlamaModel#forward} prepares it
   * @param cache the batch's KV cache, or null to attend only within {@code x} (training and scoring)
   * @param layer this layer's index in the cache
   * @param shared where {@code x} is a {@link SharedPromptRows} packed sequence, its rows as this layer attends them
   *     (the mask and cache are then unused); else null
   * @param step the manager that owns per-step views
   */
  NDArray apply(NDArray x, Rope.Angles angles, NDArray mask, KvCache cache, int layer, SharedPromptRows.Layer shared,
      NDManager step) {
    Shape s = x.getShape();
    long b = s.get(0);
    long t = s.get(1);
    NDArray qh; // [B, T, H, D], rotated
    NDArray kh; // [B, T, K, D], rotated
    NDArray vh; // [B, T, K, D]
    if (JniUtils.isGradMode() || lora != null) {
      // training: one product per part against a view of its rows, so activations and their gradients are
      // contiguous and backward accumulates weight-sized slices (see SwiGluMlp); the fused weight is cast to the
      // activations' type once, so mixed precision keeps one low-precision copy of it until backward, not three.
      // LoRA's side products go on each part, so an adapted model takes this path with or without autograd
      NDArray w = precision.weight(qkv, step);
      NDArray bias = precision.weight(qkvBias, step);
      LoraPart[] l = lora == null ? NO_LORA : lora;
      NDArray q = LoraPart.add(l[0], x, project(x, w, bias, 0, heads));
      NDArray k = LoraPart.add(l[1], x, project(x, w, bias, heads, heads + kvHeads));
      NDArray v = LoraPart.add(l[2], x, project(x, w, bias, heads + kvHeads, heads + 2L * kvHeads));
      qh = rope.apply(norm(q.reshape(b, t, heads, headDim), qNorm), angles);
      kh = rope.apply(norm(k.reshape(b, t, kvHeads, headDim), kNorm), angles);
      vh = v.reshape(b, t, kvHeads, headDim);
    } else {
      // decoding: one product for q, k and v and one rotation for q and k, the fewest native calls per token
      NDArray proj = Linear.linear(x, precision.weight(qkv, step), precision.weight(qkvBias, step))
          .singletonOrThrow().reshape(b, t, heads + 2L * kvHeads, headDim);
      if (qNorm == null) {
        NDArray qk = rope.apply(Ops.slice(proj, 2, 0, heads + kvHeads, step), angles);
        qh = Ops.slice(qk, 2, 0, heads, step);
        kh = Ops.slice(qk, 2, heads, heads + kvHeads, step);
      } else {
        qh = rope.apply(norm(Ops.slice(proj, 2, 0, heads, step), qNorm), angles);
        kh = rope.apply(norm(Ops.slice(proj, 2, heads, heads + kvHeads, step), kNorm), angles);
      }
      vh = Ops.slice(proj, 2, heads + kvHeads, heads + 2L * kvHeads, step);
    }
    NDArray context = shared != null
        ? shared.attend(qh, kh, vh, (qr, kr, vr, m, st) -> context(qr, kr, vr, m, null, layer, st), step)
        : context(qh, kh, vh, mask, cache, layer, step);
    NDArray o = Linear.linear(context, precision.weight(out, step), precision.weight(outBias, step))
        .singletonOrThrow();
    return lora == null ? o : LoraPart.add(lora[3], context, o);
  }

  /**
   * Scores, softmax and the weighted values: queries {@code [B, T, H, D]}, keys and values {@code [B, S, K, D]} (S
   * = T without a cache; with one, the cached keys come first) give the context {@code [B, T, H x D]}.
   */
  private NDArray context(NDArray qh, NDArray kh, NDArray vh, NDArray mask, KvCache cache, int layer,
      NDManager step) {
    long b = qh.getShape().get(0);
    long t = qh.getShape().get(1);
    NDArray q = Ops.mul(qh.reshape(b, t, kvHeads, group, headDim)
        .transpose(0, 2, 3, 1, 4).reshape(b, kvHeads, group * t, headDim), scale); // [B,K,G*T,D]
    NDArray k = kh.transpose(0, 2, 3, 1); // [B,K,D,S]
    NDArray v = vh.transpose(0, 2, 1, 3); // [B,K,S,D]
    NDArray keys = k;
    NDArray values = v;
    if (cache != null) {
      NDArray[] kv = cache.append(layer, k, v, step);
      keys = kv[0];
      values = kv[1];
    }
    NDArray scores = q.matMul(keys);
    NDArray masked = scores.add(mask);
    // the softmax in float32 whatever the activations' type, as transformers computes it
    NDArray wide = precision.toFloat32(masked, step);
    NDArray softmax = sinks == null ? Ops.softmax(wide, step) : withSinks(wide, t, step);
    NDArray probs = precision.fromFloat32(softmax, step); // [B,K,G*T,S]
    // softmax's backward needs only its output, which autograd keeps: free the score tensors (and the float32
    // probabilities once cast) now, not at the end of the step
    if (probs != softmax) {
      softmax.close();
    }
    if (wide != masked) {
      wide.close();
    }
    masked.close();
    scores.close();
    return probs.matMul(values).reshape(b, kvHeads, group, t, headDim).transpose(0, 3, 1, 2, 4)
        .reshape(b, t, (long) heads * headDim);
  }

  /**
   * The softmax of float32 scores {@code [B, K, G*T, S]} over the keys and each query head's sink logit, the sink's
   * share dropped: {@code [B, K, G*T, S]}.
   */
  private NDArray withSinks(NDArray scores, long t, NDManager step) {
    Shape s = scores.getShape();
    // rows are ordered (query head, position): head h = k * G + g repeats over the T positions
    NDArray own = Ops.slice(sinks.getArray(), 0, 0, heads, step); // a view owned by the step, not the parameter
    NDArray sink = Precision.as(own, ai.djl.ndarray.types.DataType.FLOAT32, step).reshape(kvHeads, group, 1).repeat(2, t).reshape(1, kvHeads, group * t, 1)
        .broadcast(new Shape(s.get(0), kvHeads, group * t, 1));
    NDArray joined = Ops.softmax(scores.concat(sink, -1), step);
    return Ops.slice(joined, 3, 0, s.get(3), step);
  }

  /** {@code x} times the rows of heads {@code [from, to)} of the fused q/k/v matrix {@code w} (plus their bias). */
  private NDArray project(NDArray x, NDArray w, NDArray bias, long from, long to) {
    return Ops.linearRows(x, w, bias, from * headDim, to * headDim);
  }

  /** Inputs: {@code x [B, T, d]}, positions int64 {@code [B, T]}, additive mask {@code [B or 1, 1, T, T]}. */
  @Override
  protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> p) {
    NDArray x = inputs.get(0);
    NDArray mask = LlamaModel.groupRows(inputs.get(2), group);
    return new NDList(apply(x, angles(inputs.get(1)), mask, null, 0, null, x.getManager()));
  }

  @Override
  public Shape[] getOutputShapes(Shape[] inputShapes) {
    return inputShapes;
  }
}
