package dev.nucleon.model;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.DataType;
import ai.djl.nn.Parameter;
import ai.djl.pytorch.engine.PtNDArray;
import ai.djl.pytorch.engine.PtNDManager;
import ai.djl.pytorch.engine.PtSymbolBlock;
import ai.djl.pytorch.jni.IValue;
import ai.djl.pytorch.jni.IValueUtils;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * The decoder's forward pass with a KV cache (generation's prefill and decode steps) as one TorchScript call.
 *
 * <p><b>Why.</b> Run op by op through DJL, a decode step crosses into native code about 300 times for a 5-layer
 * model (each op, plus the shape queries, scalar constants and frees around it), and on a small model a third of
 * the step is spent between ops. Here the whole step is one call: the module below runs the same ATen ops in the
 * same order as {@link DecoderLayer}, {@link Attention}, {@link SwiGluMlp}, {@link RmsNorm} and {@link Rope} do in
 * eager mode (so its logits are those of the eager path), and Java only hands it the tensors.
 *
 * <p><b>Large matrices on the CPU</b> are multiplied through oneDNN from reordered copies ({@link
 * ReorderedWeights}), which MKL's products on the plain matrices are not: there the logits agree with the eager
 * path's to rounding (a relative 1e-5 in float32), not bit for bit. The copies are remade when the model's weight
 * epoch advances, and a trainable model (whose optimizer writes its parameters in place) has none.
 *
 * <p><b>How.</b> The source is written from the model's config (head counts, which biases and q/k norms the family
 * has, pre- or post-norm, the compute type) and compiled by libtorch when the model is built (see
 * {@link TorchScripts}). The module holds no tensors: each call passes the parameters, rotary tables, per-layer
 * masks and the cache's key/value tensors as lists, so a weight update (parameters overwritten in place, or
 * replaced) needs nothing from it but a new weight epoch. New keys and values are written into the cache in place;
 * the caller advances the cache.
 *
 * <p>Only generation uses it: training and scoring run with autograd, which the eager blocks serve.
 */
final class DecodeScript implements AutoCloseable {

  private static final String CLASS = "DecodeStep";

  private final NDManager manager;
  private final PtSymbolBlock module;
  /**
   * The query scale (a 0-d float32 tensor, what eager attention multiplies by), then each distinct rotary table's
   * cos, sin and rotation.
   */
  private final List<NDArray> globals;
  /** Every layer's parameters, in the order the source indexes them ({@link Layout}). */
  private final Parameter[] layerParameters;
  private final Parameter[] globalParameters;
  /** oneDNN-layout copies of the large matrices, or null where the products use the plain parameters only. */
  private final ReorderedWeights reordered;
  /** Indices into {@link #layerParameters} of the matrices {@link #reordered} copies (the head's comes last). */
  private final int[] reorderedLayerParameters;
  private final boolean reorderedHead;
  private final boolean reorder;

  /**
   * @param reorder whether the large matrices may be multiplied through oneDNN-layout copies ({@link
   *     ReorderedWeights}; CPU only): only for a model whose parameters change through {@link LlamaModel}'s own
   *     writes, which advance the weight epoch {@link #forward} is given
   */
  DecodeScript(LlamaConfig config, Precision precision, List<DecoderLayer> layers, Parameter embed,
      Parameter finalNorm, Parameter head, Rope[] layerRopes, boolean reorder, NDManager parent) {
    if (precision.weights() != precision.compute()) {
      throw new IllegalArgumentException("the decode script runs models whose weights are in the compute type, not "
          + precision);
    }
    List<Rope> ropes = new ArrayList<>();
    Map<Rope, Integer> ropeIndex = new IdentityHashMap<>();
    int[] ropeOf = new int[layerRopes.length];
    for (int i = 0; i < layerRopes.length; i++) {
      ropeOf[i] = ropeIndex.computeIfAbsent(layerRopes[i], r -> {
        ropes.add(r);
        return ropes.size() - 1;
      });
    }
    globalParameters = new Parameter[] {embed, finalNorm, head == null ? embed : head};
    manager = parent.newSubManager();
    manager.setName("decode-script");
    globals = new ArrayList<>();
    // the same constant eager attention multiplies queries by (Ops.mul): a float32 tensor on the model's device, so
    // both paths round alike in bfloat16 on any device (a literal would stay a double scalar on a GPU)
    globals.add(Ops.scalar(manager, layers.isEmpty() ? 1f : layers.get(0).attention().scale()));
    for (Rope r : ropes) {
      globals.add(r.cosTable());
      globals.add(r.sinTable());
      globals.add(r.rotation());
    }
    List<Parameter> params = new ArrayList<>();
    Layout layout = null;
    for (DecoderLayer layer : layers) {
      Layout l = new Layout(layer);
      layout = l;
      params.addAll(l.parameters);
    }
    layerParameters = params.toArray(new Parameter[0]);
    this.reorder = reorder;
    // a matrix of the layout is reordered in every layer or in none (the source indexes all layers alike)
    Set<Integer> slots = new TreeSet<>();
    boolean headToo = false;
    if (reorder && layout != null) {
      for (int slot : new int[] {layout.qkv, layout.out, layout.gateUp, layout.down}) {
        boolean all = true;
        for (int i = slot; i < layerParameters.length; i += layout.parameters.size()) {
          all &= ReorderedWeights.worthIt(layerParameters[i].getArray());
        }
        if (all) {
          slots.add(slot);
        }
      }
      headToo = ReorderedWeights.worthIt(globalParameters[2].getArray());
    }
    reordered = slots.isEmpty() && !headToo ? null : ReorderedWeights.create(manager, precision.compute());
    if (reordered == null) {
      slots.clear();
      headToo = false;
    }
    List<Integer> indices = new ArrayList<>();
    for (int first = 0; !slots.isEmpty() && first < layerParameters.length; first += layout.parameters.size()) {
      for (int slot : slots) {
        indices.add(first + slot);
      }
    }
    reorderedLayerParameters = indices.stream().mapToInt(Integer::intValue).toArray();
    reorderedHead = headToo;
    module = TorchScripts.load(manager, CLASS, source(config, precision.compute(), layout, ropes.size(), ropeOf,
        slots, reorderedHead));
  }

  /** The {@code reorder} it was made with. */
  boolean reorders() {
    return reorder;
  }

  /** How many weight matrices the products read from oneDNN-layout copies (0: all plain). */
  int reorderedMatrices() {
    return reorderedLayerParameters.length + (reorderedHead ? 1 : 0);
  }

  /**
   * Runs the decoder over {@code T} new tokens per sequence, writing their keys and values into {@code cache} at its
   * current length (the caller advances it). Logits are float32; they live in {@code tokens}' manager.
   *
   * <p>DJL runs the call in libtorch's inference mode: the logits are inference tensors, which later ops may read
   * and view but not modify in place. The calling thread's graph executor is set not to optimize (the profiling
   * executor would re-specialize the graph as batch and cache lengths change, and on a GPU fuse element-wise ops,
   * which rounds differently from the eager path).
   *
   * @param masks each layer's additive mask, grouped for its query heads ({@link LlamaModel}'s layer masks)
   */
  NDArray forward(NDArray tokens, NDArray positions, NDArray[] masks, KvCache cache, boolean lastOnly,
      long weightsEpoch) {
    PtNDArray[] g = new PtNDArray[globalParameters.length + globals.size()];
    for (int i = 0; i < globalParameters.length; i++) {
      g[i] = (PtNDArray) globalParameters[i].getArray();
    }
    for (int i = 0; i < globals.size(); i++) {
      g[globalParameters.length + i] = (PtNDArray) globals.get(i);
    }
    PtNDArray[] w = new PtNDArray[layerParameters.length];
    for (int i = 0; i < w.length; i++) {
      w[i] = (PtNDArray) layerParameters[i].getArray();
    }
    if (reordered == null) {
      return run(tokens, positions, g, w, masks, cache, lastOnly);
    }
    // the source reads these slots as oneDNN-layout copies: made again when the weights changed since
    NDArray[] sources = new NDArray[reorderedMatrices()];
    for (int i = 0; i < reorderedLayerParameters.length; i++) {
      sources[i] = w[reorderedLayerParameters[i]];
    }
    if (reorderedHead) {
      sources[sources.length - 1] = g[2];
    }
    return reordered.with(sources, weightsEpoch, copies -> {
      for (int i = 0; i < reorderedLayerParameters.length; i++) {
        w[reorderedLayerParameters[i]] = copies[i];
      }
      if (reorderedHead) {
        g[2] = copies[copies.length - 1];
      }
      return run(tokens, positions, g, w, masks, cache, lastOnly);
    });
  }

  private NDArray run(NDArray tokens, NDArray positions, PtNDArray[] g, PtNDArray[] w, NDArray[] masks,
      KvCache cache, boolean lastOnly) {
    int layers = masks.length;
    PtNDArray[] m = new PtNDArray[layers];
    PtNDArray[] keys = new PtNDArray[layers];
    PtNDArray[] values = new PtNDArray[layers];
    for (int i = 0; i < layers; i++) {
      m[i] = (PtNDArray) masks[i];
      keys[i] = (PtNDArray) cache.keys(i);
      values[i] = (PtNDArray) cache.values(i);
    }
    TorchScripts.plainExecutor();
    IValue[] in = new IValue[13];
    try {
      in[0] = IValue.from((PtNDArray) tokens);
      in[1] = IValue.from((PtNDArray) positions);
      in[2] = IValue.listFrom(g);
      in[3] = IValue.listFrom(w);
      in[4] = IValue.listFrom(m);
      in[5] = IValue.listFrom(keys);
      in[6] = IValue.listFrom(values);
      in[7] = IValue.from((long) cache.length());
      in[8] = IValue.from(lastOnly);
      in[9] = IValue.listFrom(cache.blockRows());
      in[10] = IValue.listFrom(cache.blockEnds());
      in[11] = IValue.listFrom(cache.blockColumns());
      in[12] = IValue.listFrom(cache.decodedRowIndices());
      try (IValue out = IValueUtils.runMethod(module, "forward", in)) {
        return out.toTensor((PtNDManager) tokens.getManager());
      }
    } finally {
      for (IValue v : in) {
        if (v != null) {
          v.close();
        }
      }
    }
  }

  @Override
  public void close() {
    if (reordered != null) {
      reordered.close();
    }
    manager.close();
  }

  /** Which of a layer's parameters the family has, and their order in the per-layer list. */
  private static final class Layout {
    final List<Parameter> parameters = new ArrayList<>();
    final int firstNorm;
    final int qkv;
    final int qkvBias;
    final int qNorm;
    final int kNorm;
    final int out;
    final int outBias;
    final int secondNorm;
    final int gateUp;
    final int gateUpBias;
    final int down;
    final int downBias;

    Layout(DecoderLayer layer) {
      Attention a = layer.attention();
      SwiGluMlp mlp = layer.mlp();
      firstNorm = add(layer.firstNorm().weight());
      qkv = add(a.qkv());
      qkvBias = add(a.qkvBias());
      qNorm = add(a.qNorm());
      kNorm = add(a.kNorm());
      out = add(a.out());
      outBias = add(a.outBias());
      secondNorm = add(layer.secondNorm().weight());
      gateUp = add(mlp.gateUp());
      gateUpBias = add(mlp.gateUpBias());
      down = add(mlp.down());
      downBias = add(mlp.downBias());
    }

    /** The parameter's index in the list, or -1 where the family has none. */
    private int add(Parameter p) {
      if (p == null) {
        return -1;
      }
      parameters.add(p);
      return parameters.size() - 1;
    }
  }

  /** The module's TorchScript source for this config; every index and flag is a constant in it. */
  static String source(LlamaConfig c, DataType compute, Layout l, int ropeCount, int[] ropeOf,
      Set<Integer> reordered, boolean reorderedHead) {
    boolean f32 = compute == DataType.FLOAT32;
    int h = c.numHeads();
    int k = c.numKvHeads();
    int d = c.headDim();
    int g = c.groupSize();
    String self = "self: __torch__." + CLASS;
    StringBuilder s = new StringBuilder(TorchScripts.classHeader(CLASS));
    s.append("  def forward(").append(self).append(", tokens: Tensor, positions: Tensor, g: List[Tensor], ")
        .append("w: List[Tensor], masks: List[Tensor], keys: List[Tensor], values: List[Tensor], length: int, ")
        .append("last_only: bool, block_rows: List[int], block_ends: List[int], block_columns: List[int], ")
        .append("decoded_rows: List[int]) -> Tensor:\n");
    s.append("    b = torch.size(tokens, 0)\n");
    s.append("    t = torch.size(tokens, 1)\n");
    s.append("    end = length + t\n");
    // the rows of the cache this forward decodes, when its blocks leave some out: their new keys and values are
    // written to those rows (None: to every row, with no index made)
    s.append("    written : Optional[Tensor] = None\n");
    s.append("    if len(decoded_rows) > 0:\n");
    s.append("      written = torch.tensor(decoded_rows, dtype=4, device=tokens.device)\n");
    s.append("    x = torch.embedding(g[0], tokens)\n");
    s.append("    cs : List[Tensor] = []\n");
    s.append("    ss : List[Tensor] = []\n");
    s.append("    rs : List[Tensor] = []\n");
    for (int r = 0; r < ropeCount; r++) {
      int at = 4 + 3 * r;
      s.append("    cs.append(torch.reshape(torch.embedding(g[").append(at).append("], positions), [b, t, 1, ")
          .append(d).append("]))\n");
      s.append("    ss.append(torch.reshape(torch.embedding(g[").append(at + 1).append("], positions), [b, t, 1, ")
          .append(d).append("]))\n");
      s.append("    rs.append(g[").append(at + 2).append("])\n");
    }
    StringBuilder list = new StringBuilder();
    for (int i = 0; i < ropeOf.length; i++) {
      list.append(i == 0 ? "" : ", ").append(ropeOf[i]);
    }
    s.append("    rope_of : List[int] = [").append(list).append("]\n");
    s.append("    for i in range(").append(ropeOf.length).append("):\n");
    s.append("      p = i * ").append(l == null ? 0 : l.parameters.size()).append("\n");
    s.append("      r = rope_of[i]\n");
    if (l != null) {
      String attend = "self.attend(%s, cs[r], ss[r], rs[r], g[3], w, p, masks[i], keys[i], values[i], length, end, "
          + "block_rows, block_ends, block_columns, written)";
      if (c.normPlacement() == LlamaConfig.NormPlacement.PRE) {
        s.append("      x = torch.add(x, ").append(String.format(Locale.ROOT, attend,
            "self.norm(x, w[p + " + l.firstNorm + "])")).append(")\n");
        s.append("      x = torch.add(x, self.mlp(self.norm(x, w[p + ").append(l.secondNorm).append("]), w, p))\n");
      } else {
        s.append("      x = torch.add(x, self.norm(").append(String.format(Locale.ROOT, attend, "x"))
            .append(", w[p + ").append(l.firstNorm).append("]))\n");
        s.append("      x = torch.add(x, self.norm(self.mlp(x, w, p), w[p + ").append(l.secondNorm).append("]))\n");
      }
    }
    s.append("    if last_only:\n");
    s.append("      x = torch.slice(x, 1, t - 1, t)\n");
    s.append("    logits = ").append(product("self.norm(x, g[1])", "g[2]", reorderedHead)).append("\n");
    s.append(f32 ? "    return logits\n" : "    return torch.to(logits, 6)\n");

    // RMSNorm over the last axis, statistics in float32 (RmsNorm.normalize)
    s.append("  def norm(").append(self).append(", x: Tensor, weight: Tensor) -> Tensor:\n");
    s.append(f32 ? "    wide = x\n" : "    wide = torch.to(x, 6)\n");
    s.append("    rms = torch.sqrt(torch.add(torch.mean(torch.square(wide), [-1], True), ")
        .append(literal((float) c.rmsNormEps())).append("))\n");
    s.append(f32 ? "    return torch.mul(torch.div(wide, rms), weight)\n"
        : "    return torch.mul(torch.to(torch.div(wide, rms), " + typeCode(compute) + "), weight)\n");

    // the softmax over the last axis, rows shorter than 16 padded with -inf on the CPU (Ops.softmax)
    s.append("  def softmax(").append(self).append(", x: Tensor) -> Tensor:\n");
    s.append("    n = torch.size(x, -1)\n");
    s.append("    if n < ").append(Ops.SHORT_SOFTMAX_ROW).append(" and not x.is_cuda:\n");
    s.append("      padded = torch.constant_pad_nd(x, [0, ").append(Ops.SHORT_SOFTMAX_ROW)
        .append(" - n], float(\"-inf\"))\n");
    s.append("      return torch.slice(torch.softmax(padded, -1), -1, 0, n)\n");
    s.append("    return torch.softmax(x, -1)\n");

    // rotary embedding: x * cos + (x @ R) * sin (Rope.apply)
    s.append("  def rope(").append(self).append(", x: Tensor, c: Tensor, sn: Tensor, rot: Tensor) -> Tensor:\n");
    s.append("    return torch.add(torch.mul(x, c), torch.mul(torch.matmul(x, rot), sn))\n");

    if (l != null) {
      appendAttend(s, self, c, l, h, k, d, g, compute, reordered);
      // SwiGLU (SwiGluMlp's decoding path: one product for gate and up, then split)
      s.append("  def mlp(").append(self).append(", x: Tensor, w: List[Tensor], p: int) -> Tensor:\n");
      s.append("    parts = torch.chunk(").append(linear("x", l.gateUp, l.gateUpBias, reordered))
          .append(", 2, -1)\n");
      s.append("    gate = parts[0]\n");
      s.append("    hidden = torch.mul(torch.mul(gate, torch.sigmoid(gate)), parts[1])\n");
      s.append("    return ").append(linear("hidden", l.down, l.downBias, reordered)).append("\n");
    }
    return s.toString();
  }

  /** Attention's decoding path (Attention.apply without autograd, with a cache). */
  private static void appendAttend(StringBuilder s, String self, LlamaConfig c, Layout l, int h, int k, int d, int g,
      DataType compute, Set<Integer> reordered) {
    boolean f32 = compute == DataType.FLOAT32;
    s.append("  def attend(").append(self).append(", x: Tensor, c: Tensor, sn: Tensor, rot: Tensor, scale: Tensor, ")
        .append("w: List[Tensor], p: int, mask: Tensor, kc: Tensor, vc: Tensor, length: int, end: int, ")
        .append("block_rows: List[int], block_ends: List[int], block_columns: List[int], ")
        .append("written: Optional[Tensor]) -> Tensor:\n");
    s.append("    b = torch.size(x, 0)\n");
    s.append("    t = torch.size(x, 1)\n");
    s.append("    proj = torch.reshape(").append(linear("x", l.qkv, l.qkvBias, reordered)).append(", [b, t, ")
        .append(h + 2 * k).append(", ").append(d).append("])\n");
    switch (c.qkNorm()) {
      case NONE -> {
        s.append("    qk = self.rope(torch.slice(proj, 2, 0, ").append(h + k).append("), c, sn, rot)\n");
        s.append("    qh = torch.slice(qk, 2, 0, ").append(h).append(")\n");
        s.append("    kh = torch.slice(qk, 2, ").append(h).append(", ").append(h + k).append(")\n");
      }
      case PER_HEAD -> {
        s.append("    qh = self.rope(self.norm(torch.slice(proj, 2, 0, ").append(h).append("), w[p + ")
            .append(l.qNorm).append("]), c, sn, rot)\n");
        s.append("    kh = self.rope(self.norm(torch.slice(proj, 2, ").append(h).append(", ").append(h + k)
            .append("), w[p + ").append(l.kNorm).append("]), c, sn, rot)\n");
      }
      case FULL_WIDTH -> {
        s.append("    qn = self.norm(torch.reshape(torch.slice(proj, 2, 0, ").append(h).append("), [b, t, -1]), w[p + ")
            .append(l.qNorm).append("])\n");
        s.append("    qh = self.rope(torch.reshape(qn, [b, t, ").append(h).append(", ").append(d)
            .append("]), c, sn, rot)\n");
        s.append("    kn = self.norm(torch.reshape(torch.slice(proj, 2, ").append(h).append(", ").append(h + k)
            .append("), [b, t, -1]), w[p + ").append(l.kNorm).append("])\n");
        s.append("    kh = self.rope(torch.reshape(kn, [b, t, ").append(k).append(", ").append(d)
            .append("]), c, sn, rot)\n");
      }
      default -> throw new IllegalStateException("unknown q/k norm " + c.qkNorm());
    }
    s.append("    vh = torch.slice(proj, 2, ").append(h + k).append(", ").append(h + 2 * k).append(")\n");
    // one new token (a decode step): folding the query heads into rows is a reshape, no permutation
    s.append("    if t == 1:\n");
    s.append("      grouped = torch.reshape(qh, [b, ").append(k).append(", ").append(g).append(", ").append(d)
        .append("])\n");
    s.append("    else:\n");
    s.append("      grouped = torch.reshape(torch.permute(torch.reshape(qh, [b, t, ").append(k).append(", ").append(g)
        .append(", ").append(d).append("]), [0, 2, 3, 1, 4]), [b, ").append(k).append(", ").append(g)
        .append(" * t, ").append(d).append("])\n");
    s.append("    q = torch.mul(grouped, scale)\n");
    s.append("    kw = torch.slice(kc, 3, length, end)\n");
    s.append("    vw = torch.slice(vc, 2, length, end)\n");
    s.append("    if written is None:\n");
    s.append("      kw.copy_(torch.permute(kh, [0, 2, 3, 1]))\n");
    s.append("      vw.copy_(torch.permute(vh, [0, 2, 1, 3]))\n");
    s.append("    else:\n");
    s.append("      kw.index_copy_(0, written, torch.permute(kh, [0, 2, 3, 1]))\n");
    s.append("      vw.index_copy_(0, written, torch.permute(vh, [0, 2, 1, 3]))\n");
    String softmax = f32 ? "self.softmax(%s)"
        : "torch.to(self.softmax(torch.to(%s, 6)), " + typeCode(compute) + ")";
    s.append("    if len(block_columns) == 0:\n");
    s.append("      scores = torch.add(torch.matmul(q, torch.slice(kc, 3, 0, end)), mask)\n");
    s.append("      probs = ").append(String.format(Locale.ROOT, softmax, "scores")).append("\n");
    s.append("      context = torch.matmul(probs, torch.slice(vc, 2, 0, end))\n");
    // a continuous batch: each block of cache rows reads the columns from its first one on (the ones before are
    // masked for all of its rows; KvCache.readInBlocks); this forward's rows are the blocks' rows in order
    s.append("    else:\n");
    s.append("      parts: List[Tensor] = []\n");
    s.append("      q0 = 0\n");
    s.append("      for j in range(len(block_columns)):\n");
    s.append("        r0 = block_rows[j]\n");
    s.append("        r1 = block_ends[j]\n");
    s.append("        c0 = block_columns[j]\n");
    s.append("        q1 = q0 + r1 - r0\n");
    s.append("        bm = torch.slice(mask, 3, c0, end)\n");
    s.append("        if torch.size(bm, 0) > 1:\n");
    s.append("          bm = torch.slice(bm, 0, q0, q1)\n");
    s.append("        bs = torch.add(torch.matmul(torch.slice(q, 0, q0, q1), ")
        .append("torch.slice(torch.slice(kc, 0, r0, r1), 3, c0, end)), bm)\n");
    s.append("        bp = ").append(String.format(Locale.ROOT, softmax, "bs")).append("\n");
    s.append("        parts.append(torch.matmul(bp, torch.slice(torch.slice(vc, 0, r0, r1), 2, c0, end)))\n");
    s.append("        q0 = q1\n");
    s.append("      context = torch.cat(parts, 0)\n");
    s.append("    if t == 1:\n");
    s.append("      context = torch.reshape(context, [b, 1, ").append(h * d).append("])\n");
    s.append("    else:\n");
    s.append("      context = torch.reshape(torch.permute(torch.reshape(context, [b, ").append(k).append(", ")
        .append(g).append(", t, ").append(d).append("]), [0, 3, 1, 2, 4]), [b, t, ").append(h * d).append("])\n");
    s.append("    return ").append(linear("context", l.out, l.outBias, reordered)).append("\n");
  }

  /**
   * {@code x} times weight {@code w[p + weight]} transposed, plus the bias where there is one, as DJL's
   * {@code Linear.linear} computes it for inputs of three or more dimensions (libtorch's C++ {@code
   * nn::functional::linear}): a product, then the bias added in place. {@code aten::linear} would fold the bias into
   * the product ({@code addmm}), which rounds once instead of twice in bfloat16.
   */
  private static String linear(String x, int weight, int bias, Set<Integer> reordered) {
    String product = product(x, "w[p + " + weight + "]", reordered.contains(weight));
    return bias < 0 ? product : "torch.add_(" + product + ", w[p + " + bias + "])";
  }

  /**
   * {@code x} times {@code weight} transposed: through oneDNN when the weight passed is a reordered copy ({@link
   * ReorderedWeights}; no bias, no fused activation), else a plain product.
   */
  private static String product(String x, String weight, boolean reordered) {
    return reordered
        ? "ops.mkldnn._linear_pointwise(" + x + ", " + weight + ", None, \"none\", "
            + "annotate(List[Optional[number]], []), None)"
        : "torch.matmul(" + x + ", torch.t(" + weight + "))";
  }

  /** A float as a TorchScript literal that parses back to the same float32 value. */
  private static String literal(float v) {
    return Float.toString(v).replace("E", "e");
  }

  /** libtorch's ScalarType code for a type. */
  private static int typeCode(DataType t) {
    return t == DataType.BFLOAT16 ? 15 : 6;
  }
}
