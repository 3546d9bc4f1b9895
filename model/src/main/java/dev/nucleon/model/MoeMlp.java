package dev.nucleon.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDArrays;
import ai.djl.ndarray.NDList;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.ndarray.types.Shape;
import ai.djl.ndarray.types.SparseFormat;
import ai.djl.nn.AbstractBlock;
import ai.djl.nn.Parameter;
import ai.djl.nn.core.Embedding;
import ai.djl.nn.core.Linear;
import ai.djl.training.ParameterStore;
import ai.djl.util.PairList;

/**
 * A mixture-of-experts MLP ({@link LlamaConfig.Moe}): a router, {@code E} routed SwiGLU experts of which each token
 * uses {@code k}, and optional shared experts every token uses.
 *
 * <ol>
 *   <li>Router: {@code scores = softmax(x W_r^T)} over the experts, in float32 whatever the compute type.</li>
 *   <li>Choice: the {@code k} best of {@code scores} (plus the correction bias where the family has one), or the
 *       choice a {@link Routing} replays.</li>
 *   <li>Weights: the chosen experts' scores, divided by their sum where the family normalizes (the sum clamped at
 *       {@code normMin} where it says), in the compute type.</li>
 *   <li>Experts, grouped: the token rows are gathered in expert order (a counting sort of the choices on the host,
 *       which also needs them for routing replay), each expert with tokens runs one SwiGLU over its contiguous
 *       rows, the results are put back in token order and summed with the weights.</li>
 *   <li>Shared experts: one SwiGLU over every token, added.</li>
 * </ol>
 *
 * <p>Every step is differentiable where it should be (router weights through the gathered scores, experts through
 * their rows); the choice itself is not, as in every MoE trainer. Departure from transformers: Qwen3-MoE computes its
 * router in the model's type (bfloat16 for a bfloat16 model); here it is always float32, as ERNIE's is.
 */
public final class MoeMlp extends AbstractBlock {

  private final LlamaConfig.Moe moe;
  private final Precision precision;
  private final Parameter router;
  private final Parameter correction;
  private final Parameter gateUp;
  private final Parameter down;
  private final SwiGluMlp shared;

  MoeMlp(int dim, LlamaConfig.Moe moe, Precision precision) {
    this.moe = moe;
    this.precision = precision;
    long e = moe.numExperts();
    long inner = moe.expertSize();
    router = addParameter(Parameter.builder().setName("gate").setType(Parameter.Type.WEIGHT)
        .optShape(new Shape(e, dim)).build());
    correction = moe.correctionBias() ? addParameter(Parameter.builder().setName("e_score_correction_bias")
        .setType(Parameter.Type.BIAS).optShape(new Shape(e)).build()) : null;
    gateUp = addParameter(Parameter.builder().setName("experts_gate_up").setType(Parameter.Type.WEIGHT)
        .optShape(new Shape(e, 2 * inner, dim)).build());
    down = addParameter(Parameter.builder().setName("experts_down").setType(Parameter.Type.WEIGHT)
        .optShape(new Shape(e, dim, inner)).build());
    shared = moe.sharedSize() > 0
        ? addChildBlock("shared_experts", new SwiGluMlp(dim, moe.sharedSize(), false, precision)) : null;
  }

  /** A parameter by its name within the layer (as {@link WeightLayout} lists a sparse layer's), or null. */
  Parameter parameter(String name) {
    return switch (name) {
      case WeightLayout.ROUTER -> router;
      case WeightLayout.CORRECTION_BIAS -> correction;
      case WeightLayout.EXPERTS_GATE_UP -> gateUp;
      case WeightLayout.EXPERTS_DOWN -> down;
      case "mlp.shared_experts.gate_up_proj.weight" -> shared == null ? null : shared.gateUp();
      case "mlp.shared_experts.down_proj.weight" -> shared == null ? null : shared.down();
      default -> null;
    };
  }

  /**
   * Applies the mixture to {@code x [..., d]} (in the compute type); the result lives in x's manager.
   *
   * @param routing records or replays the choices (null: the router chooses, nothing is recorded)
   * @param layer this block's layer index, the key of its choices in {@code routing}
   */
  NDArray apply(NDArray x, Routing routing, int layer) {
    NDManager m = x.getManager();
    Shape shape = x.getShape();
    long d = shape.get(shape.dimension() - 1);
    NDArray flat = x.reshape(-1, d);
    int n = (int) flat.getShape().get(0);
    int k = moe.topK();
    int experts = moe.numExperts();

    NDArray logits = Linear.linear(Precision.as(flat, DataType.FLOAT32, m),
        Precision.as(router.getArray(), DataType.FLOAT32, m)).singletonOrThrow();
    NDArray scores = logits.softmax(-1);
    NDArray ranked = correction == null ? scores
        : scores.add(Precision.as(correction.getArray(), DataType.FLOAT32, m));
    NDList top = ranked.topK(k, -1, true, true);
    long[] freeIds = top.get(1).toLongArray();
    top.close();
    int[] free = new int[freeIds.length];
    for (int i = 0; i < free.length; i++) {
      free[i] = (int) freeIds[i];
    }
    int[] ids = routing == null ? free : routing.route(layer, free, k, experts);

    long[] chosen = new long[ids.length];
    for (int i = 0; i < ids.length; i++) {
      chosen[i] = ids[i];
    }
    NDArray weights = scores.gather(m.create(chosen, new Shape(n, k)), 1);
    if (moe.normalizeTopK()) {
      NDArray sum = weights.sum(new int[] {-1}, true);
      weights = weights.div(moe.normMin() > 0 ? Ops.maximum(sum, moe.normMin()) : sum);
    }
    weights = precision.fromFloat32(weights, m);

    // counting sort of the n * k assignments by expert: row order of the gathered tokens, and where each
    // assignment's output lands in it
    int[] count = new int[experts];
    for (int e : ids) {
      count[e]++;
    }
    int[] start = new int[experts + 1];
    for (int e = 0; e < experts; e++) {
      start[e + 1] = start[e] + count[e];
    }
    int[] fill = start.clone();
    long[] tokenOfRow = new long[ids.length];
    long[] rowOfAssignment = new long[ids.length];
    for (int a = 0; a < ids.length; a++) {
      int row = fill[ids[a]]++;
      tokenOfRow[row] = a / k;
      rowOfAssignment[a] = row;
    }
    NDArray rows = Embedding.embedding(m.create(tokenOfRow), flat, SparseFormat.DENSE).singletonOrThrow();
    NDList outputs = new NDList();
    for (int e = 0; e < experts; e++) {
      if (count[e] == 0) {
        continue;
      }
      NDArray mine = Ops.slice(rows, 0, start[e], start[e + 1], m);
      outputs.add(SwiGluMlp.apply(mine, expert(gateUp, e, m), null, expert(down, e, m), null, null));
    }
    NDArray sorted = outputs.size() == 1 ? outputs.get(0) : NDArrays.concat(outputs, 0);
    NDArray perAssignment = Embedding.embedding(m.create(rowOfAssignment), sorted, SparseFormat.DENSE)
        .singletonOrThrow().reshape(n, k, d);
    NDArray out = perAssignment.mul(weights.expandDims(-1)).sum(new int[] {1});
    if (shared != null) {
      out = out.add(shared.apply(flat));
    }
    return out.reshape(shape);
  }

  /** Expert {@code e}'s slab of a stacked expert parameter, in the compute type (only that slab cast). */
  private NDArray expert(Parameter stacked, int e, NDManager m) {
    NDArray slab = Ops.slice(stacked.getArray(), 0, e, e + 1, m);
    Shape s = slab.getShape();
    return Precision.as(slab, precision.compute(), m).reshape(s.get(1), s.get(2));
  }

  @Override
  protected NDList forwardInternal(ParameterStore ps, NDList inputs, boolean training, PairList<String, Object> p) {
    return new NDList(apply(inputs.singletonOrThrow(), null, 0));
  }

  @Override
  protected void initializeChildBlocks(NDManager manager, DataType dataType, Shape... inputShapes) {
    for (var child : getChildren().values()) {
      child.initialize(manager, dataType, inputShapes[0]);
    }
  }

  @Override
  public Shape[] getOutputShapes(Shape[] inputShapes) {
    return inputShapes;
  }
}
