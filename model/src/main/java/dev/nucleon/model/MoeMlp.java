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
 *   <li>Router: logits {@code x W_r^T (+ b_r)} in float32 whatever the compute type, and scores from them: a
 *       softmax over the experts (Qwen3-MoE, ERNIE), each expert's sigmoid (DeepSeek-V3), or the logits themselves
 *       (gpt-oss, whose softmax comes after the choice).</li>
 *   <li>Choice: the {@code k} best scores (plus the correction bias where the family has one; with groups, only
 *       from the {@code topKGroups} groups whose two best scores sum highest, the others' scores set to 0 as
 *       transformers does), or the choice a {@link Routing} replays.</li>
 *   <li>Weights: the chosen experts' scores (gpt-oss: a softmax over the chosen logits), divided by their sum where
 *       the family normalizes (the sum clamped at {@code normMin} where it says), times the routed scaling, in the
 *       compute type.</li>
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
  private final Parameter routerBias;
  private final Parameter correction;
  private final Parameter gateUp;
  private final Parameter down;
  private final Parameter gateUpBias;
  private final Parameter downBias;
  private final SwiGluMlp shared;

  MoeMlp(int dim, LlamaConfig.Moe moe, Precision precision) {
    this.moe = moe;
    this.precision = precision;
    long e = moe.numExperts();
    long inner = moe.expertSize();
    router = addParameter(Parameter.builder().setName("gate").setType(Parameter.Type.WEIGHT)
        .optShape(new Shape(e, dim)).build());
    routerBias = moe.router().bias() ? addParameter(Parameter.builder().setName("gate_bias")
        .setType(Parameter.Type.BIAS).optShape(new Shape(e)).build()) : null;
    correction = moe.router().correctionBias() ? addParameter(Parameter.builder().setName("e_score_correction_bias")
        .setType(Parameter.Type.BIAS).optShape(new Shape(e)).build()) : null;
    gateUp = addParameter(Parameter.builder().setName("experts_gate_up").setType(Parameter.Type.WEIGHT)
        .optShape(new Shape(e, 2 * inner, dim)).build());
    down = addParameter(Parameter.builder().setName("experts_down").setType(Parameter.Type.WEIGHT)
        .optShape(new Shape(e, dim, inner)).build());
    gateUpBias = moe.expertBias() ? addParameter(Parameter.builder().setName("experts_gate_up_bias")
        .setType(Parameter.Type.BIAS).optShape(new Shape(e, 2 * inner)).build()) : null;
    downBias = moe.expertBias() ? addParameter(Parameter.builder().setName("experts_down_bias")
        .setType(Parameter.Type.BIAS).optShape(new Shape(e, dim)).build()) : null;
    shared = moe.sharedSize() > 0
        ? addChildBlock("shared_experts", new SwiGluMlp(dim, moe.sharedSize(), false, precision)) : null;
  }

  /** A parameter by its name within the layer (as {@link WeightLayout} lists a sparse layer's), or null. */
  Parameter parameter(String name) {
    return switch (name) {
      case WeightLayout.ROUTER -> router;
      case WeightLayout.ROUTER_BIAS -> routerBias;
      case WeightLayout.CORRECTION_BIAS -> correction;
      case WeightLayout.EXPERTS_GATE_UP -> gateUp;
      case WeightLayout.EXPERTS_DOWN -> down;
      case WeightLayout.EXPERTS_GATE_UP_BIAS -> gateUpBias;
      case WeightLayout.EXPERTS_DOWN_BIAS -> downBias;
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

    LlamaConfig.Router r = moe.router();
    NDArray logits = Linear.linear(Precision.as(flat, DataType.FLOAT32, m),
        Precision.as(router.getArray(), DataType.FLOAT32, m), Precision.as(
            routerBias == null ? null : routerBias.getArray(), DataType.FLOAT32, m)).singletonOrThrow();
    NDArray scores = switch (r.scoring()) {
      case SOFTMAX -> logits.softmax(-1);
      case SIGMOID -> logits.getNDArrayInternal().sigmoid();
      case SOFTMAX_OF_TOP_K -> logits;
    };
    NDArray ranked = correction == null ? scores
        : scores.add(Precision.as(correction.getArray(), DataType.FLOAT32, m));
    int[] free = r.groups() > 1 ? groupedTopK(ranked.toFloatArray(), n) : topK(ranked, k);
    int[] ids = routing == null ? free : routing.route(layer, free, k, experts);
    if (routing != null && routing.auxTokens() != null) {
      collectAux(routing, r.scoring() == LlamaConfig.Scoring.SOFTMAX ? scores : logits.softmax(-1), ids, n, k, m);
    }

    long[] chosen = new long[ids.length];
    for (int i = 0; i < ids.length; i++) {
      chosen[i] = ids[i];
    }
    // index and mask arrays made from Java data are copied into libtorch's memory (Ops.owned): the training forward
    // closes this layer's manager before backward, which reads them
    NDArray weights = scores.gather(Ops.owned(m.create(chosen, new Shape(n, k))), 1);
    if (r.scoring() == LlamaConfig.Scoring.SOFTMAX_OF_TOP_K) {
      weights = weights.softmax(-1);
    }
    if (r.normalizeTopK()) {
      NDArray sum = weights.sum(new int[] {-1}, true);
      weights = weights.div(r.normMin() > 0 ? Ops.maximum(sum, r.normMin()) : sum);
    }
    if (r.scaling() != 1) {
      weights = Ops.mul(weights, r.scaling());
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
    NDArray rows = Embedding.embedding(Ops.owned(m.create(tokenOfRow)), flat, SparseFormat.DENSE).singletonOrThrow();
    NDList outputs = new NDList();
    for (int e = 0; e < experts; e++) {
      if (count[e] == 0) {
        continue;
      }
      NDArray mine = Ops.slice(rows, 0, start[e], start[e + 1], m);
      outputs.add(SwiGluMlp.apply(mine, expert(gateUp, e, m), expert(gateUpBias, e, m), expert(down, e, m),
          expert(downBias, e, m), null, moe.swigluLimit()));
    }
    NDArray sorted = outputs.size() == 1 ? outputs.get(0) : NDArrays.concat(outputs, 0);
    NDArray perAssignment = Embedding.embedding(Ops.owned(m.create(rowOfAssignment)), sorted, SparseFormat.DENSE)
        .singletonOrThrow().reshape(n, k, d);
    NDArray out = perAssignment.mul(weights.expandDims(-1)).sum(new int[] {1});
    if (shared != null) {
      out = out.add(shared.apply(flat));
    }
    return out.reshape(shape);
  }

  /** Hands the load-balancing loss this layer's router probabilities and choices over the counted tokens. */
  private void collectAux(Routing routing, NDArray probabilities, int[] ids, int n, int k, NDManager m) {
    boolean[] counted = routing.auxTokens();
    if (counted.length != n) {
      throw new IllegalArgumentException("the load-balancing loss counts " + counted.length + " tokens, but the "
          + "forward pass has " + n);
    }
    float[] mask = new float[n];
    long[] counts = new long[moe.numExperts()];
    long tokens = 0;
    for (int t = 0; t < n; t++) {
      if (counted[t]) {
        mask[t] = 1f;
        tokens++;
        for (int j = 0; j < k; j++) {
          counts[ids[t * k + j]]++;
        }
      }
    }
    NDArray sum = probabilities.mul(Ops.owned(m.create(mask, new Shape(n, 1)))).sum(new int[] {0});
    routing.addAux(sum, counts, tokens);
  }

  /** The k best of each row of {@code ranked [n, E]}, best first (ids in the router's order). */
  private static int[] topK(NDArray ranked, int k) {
    NDList top = ranked.topK(k, -1, true, true);
    long[] ids = top.get(1).toLongArray();
    top.close();
    int[] out = new int[ids.length];
    for (int i = 0; i < out.length; i++) {
      out[i] = (int) ids[i];
    }
    return out;
  }

  /**
   * Group-limited choice on the host (DeepSeek-V3's): each group scored by the sum of its two best scores, the
   * {@code topKGroups} best groups kept, the other groups' scores set to 0, then the k best experts, best first.
   */
  private int[] groupedTopK(float[] ranked, int n) {
    int experts = moe.numExperts();
    int k = moe.topK();
    int groups = moe.router().groups();
    int size = experts / groups;
    int[] out = new int[n * k];
    float[] row = new float[experts];
    float[] groupScore = new float[groups];
    for (int t = 0; t < n; t++) {
      System.arraycopy(ranked, t * experts, row, 0, experts);
      for (int g = 0; g < groups; g++) {
        float best = Float.NEGATIVE_INFINITY;
        float second = Float.NEGATIVE_INFINITY;
        for (int e = g * size; e < (g + 1) * size; e++) {
          if (row[e] > best) {
            second = best;
            best = row[e];
          } else if (row[e] > second) {
            second = row[e];
          }
        }
        groupScore[g] = size == 1 ? best : best + second;
      }
      boolean[] kept = new boolean[groups];
      for (int j = 0; j < moe.router().topKGroups(); j++) {
        int pick = -1;
        for (int g = 0; g < groups; g++) {
          if (!kept[g] && (pick < 0 || groupScore[g] > groupScore[pick])) {
            pick = g;
          }
        }
        kept[pick] = true;
      }
      for (int g = 0; g < groups; g++) {
        if (!kept[g]) {
          java.util.Arrays.fill(row, g * size, (g + 1) * size, 0f);
        }
      }
      boolean[] taken = new boolean[experts];
      for (int j = 0; j < k; j++) {
        int pick = -1;
        for (int e = 0; e < experts; e++) {
          if (!taken[e] && (pick < 0 || row[e] > row[pick])) {
            pick = e;
          }
        }
        taken[pick] = true;
        out[t * k + j] = pick;
      }
    }
    return out;
  }

  /**
   * Expert {@code e}'s slab of a stacked expert parameter ({@code [E, ...]}), in the compute type (only that slab
   * cast); null for a parameter the family does not have.
   */
  private NDArray expert(Parameter stacked, int e, NDManager m) {
    if (stacked == null) {
      return null;
    }
    NDArray slab = Ops.slice(stacked.getArray(), 0, e, e + 1, m);
    Shape s = slab.getShape();
    NDArray typed = Precision.as(slab, precision.compute(), m);
    return s.dimension() == 2 ? typed.reshape(s.get(1)) : typed.reshape(s.get(1), s.get(2));
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
