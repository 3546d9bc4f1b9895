package dev.nucleon.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Linear;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;

/**
 * Multi-head latent attention (DeepSeek-V2/V3, {@link LlamaConfig.Latent}), causal, with rotary embeddings on a
 * part of each query and on one key shared by all heads.
 *
 * <ol>
 *   <li>Queries: {@code q_b(norm(q_a(x)))} (or {@code q_proj(x)}), per head a no-rope part and a rotary part.</li>
 *   <li>Latent: {@code kv_a(x)} gives the latent {@code c} (normalized) and the shared rotary key {@code k_pe}.</li>
 *   <li>Training and scoring (no cache): {@code kv_b(c)} expands into every head's no-rope key and value, and
 *       {@code scores = (q_nope . k_nope + q_pe . k_pe) * scale}, as transformers computes them.</li>
 *   <li>Generation (with a cache): only {@code [c ; k_pe]} is cached per position. The key expansion is folded
 *       into the query instead ({@code q_nope W_uk}, per head, {@code [.., kvLoraRank]}), so scores are one product
 *       with the cached latent and rotary key, the probabilities weight the cached latent, and the value expansion
 *       {@code W_uv} is applied once to the result (DeepSeek's "absorbed" form: the same sums in another order).</li>
 * </ol>
 * The softmax runs in float32 whatever the compute type. The query and latent norms use eps 1e-6 whatever
 * {@code rms_norm_eps} says, as transformers builds them.
 */
public final class LatentAttention extends AbstractBlock {

  private static final float LATENT_NORM_EPS = 1e-6f;

  private final int heads;
  private final LlamaConfig.Latent shape;
  private final double scale;
  private final Precision precision;
  private final Parameter qa;
  private final Parameter qaNorm;
  private final Parameter qb;
  private final Parameter q;
  private final Parameter kva;
  private final Parameter kvaNorm;
  private final Parameter kvb;
  private final Parameter out;
  private Rope rope;

  LatentAttention(LlamaConfig c, Precision precision) {
    this.precision = precision;
    heads = c.numHeads();
    shape = c.latent();
    scale = shape.softmaxScale(c.ropeScaling());
    long d = c.hiddenSize();
    long qk = shape.qkNopeDim() + shape.qkRopeDim();
    boolean bottleneck = shape.qLoraRank() > 0;
    qa = bottleneck ? weight("q_a_proj", shape.qLoraRank(), d) : null;
    qaNorm = bottleneck ? weight("q_a_layernorm", shape.qLoraRank()) : null;
    qb = bottleneck ? weight("q_b_proj", heads * qk, shape.qLoraRank()) : null;
    q = bottleneck ? null : weight("q_proj", heads * qk, d);
    kva = weight("kv_a_proj_with_mqa", shape.kvLoraRank() + shape.qkRopeDim(), d);
    kvaNorm = weight("kv_a_layernorm", shape.kvLoraRank());
    kvb = weight("kv_b_proj", (long) heads * (shape.qkNopeDim() + shape.vHeadDim()), shape.kvLoraRank());
    out = weight("o_proj", d, (long) heads * shape.vHeadDim());
  }

  private Parameter weight(String name, long... dims) {
    return addParameter(Parameter.builder().setName(name).setType(Parameter.Type.WEIGHT)
        .optShape(new Shape(dims)).build());
  }

  /** A parameter by its Hugging Face name within the layer ({@code self_attn.kv_b_proj.weight}), or null. */
  Parameter parameter(String name) {
    return switch (name) {
      case "self_attn.q_a_proj.weight" -> qa;
      case "self_attn.q_a_layernorm.weight" -> qaNorm;
      case "self_attn.q_b_proj.weight" -> qb;
      case "self_attn.q_proj.weight" -> q;
      case "self_attn.kv_a_proj_with_mqa.weight" -> kva;
      case "self_attn.kv_a_layernorm.weight" -> kvaNorm;
      case "self_attn.kv_b_proj.weight" -> kvb;
      case "self_attn.o_proj.weight" -> out;
      default -> null;
    };
  }

  void setRope(Rope rope) {
    this.rope = rope;
  }

  Rope.Angles angles(NDArray positions) {
    return rope.angles(positions);
  }

  /**
   * Attends {@code x [B, T, d]}.
   *
   * @param angles cos/sin of the rotary part for the T new positions
   * @param mask additive mask broadcastable to {@code [B, H, T, S]} (0 = attend)
   * @param cache the batch's cache (latent and rotary key per position), or null to attend within {@code x}
   * @param layer this layer's index in the cache
   * @param shared where {@code x} is a {@link SharedPromptRows} packed sequence, its rows as this layer attends them
   *     (the mask and cache are then unused); else null
   * @param step the manager that owns per-step arrays
   */
  NDArray apply(NDArray x, Rope.Angles angles, NDArray mask, KvCache cache, int layer, SharedPromptRows.Layer shared,
      NDManager step) {
    Shape s = x.getShape();
    long b = s.get(0);
    long t = s.get(1);
    int nope = shape.qkNopeDim();
    int rot = shape.qkRopeDim();
    int r = shape.kvLoraRank();
    int v = shape.vHeadDim();
    NDArray query = q != null ? linear(x, q, step)
        : linear(RmsNorm.normalize(linear(x, qa, step), qaNorm, LATENT_NORM_EPS, precision), qb, step);
    query = query.reshape(b, t, heads, nope + rot);
    NDArray qNopeRows = Ops.slice(query, 3, 0, nope, step); // [B, T, H, nope]
    NDArray qPeRows = rope.apply(Ops.slice(query, 3, nope, nope + rot, step), angles); // [B, T, H, rot]
    NDArray compressed = linear(x, kva, step); // [B, T, r + rot]
    NDArray latent = RmsNorm.normalize(Ops.slice(compressed, 2, 0, r, step), kvaNorm, LATENT_NORM_EPS, precision);
    NDArray kPe = rope.apply(Ops.slice(compressed, 2, r, r + rot, step).reshape(b, t, 1, rot), angles); // [B,T,1,rot]
    NDArray expand = owned(precision.weight(kvb, step), step).reshape(heads, nope + v, r);
    if (shared != null) {
      // per-token queries and keys [nope ; rope] (the rotary key shared by the heads), so the rows' scores are one
      // product: the sum of the two products the unpacked path takes
      NDArray kv = Linear.linear(latent, expand.reshape(-1, r)).singletonOrThrow().reshape(b, t, heads, nope + v);
      NDArray qh = qNopeRows.concat(qPeRows, 3);
      NDArray kh = Ops.slice(kv, 3, 0, nope, step).concat(kPe.broadcast(new Shape(b, t, heads, rot)), 3);
      NDArray vh = Ops.slice(kv, 3, nope, nope + v, step);
      NDArray merged = shared.attend(qh, kh, vh, (qr, kr, vr, m, st) -> {
        Shape rows = qr.getShape();
        NDArray scores = qr.transpose(0, 2, 1, 3).matMul(kr.transpose(0, 2, 3, 1)); // [R, H, T, S]
        return probabilities(scores, m, st).matMul(vr.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)
            .reshape(rows.get(0), rows.get(1), (long) heads * v);
      }, step);
      return linear(merged, out, step);
    }
    NDArray qNope = qNopeRows.transpose(0, 2, 1, 3); // [B, H, T, nope]
    NDArray qPe = qPeRows.transpose(0, 2, 1, 3); // [B, H, T, rot]

    NDArray scores;
    NDArray context;
    if (cache == null) {
      NDArray kv = Linear.linear(latent, expand.reshape(-1, r)).singletonOrThrow().reshape(b, t, heads, nope + v);
      NDArray kNope = Ops.slice(kv, 3, 0, nope, step).transpose(0, 2, 3, 1); // [B, H, nope, T]
      NDArray value = Ops.slice(kv, 3, nope, nope + v, step).transpose(0, 2, 1, 3); // [B, H, T, v]
      scores = qNope.matMul(kNope).add(qPe.matMul(kPe.transpose(0, 2, 3, 1))); // [B, H, T, T]
      context = probabilities(scores, mask, step).matMul(value);
    } else {
      // cache [c ; k_pe] as [B, 1, r + rot, T]
      NDArray entry = latent.concat(kPe.reshape(b, t, rot), 2).transpose(0, 2, 1).reshape(b, 1, r + rot, t);
      NDArray keys = cache.append(layer, entry, null, step)[0]; // [B, 1, r + rot, S]
      NDArray absorbed = qNope.matMul(Ops.slice(expand, 1, 0, nope, step)); // [B, H, T, r]
      scores = absorbed.concat(qPe, 3).matMul(keys); // [B, H, T, S]
      NDArray cached = Ops.slice(keys, 2, 0, r, step).transpose(0, 1, 3, 2); // [B, 1, S, r]
      NDArray latentContext = probabilities(scores, mask, step).matMul(cached); // [B, H, T, r]
      context = latentContext.matMul(Ops.slice(expand, 1, nope, nope + v, step).transpose(0, 2, 1)); // [B,H,T,v]
    }
    NDArray merged = context.transpose(0, 2, 1, 3).reshape(b, t, (long) heads * v);
    return linear(merged, out, step);
  }

  /** {@code softmax(scores * scale + mask)} over the keys, in float32, returned in the compute type. */
  private NDArray probabilities(NDArray scores, NDArray mask, NDManager step) {
    NDArray masked = Ops.mul(scores, scale).add(mask);
    NDArray wide = precision.toFloat32(masked, step);
    NDArray softmax = Ops.softmax(wide, step);
    return precision.fromFloat32(softmax, step);
  }

  /** {@code x} times a weight (in the compute type), transposed. */
  private NDArray linear(NDArray x, Parameter w, NDManager step) {
    return Linear.linear(x, precision.weight(w, step)).singletonOrThrow();
  }

  /** A view of {@code w} owned by {@code step}, so that ops on it never attach to the parameters' manager. */
  private static NDArray owned(NDArray w, NDManager step) {
    return Ops.slice(w, 0, 0, w.getShape().get(0), step);
  }

  @Override
  protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> p) {
    NDArray x = inputs.get(0);
    return new NDList(apply(x, angles(inputs.get(1)), inputs.get(2), null, 0, null, x.getManager()));
  }

  @Override
  public Shape[] getOutputShapes(Shape[] inputShapes) {
    return inputShapes;
  }
}
