package dev.nucleon.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * The shape of a Llama-family decoder: token embedding, {@code numLayers} pre-norm blocks of grouped-query attention
 * with rotary position embeddings and a SwiGLU MLP, a final RMSNorm and a tied or separate output head.
 *
 * <p>Llama, Qwen2 (biases on q/k/v), Qwen3 (per-head RMSNorm of q and k, see {@link #qkNorm()}), OLMo 2 (post-norm
 * blocks, see {@link #normPlacement()}, and full-width q/k norms), ERNIE 4.5 dense (interleaved rotary pairs, see
 * {@link #ropeLayout()}), Mistral (full attention), SmolLM and TinyLlama
 * share this shape: a family is a choice of parts (OLMo 3 adds a sliding window per layer, see
 * {@link #slidingWindows()}); Qwen3-MoE, ERNIE 4.5 MoE and gpt-oss replace the MLP of some or all layers by a mixture
 * of experts (see {@link #moe()}), gpt-oss adds attention sinks ({@link #attentionSinks()}). Models that add latent
 * attention are refused by
 * {@link #fromHuggingFace(Path)} with a message naming the architecture.
 *
 * @param architecture the Hugging Face architecture name written back on save (e.g. {@code LlamaForCausalLM})
 * @param vocabSize rows of the embedding and the output head
 * @param hiddenSize model width d
 * @param intermediateSize SwiGLU inner width
 * @param numLayers decoder blocks
 * @param numHeads query heads
 * @param numKvHeads key/value heads; divides {@code numHeads}
 * @param headDim width of one head (usually hiddenSize / numHeads); even, for rotary embeddings
 * @param ropeTheta rotary base
 * @param ropeScaling Llama 3 style frequency scaling, or {@code null}
 * @param rmsNormEps epsilon inside the RMSNorm square root
 * @param maxPositionEmbeddings longest sequence the rotary tables cover
 * @param tieWordEmbeddings whether the output head is the embedding matrix
 * @param attentionBias whether q, k and v projections carry biases (Qwen2)
 * @param bosTokenId beginning-of-sequence id, or -1
 * @param eosTokenIds end-of-sequence ids (generation stops on any of them)
 * @param outputBias whether the attention output and the MLP projections carry biases too (ERNIE 4.5's
 *     {@code use_bias}; the output head never does)
 * @param slidingWindows per layer: 0 for full attention, {@code w > 0} for a sliding window in which a query at
 *     position i sees keys j with {@code i - w < j <= i} (OLMo 3's {@code layer_types})
 * @param moe the mixture-of-experts MLP of the sparse layers, or {@code null} for a dense model
 * @param latent multi-head latent attention's shape (DeepSeek-V3), or {@code null} for grouped-query attention;
 *     with it, {@code headDim} is a query's and key's width (no-rope plus rope part) and {@code numKvHeads} equals
 *     {@code numHeads}
 */
public record LlamaConfig(
    String architecture,
    int vocabSize,
    int hiddenSize,
    int intermediateSize,
    int numLayers,
    int numHeads,
    int numKvHeads,
    int headDim,
    double ropeTheta,
    RopeScaling ropeScaling,
    double rmsNormEps,
    int maxPositionEmbeddings,
    boolean tieWordEmbeddings,
    boolean attentionBias,
    int bosTokenId,
    int[] eosTokenIds,
    boolean outputBias,
    int[] slidingWindows,
    Moe moe,
    Latent latent) {

  /** A config without output and MLP biases (every family but ERNIE 4.5 with {@code use_bias}). */
  public LlamaConfig(String architecture, int vocabSize, int hiddenSize, int intermediateSize, int numLayers,
      int numHeads, int numKvHeads, int headDim, double ropeTheta, RopeScaling ropeScaling, double rmsNormEps,
      int maxPositionEmbeddings, boolean tieWordEmbeddings, boolean attentionBias, int bosTokenId,
      int[] eosTokenIds) {
    this(architecture, vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, numKvHeads, headDim, ropeTheta,
        ropeScaling, rmsNormEps, maxPositionEmbeddings, tieWordEmbeddings, attentionBias, bosTokenId, eosTokenIds,
        false, null, null, null);
  }

  /** A dense config (every family without mixture-of-experts layers). */
  public LlamaConfig(String architecture, int vocabSize, int hiddenSize, int intermediateSize, int numLayers,
      int numHeads, int numKvHeads, int headDim, double ropeTheta, RopeScaling ropeScaling, double rmsNormEps,
      int maxPositionEmbeddings, boolean tieWordEmbeddings, boolean attentionBias, int bosTokenId,
      int[] eosTokenIds, boolean outputBias, int[] slidingWindows) {
    this(architecture, vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, numKvHeads, headDim, ropeTheta,
        ropeScaling, rmsNormEps, maxPositionEmbeddings, tieWordEmbeddings, attentionBias, bosTokenId, eosTokenIds,
        outputBias, slidingWindows, null, null);
  }

  /** A config with grouped-query attention (every family but DeepSeek-V3). */
  public LlamaConfig(String architecture, int vocabSize, int hiddenSize, int intermediateSize, int numLayers,
      int numHeads, int numKvHeads, int headDim, double ropeTheta, RopeScaling ropeScaling, double rmsNormEps,
      int maxPositionEmbeddings, boolean tieWordEmbeddings, boolean attentionBias, int bosTokenId,
      int[] eosTokenIds, boolean outputBias, int[] slidingWindows, Moe moe) {
    this(architecture, vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, numKvHeads, headDim, ropeTheta,
        ropeScaling, rmsNormEps, maxPositionEmbeddings, tieWordEmbeddings, attentionBias, bosTokenId, eosTokenIds,
        outputBias, slidingWindows, moe, null);
  }

  /** Architectures whose weights and forward pass this decoder reproduces. */
  public static final List<String> SUPPORTED = List.of("LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM",
      "Qwen3ForCausalLM", "Olmo2ForCausalLM", "Olmo3ForCausalLM", "Ernie4_5ForCausalLM", "Qwen3MoeForCausalLM",
      "Ernie4_5_MoeForCausalLM", "GptOssForCausalLM", "DeepseekV3ForCausalLM");

  /**
   * The mixture-of-experts MLP of a model's sparse layers (the other layers keep the dense SwiGLU of
   * {@code intermediateSize}): a router scores every expert for every token, the {@code topK} best run, and their
   * SwiGLU outputs are summed with the routing weights; shared experts, where the family has them, run for every
   * token and are added unweighted.
   *
   * @param numExperts routed experts per sparse layer
   * @param topK experts each token is sent to
   * @param expertSize inner width of one routed expert's SwiGLU
   * @param sharedSize inner width of the shared experts (the checkpoints store them as one SwiGLU), 0 for none
   * @param router how the experts are chosen and weighted
   * @param expertBias whether the routed experts' projections carry biases (gpt-oss)
   * @param swigluLimit 0 for the plain SwiGLU; above 0 gpt-oss's clamped one: {@code gate <= limit},
   *     {@code -limit <= up <= limit}, {@code (up + 1) * gate * sigmoid(1.702 gate)}
   * @param sparseLayers the layers whose MLP is this mixture, ascending
   */
  public record Moe(int numExperts, int topK, int expertSize, int sharedSize, Router router, boolean expertBias,
      double swigluLimit, List<Integer> sparseLayers) {

    public Moe {
      sparseLayers = List.copyOf(sparseLayers);
      java.util.Objects.requireNonNull(router, "router");
      require(numExperts > 0, "the number of experts must be positive, got " + numExperts);
      require(topK > 0 && topK <= numExperts, "experts per token (" + topK + ") must be between 1 and the number of "
          + "experts (" + numExperts + ")");
      require(expertSize > 0, "moe_intermediate_size must be positive, got " + expertSize);
      require(sharedSize >= 0, "the shared experts' size must not be negative, got " + sharedSize);
      require(swigluLimit >= 0, "swiglu_limit must not be negative, got " + swigluLimit);
      require(numExperts % router.groups() == 0, "n_group (" + router.groups() + ") must divide the number of "
          + "experts (" + numExperts + ")");
      require(router.topKGroups() * (numExperts / router.groups()) >= topK, "topk_group (" + router.topKGroups()
          + ") groups of " + numExperts / router.groups() + " experts cannot hold " + topK + " experts");
      for (int i = 1; i < sparseLayers.size(); i++) {
        require(sparseLayers.get(i) > sparseLayers.get(i - 1), "sparse layers must ascend: " + sparseLayers);
      }
    }

    /** Parameters of one sparse layer's MLP: router, routed experts, shared experts. */
    long parameters(long d) {
      long expert = 3L * d * expertSize + (expertBias ? 2L * expertSize + d : 0);
      return numExperts * d + router.biases(numExperts) + numExperts * expert + 3L * d * sharedSize;
    }

    /**
     * Parameters one token computes with in a sparse layer's MLP: the router (it scores every expert for every
     * token), its topK experts, the shared ones.
     */
    long activeParameters(long d) {
      long expert = 3L * d * expertSize + (expertBias ? 2L * expertSize + d : 0);
      return parameters(d) - (long) (numExperts - topK) * expert;
    }
  }

  /**
   * How a sparse layer's router chooses experts and weighs them.
   *
   * @param scoring how the router's logits become scores
   * @param bias whether the router's projection has a bias (gpt-oss)
   * @param correctionBias whether a per-expert bias is added to the scores for the choice only, not for the weights
   *     (ERNIE's {@code moe_statics}, DeepSeek-V3's {@code e_score_correction_bias})
   * @param normalizeTopK whether the chosen experts' weights are divided by their sum
   * @param normMin the smallest divisor when normalizing (ERNIE clamps the sum at {@code moe_norm_min}); 0: none
   * @param scaling factor on the routed experts' weights (DeepSeek's {@code routed_scaling_factor}; 1 elsewhere)
   * @param groups expert groups (DeepSeek's {@code n_group}; 1: no groups)
   * @param topKGroups groups a token's experts may come from, chosen by the sum of each group's two best scores
   */
  public record Router(Scoring scoring, boolean bias, boolean correctionBias, boolean normalizeTopK, double normMin,
      double scaling, int groups, int topKGroups) {

    public Router {
      java.util.Objects.requireNonNull(scoring, "scoring");
      require(normMin >= 0, "moe_norm_min must not be negative, got " + normMin);
      require(scaling > 0, "routed_scaling_factor must be positive, got " + scaling);
      require(groups >= 1 && topKGroups >= 1 && topKGroups <= groups, "topk_group (" + topKGroups + ") must be "
          + "between 1 and n_group (" + groups + ")");
    }

    /** Softmax over every expert, the top k chosen, optionally renormalized (Qwen3-MoE). */
    public static Router softmax(boolean normalizeTopK) {
      return new Router(Scoring.SOFTMAX, false, false, normalizeTopK, 0, 1, 1, 1);
    }

    /** Bias parameters of the router: its projection's and the choice bias. */
    long biases(int experts) {
      return (bias ? experts : 0) + (correctionBias ? experts : 0);
    }
  }

  /** How router logits become the scores experts are chosen by and weighted with. */
  public enum Scoring {
    /** Softmax over every expert (Qwen3-MoE, ERNIE). */
    SOFTMAX,
    /** Each expert's sigmoid, independently (DeepSeek-V3). */
    SIGMOID,
    /** The top k logits chosen first, then a softmax over those k (gpt-oss). */
    SOFTMAX_OF_TOP_K
  }

  /**
   * Multi-head latent attention (DeepSeek-V2/V3): queries through an optional low-rank bottleneck ({@code q_a_proj},
   * RMSNorm, {@code q_b_proj}), keys and values through a shared low-rank latent ({@code kv_a_proj_with_mqa} gives
   * the latent and one rotary key shared by all heads; RMSNorm; {@code kv_b_proj} expands the latent into every
   * head's no-rope key part and value). Only the latent and the rotary key need caching.
   *
   * @param qLoraRank the query bottleneck's width, 0 for a plain {@code q_proj}
   * @param kvLoraRank the latent's width
   * @param qkNopeDim the width of a query's and key's part without rotary embedding
   * @param qkRopeDim the width of the rotary part
   * @param vHeadDim the width of a value head
   * @param mscaleAllDim YaRN's {@code mscale_all_dim} (0: none), which also scales the softmax
   */
  public record Latent(int qLoraRank, int kvLoraRank, int qkNopeDim, int qkRopeDim, int vHeadDim,
      double mscaleAllDim) {

    public Latent {
      require(qLoraRank >= 0, "q_lora_rank must not be negative, got " + qLoraRank);
      require(kvLoraRank > 0, "kv_lora_rank must be positive, got " + kvLoraRank);
      require(qkNopeDim > 0 && qkRopeDim > 0 && qkRopeDim % 2 == 0, "qk_nope_head_dim must be positive and "
          + "qk_rope_head_dim positive and even, got " + qkNopeDim + " and " + qkRopeDim);
      require(vHeadDim > 0, "v_head_dim must be positive, got " + vHeadDim);
      require(mscaleAllDim >= 0, "mscale_all_dim must not be negative, got " + mscaleAllDim);
    }

    /**
     * The factor on {@code q . k}: {@code (qkNope + qkRope)^-1/2}, times {@code mscale^2} with YaRN's
     * {@code mscale = 0.1 mscale_all_dim ln(factor) + 1} where the scaling names {@code mscale_all_dim}
     * (transformers' DeepseekV3Attention).
     */
    double softmaxScale(RopeScaling scaling) {
      double scale = 1 / Math.sqrt(qkNopeDim + qkRopeDim);
      if (scaling != null && mscaleAllDim != 0 && scaling.factor() > 1) {
        double m = 0.1 * mscaleAllDim * Math.log(scaling.factor()) + 1;
        scale *= m * m;
      }
      return scale;
    }

    /** Parameters of one layer's attention (its two RMSNorms included). */
    long parameters(long d, long heads) {
      long qk = qkNopeDim + qkRopeDim;
      long q = qLoraRank == 0 ? d * heads * qk : d * qLoraRank + qLoraRank + (long) qLoraRank * heads * qk;
      return q + d * (kvLoraRank + qkRopeDim) + kvLoraRank + (long) kvLoraRank * heads * (qkNopeDim + vHeadDim)
          + heads * vHeadDim * d;
    }
  }

  /** How attention normalizes queries and keys before the rotary embedding. */
  public enum QkNorm {
    /** No normalization (Llama, Qwen2, Mistral). */
    NONE,
    /** RMSNorm of each head's q and k over head_dim, one weight per q and per k shared by all heads (Qwen3). */
    PER_HEAD,
    /** RMSNorm of the whole q and k projections (heads x head_dim wide), before the head split (OLMo 2). */
    FULL_WIDTH
  }

  /** Which dimensions of a head rotate together in the rotary embedding. */
  public enum RopeLayout {
    /** Dimension j pairs with j + D/2 (Llama, Qwen, OLMo: transformers' rotate_half). */
    ROTATE_HALF,
    /** Dimension 2j pairs with 2j + 1 (ERNIE 4.5: GLM-style). */
    INTERLEAVED
  }

  /** Where a block's two RMSNorms sit. */
  public enum NormPlacement {
    /** {@code h = x + attn(norm1(x)); out = h + mlp(norm2(h))} (Llama, Qwen). */
    PRE,
    /** {@code h = x + norm1(attn(x)); out = h + norm2(mlp(h))} (OLMo 2). */
    POST
  }

  private static final Map<String, String> REFUSED = Map.of(
      "DeepseekV2ForCausalLM", "mixture-of-experts with multi-head latent attention",
      "MixtralForCausalLM", "mixture-of-experts",
      "Qwen2MoeForCausalLM", "mixture-of-experts",
      "OlmoForCausalLM", "non-parametric layer norm",
      "Gemma2ForCausalLM", "soft-capped logits and sliding-window layers");

  /**
   * Rotary frequency scaling: Llama 3's ({@code rope_type = "llama3"}) or YaRN ({@code "yarn"}), as transformers'
   * {@code modeling_rope_utils} computes them.
   *
   * @param type {@code llama3} or {@code yarn}
   * @param factor how much longer the context is than the original
   * @param lowFreqFactor llama3: wavelengths above original/low are divided by factor
   * @param highFreqFactor llama3: wavelengths below original/high are kept
   * @param originalMaxPositionEmbeddings the pre-training context length
   * @param betaFast yarn: rotations at which the ramp from extrapolation to interpolation starts
   * @param betaSlow yarn: rotations at which it ends
   * @param attentionFactor yarn: the factor on cos and sin (1 for llama3)
   * @param truncate yarn: whether the ramp's ends are rounded to whole dimensions
   */
  public record RopeScaling(String type, double factor, double lowFreqFactor, double highFreqFactor,
      int originalMaxPositionEmbeddings, double betaFast, double betaSlow, double attentionFactor,
      boolean truncate) {

    /** Llama 3's scaling. */
    public RopeScaling(double factor, double lowFreqFactor, double highFreqFactor, int originalMaxPositionEmbeddings) {
      this("llama3", factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings, 0, 0, 1, false);
    }

    /** YaRN's default attention factor for a scaling factor: {@code 0.1 ln(factor) + 1} (1 at factor <= 1). */
    static double yarnMscale(double factor) {
      return factor <= 1 ? 1.0 : 0.1 * Math.log(factor) + 1.0;
    }
  }

  public LlamaConfig {
    eosTokenIds = eosTokenIds == null ? new int[0] : eosTokenIds.clone();
    slidingWindows = slidingWindows == null ? new int[Math.max(0, numLayers)] : slidingWindows.clone();
    require(slidingWindows.length == numLayers, "layer_types names " + slidingWindows.length + " layers, but "
        + "num_hidden_layers is " + numLayers);
    require(Arrays.stream(slidingWindows).allMatch(w -> w >= 0), "sliding_window must be positive");
    require(vocabSize > 0, "vocab_size must be positive, got " + vocabSize);
    require(hiddenSize > 0, "hidden_size must be positive, got " + hiddenSize);
    require(intermediateSize > 0, "intermediate_size must be positive, got " + intermediateSize);
    require(numLayers > 0, "num_hidden_layers must be positive, got " + numLayers);
    require(numHeads > 0, "num_attention_heads must be positive, got " + numHeads);
    require(numKvHeads > 0 && numKvHeads <= numHeads && numHeads % numKvHeads == 0,
        "num_key_value_heads (" + numKvHeads + ") must divide num_attention_heads (" + numHeads + ")");
    require(headDim > 0 && headDim % 2 == 0, "head_dim must be positive and even, got " + headDim);
    require(ropeTheta > 0, "rope_theta must be positive, got " + ropeTheta);
    require(rmsNormEps > 0, "rms_norm_eps must be positive, got " + rmsNormEps);
    require(maxPositionEmbeddings > 0, "max_position_embeddings must be positive, got " + maxPositionEmbeddings);
    if (latent != null) {
      require(numKvHeads == numHeads, "multi-head latent attention has as many key/value heads as query heads");
      require(headDim == latent.qkNopeDim() + latent.qkRopeDim(), "head_dim (" + headDim + ") must be "
          + "qk_nope_head_dim + qk_rope_head_dim (" + (latent.qkNopeDim() + latent.qkRopeDim()) + ")");
    }
    if (moe != null) {
      for (int layer : moe.sparseLayers()) {
        require(layer >= 0 && layer < numLayers, "mixture-of-experts layer " + layer + " is outside the model's "
            + numLayers + " layers");
      }
    }
  }

  private static void require(boolean ok, String message) {
    if (!ok) {
      throw new IllegalArgumentException(message);
    }
  }

  /** A plain Llama config (no biases, no scaling) for models Nucleon builds itself. */
  public static LlamaConfig llama(int vocabSize, int hiddenSize, int intermediateSize, int numLayers, int numHeads,
      int numKvHeads, int maxPositions, boolean tied) {
    return new LlamaConfig("LlamaForCausalLM", vocabSize, hiddenSize, intermediateSize, numLayers, numHeads,
        numKvHeads, hiddenSize / numHeads, 10000.0, null, 1e-5, maxPositions, tied, false, -1, new int[0]);
  }

  /** The family's q/k normalization (a part of the decoder chosen by the architecture). */
  public QkNorm qkNorm() {
    return switch (architecture) {
      case "Qwen3ForCausalLM", "Qwen3MoeForCausalLM" -> QkNorm.PER_HEAD;
      case "Olmo2ForCausalLM", "Olmo3ForCausalLM" -> QkNorm.FULL_WIDTH;
      default -> QkNorm.NONE;
    };
  }

  /** The family's rotary pairing (a part of the decoder chosen by the architecture). */
  public RopeLayout ropeLayout() {
    // DeepSeek-V3: rope_interleave (default true; false is refused when reading)
    return architecture.startsWith("Ernie4_5") || latent != null ? RopeLayout.INTERLEAVED : RopeLayout.ROTATE_HALF;
  }

  /** The family's norm placement in a block (a part of the decoder chosen by the architecture). */
  public NormPlacement normPlacement() {
    return architecture.startsWith("Olmo") ? NormPlacement.POST : NormPlacement.PRE;
  }

  /** Query heads per key/value head. */
  public int groupSize() {
    return numHeads / numKvHeads;
  }

  /** Copy with other special token ids (tokenizers often know them better than a llama2.c header). */
  public LlamaConfig withSpecialTokens(int bos, int[] eos) {
    return new LlamaConfig(architecture, vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, numKvHeads,
        headDim, ropeTheta, ropeScaling, rmsNormEps, maxPositionEmbeddings, tieWordEmbeddings, attentionBias, bos, eos,
        outputBias, slidingWindows, moe, latent);
  }

  /** Copy with the output head tied to the embedding (every other field kept). */
  public LlamaConfig withTiedHead() {
    return new LlamaConfig(architecture, vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, numKvHeads,
        headDim, ropeTheta, ropeScaling, rmsNormEps, maxPositionEmbeddings, true, attentionBias, bosTokenId,
        eosTokenIds, outputBias, slidingWindows, moe, latent);
  }

  /**
   * Whether rotary scaling also applies in sliding-window layers. OLMo 3 was trained with YaRN on its full-attention
   * layers only (vLLM, and transformers 4.57 and from 5.13 on, build the sliding layers' rotary tables unscaled).
   */
  public boolean ropeScalingInWindowedLayers() {
    return !architecture.equals("Olmo3ForCausalLM");
  }

  /** Number of parameters (for logs and benchmarks). */
  public long parameterCount() {
    long d = hiddenSize;
    long qkv = d * (long) (numHeads + 2 * numKvHeads) * headDim + (attentionBias ? (long) (numHeads + 2 * numKvHeads) * headDim : 0);
    long attn = qkv + (long) numHeads * headDim * d;
    long mlp = 3L * d * intermediateSize;
    long qkNorm = switch (qkNorm()) {
      case NONE -> 0;
      case PER_HEAD -> 2L * headDim;
      case FULL_WIDTH -> (long) (numHeads + numKvHeads) * headDim;
    };
    long mlpBiases = outputBias ? d + 2L * intermediateSize : 0;
    long attnExtras = (outputBias ? d : 0) + (attentionSinks() ? numHeads : 0);
    long dense = mlp + mlpBiases;
    long perLayer = (latent == null ? attn + attnExtras + qkNorm : latent.parameters(d, numHeads)) + 2 * d;
    long emb = (long) vocabSize * d;
    long sparse = moe == null ? 0 : moe.sparseLayers().size();
    long mlps = (numLayers - sparse) * dense + (moe == null ? 0 : sparse * moe.parameters(d));
    return emb + (tieWordEmbeddings ? 0 : emb) + numLayers * perLayer + mlps + d;
  }

  /**
   * Parameters one token computes with, as the model cards count them (gpt-oss-20b: 3.6B of 20.9B): {@link
   * #parameterCount()} less the routed experts it is not sent to, and less the embedding table, which a token reads
   * one row of (the output head multiplies, so it counts; a tied table counts once, as the head).
   */
  public long activeParameterCount() {
    long d = hiddenSize;
    long idle = moe == null ? 0 : moe.sparseLayers().size() * (moe.parameters(d) - moe.activeParameters(d));
    return parameterCount() - idle - (tieWordEmbeddings ? 0 : (long) vocabSize * d);
  }

  /**
   * Whether attention has a learned sink logit per query head, joined to each softmax and then dropped, so a query
   * may attend to nothing (gpt-oss).
   */
  public boolean attentionSinks() {
    return architecture.equals("GptOssForCausalLM");
  }

  /** The width of the part of a query and key that the rotary embedding turns. */
  public int ropeDim() {
    return latent == null ? headDim : latent.qkRopeDim();
  }

  /** Whether layer i's MLP is the mixture of experts ({@link #moe()}). */
  public boolean isSparse(int layer) {
    return moe != null && moe.sparseLayers().contains(layer);
  }

  private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

  /**
   * Reads a Hugging Face {@code config.json} (transformers 4 and 5 layouts).
   *
   * @throws ModelFormatException naming the file and key when the file is missing, malformed, describes an
   *     architecture this decoder does not implement, or has an invalid value
   */
  public static LlamaConfig fromHuggingFace(Path file) {
    JsonNode root;
    try {
      root = JSON.readTree(Files.readAllBytes(file));
    } catch (NoSuchFileException e) {
      throw new ModelFormatException(file + ": config.json not found");
    } catch (IOException e) {
      throw new ModelFormatException(file + ": not readable JSON: " + e.getMessage(), e);
    }
    if (root == null || !root.isObject()) {
      throw new ModelFormatException(file + ": expected a JSON object");
    }
    String arch = architecture(file, root);
    if (REFUSED.containsKey(arch)) {
      throw new ModelFormatException(file + ": architecture " + arch + " (" + REFUSED.get(arch)
          + ") is not supported; supported architectures: " + SUPPORTED);
    }
    if (!SUPPORTED.contains(arch)) {
      throw new ModelFormatException(file + ": unknown architecture " + arch + "; supported architectures: " + SUPPORTED);
    }
    String act = root.path("hidden_act").asText("silu");
    if (!act.equals("silu")) {
      throw new ModelFormatException(file + ": hidden_act '" + act + "' is not supported (only silu)");
    }
    if (root.path("mlp_bias").asBoolean(false)) {
      throw new ModelFormatException(file + ": mlp_bias = true is not supported");
    }
    try {
      int hidden = requiredInt(file, root, "hidden_size");
      int heads = requiredInt(file, root, "num_attention_heads");
      int kvHeads = root.hasNonNull("num_key_value_heads") ? requiredInt(file, root, "num_key_value_heads") : heads;
      Latent latent = latent(file, arch, root);
      int headDim = latent != null ? latent.qkNopeDim() + latent.qkRopeDim()
          : root.hasNonNull("head_dim") ? requiredInt(file, root, "head_dim") : hidden / heads;
      JsonNode ropeParams = root.path("rope_parameters");
      if (ropeParams.has("full_attention") || ropeParams.has("sliding_attention")) {
        throw new ModelFormatException(file + ": rope_parameters per layer type (full_attention / "
            + "sliding_attention) is not supported; write rope_theta and rope_scaling at the top level");
      }
      double theta = root.hasNonNull("rope_theta") ? root.get("rope_theta").asDouble()
          : ropeParams.path("rope_theta").asDouble(10000.0);
      RopeScaling scaling = ropeScaling(file, root.hasNonNull("rope_scaling") ? root.get("rope_scaling") : ropeParams,
          root.path("max_position_embeddings").asInt(2048));
      boolean ernieBias = arch.startsWith("Ernie4_5") && root.path("use_bias").asBoolean(false);
      if (ernieBias && arch.equals("Ernie4_5_MoeForCausalLM")) {
        throw new ModelFormatException(file + ": use_bias = true (biases on the experts too) is not supported for "
            + arch);
      }
      boolean gptOss = arch.equals("GptOssForCausalLM");
      if (root.path("attention_bias").asBoolean(false) && !arch.equals("Qwen2ForCausalLM") && !ernieBias
          && !gptOss) {
        // these families put a bias on o_proj too when attention_bias is set: not built yet
        throw new ModelFormatException(file + ": attention_bias = true (q/k/v and o_proj biases) is not supported "
            + "for " + arch);
      }
      boolean bias = arch.equals("Qwen2ForCausalLM") || root.path("attention_bias").asBoolean(false) || ernieBias;
      return new LlamaConfig(arch,
          requiredInt(file, root, "vocab_size"),
          hidden,
          requiredInt(file, root, "intermediate_size"),
          requiredInt(file, root, "num_hidden_layers"),
          heads,
          kvHeads,
          headDim,
          theta,
          scaling,
          root.path("rms_norm_eps").asDouble(1e-6),
          root.path("max_position_embeddings").asInt(2048),
          root.path("tie_word_embeddings").asBoolean(false),
          bias,
          root.hasNonNull("bos_token_id") ? root.get("bos_token_id").asInt() : -1,
          ids(root.get("eos_token_id")),
          ernieBias || gptOss && bias, // gpt-oss's attention_bias also means an o_proj bias (it has no dense MLP)
          windows(file, arch, root),
          moe(file, arch, root),
          latent);
    } catch (IllegalArgumentException e) {
      throw new ModelFormatException(file + ": " + e.getMessage(), e);
    }
  }

  /**
   * Each layer's sliding window (0 = full attention), as transformers reads the family's config:
   * <ul>
   *   <li>OLMo 3: {@code layer_types} ("sliding_attention" / "full_attention"; default: every fourth layer full,
   *       the others sliding) with {@code sliding_window} (default 4096);</li>
   *   <li>Qwen2 and Qwen3: with {@code use_sliding_window}, {@code layer_types}, or by default the layers from
   *       {@code max_window_layers} (default 28) on, slide over {@code sliding_window}; without it, none;</li>
   *   <li>Mistral: every layer slides over {@code sliding_window} (default 4096; null: none);</li>
   *   <li>the others: full attention.</li>
   * </ul>
   */
  private static int[] windows(Path file, String arch, JsonNode root) {
    int layers = requiredInt(file, root, "num_hidden_layers");
    JsonNode types = root.get("layer_types");
    boolean typed = types != null && !types.isNull();
    if (typed && types.size() != layers) {
      throw new ModelFormatException(file + ": layer_types names " + types.size() + " layers, but "
          + "num_hidden_layers is " + layers);
    }
    int[] out = new int[layers];
    switch (arch) {
      case "Olmo3ForCausalLM" -> {
        int window = root.hasNonNull("sliding_window") ? requiredInt(file, root, "sliding_window") : 4096;
        for (int i = 0; i < layers; i++) {
          out[i] = sliding(file, typed ? types.path(i).asText("")
              : (i + 1) % 4 != 0 ? "sliding_attention" : "full_attention", i) ? window : 0;
        }
      }
      case "Qwen2ForCausalLM", "Qwen3ForCausalLM", "Qwen3MoeForCausalLM" -> {
        if (!root.path("use_sliding_window").asBoolean(false)) {
          return out;
        }
        int window = requiredInt(file, root, "sliding_window");
        // transformers' Qwen2Config and Qwen3Config default max_window_layers to 28
        int from = root.hasNonNull("max_window_layers") ? root.get("max_window_layers").asInt() : 28;
        for (int i = 0; i < layers; i++) {
          out[i] = (typed ? sliding(file, types.path(i).asText(""), i) : i >= from) ? window : 0;
        }
      }
      case "GptOssForCausalLM" -> {
        // transformers' GptOssConfig: sliding_window 128, layer_types alternating sliding (even) / full (odd)
        int window = root.hasNonNull("sliding_window") ? requiredInt(file, root, "sliding_window") : 128;
        for (int i = 0; i < layers; i++) {
          out[i] = sliding(file, typed ? types.path(i).asText("") : i % 2 == 0 ? "sliding_attention"
              : "full_attention", i) ? window : 0;
        }
      }
      case "MistralForCausalLM" -> {
        // transformers' MistralConfig defaults sliding_window to 4096 when the key is absent; null means none
        if (!root.has("sliding_window")) {
          java.util.Arrays.fill(out, 4096);
        } else if (!root.get("sliding_window").isNull()) {
          java.util.Arrays.fill(out, requiredInt(file, root, "sliding_window"));
        }
      }
      default -> {
        if (typed) {
          for (int i = 0; i < layers; i++) {
            if (sliding(file, types.path(i).asText(""), i)) {
              throw new ModelFormatException(file + ": layer_types[" + i + "] is sliding_attention, but " + arch
                  + " has no sliding-window attention");
            }
          }
        }
      }
    }
    return out;
  }

  /**
   * The mixture of experts as transformers reads the family's config, or null for a dense family:
   * <ul>
   *   <li>Qwen3-MoE: layer i is sparse unless listed in {@code mlp_only_layers}, when {@code num_experts > 0} and
   *       {@code (i + 1) % decoder_sparse_step == 0}; softmax router, top {@code num_experts_per_tok},
   *       renormalized when {@code norm_topk_prob} (default false); no shared expert;</li>
   *   <li>ERNIE 4.5 MoE: layer i is sparse when {@code (i + 1) % moe_layer_interval == 0} and it lies in
   *       {@code [moe_layer_start_index, moe_layer_end_index]} (-1: the last layer); softmax router, top
   *       {@code moe_k} chosen with the correction bias, weights renormalized with the sum clamped at
   *       {@code moe_norm_min} (1e-12); {@code moe_num_shared_experts} shared experts of the same size.</li>
   * </ul>
   */
  private static Moe moe(Path file, String arch, JsonNode root) {
    int layers = requiredInt(file, root, "num_hidden_layers");
    List<Integer> sparse = new java.util.ArrayList<>();
    switch (arch) {
      case "Qwen3MoeForCausalLM" -> {
        int experts = intOr(file, root, "num_experts", 128);
        int step = intOr(file, root, "decoder_sparse_step", 1);
        if (step <= 0) {
          throw new ModelFormatException(file + ": decoder_sparse_step must be positive, got " + step);
        }
        java.util.Set<Integer> dense = new java.util.HashSet<>();
        root.path("mlp_only_layers").forEach(n -> dense.add(n.asInt()));
        for (int i = 0; i < layers; i++) {
          if (!dense.contains(i) && experts > 0 && (i + 1) % step == 0) {
            sparse.add(i);
          }
        }
        return sparse.isEmpty() ? null : new Moe(experts, intOr(file, root, "num_experts_per_tok", 8),
            intOr(file, root, "moe_intermediate_size", 768), 0,
            Router.softmax(root.path("norm_topk_prob").asBoolean(false)), false, 0, sparse);
      }
      case "GptOssForCausalLM" -> {
        for (int i = 0; i < layers; i++) {
          sparse.add(i);
        }
        int k = root.hasNonNull("num_experts_per_tok") ? requiredInt(file, root, "num_experts_per_tok")
            : intOr(file, root, "experts_per_token", 4);
        // transformers hard-codes the limit 7.0; the published configs say the same in swiglu_limit
        return new Moe(intOr(file, root, "num_local_experts", 128), k, requiredInt(file, root, "intermediate_size"),
            0, new Router(Scoring.SOFTMAX_OF_TOP_K, true, false, false, 0, 1, 1, 1), true,
            root.path("swiglu_limit").asDouble(7.0), sparse);
      }
      case "DeepseekV3ForCausalLM" -> {
        // transformers: layers from first_k_dense_replace on are sparse (moe_layer_freq is not read); sigmoid
        // scores, the choice with e_score_correction_bias among the topk_group best of n_group groups
        int first = intOr(file, root, "first_k_dense_replace", 3);
        for (int i = first; i < layers; i++) {
          sparse.add(i);
        }
        int size = intOr(file, root, "moe_intermediate_size", 2048);
        Router router = new Router(Scoring.SIGMOID, false, true, root.path("norm_topk_prob").asBoolean(true), 0,
            root.path("routed_scaling_factor").asDouble(2.5), intOr(file, root, "n_group", 8),
            intOr(file, root, "topk_group", 4));
        return sparse.isEmpty() ? null : new Moe(intOr(file, root, "n_routed_experts", 256),
            intOr(file, root, "num_experts_per_tok", 8), size, size * intOr(file, root, "n_shared_experts", 1),
            router, false, 0, sparse);
      }
      case "Ernie4_5_MoeForCausalLM" -> {
        int start = intOr(file, root, "moe_layer_start_index", 1);
        int end = intOr(file, root, "moe_layer_end_index", -1);
        int interval = intOr(file, root, "moe_layer_interval", 1);
        if (interval <= 0) {
          throw new ModelFormatException(file + ": moe_layer_interval must be positive, got " + interval);
        }
        sparse.addAll(everyNth(Math.max(0, start), Math.min(layers - 1, end == -1 ? layers - 1 : end), interval));
        int size = intOr(file, root, "moe_intermediate_size", 1536);
        Router router = new Router(Scoring.SOFTMAX, false, true, true, root.path("moe_norm_min").asDouble(1e-12), 1,
            1, 1);
        return sparse.isEmpty() ? null : new Moe(intOr(file, root, "moe_num_experts", 64),
            intOr(file, root, "moe_k", 6), size, size * intOr(file, root, "moe_num_shared_experts", 2), router, false,
            0, sparse);
      }
      default -> {
        return null;
      }
    }
  }

  /** DeepSeek-V3's multi-head latent attention as transformers reads it, or null for the other families. */
  private static Latent latent(Path file, String arch, JsonNode root) {
    if (!arch.equals("DeepseekV3ForCausalLM")) {
      return null;
    }
    if (!root.path("rope_interleave").asBoolean(true)) {
      throw new ModelFormatException(file + ": rope_interleave = false is not supported (DeepSeek-V3's rotary pairs "
          + "are interleaved)");
    }
    JsonNode scaling = root.path("rope_scaling");
    return new Latent(root.hasNonNull("q_lora_rank") ? requiredInt(file, root, "q_lora_rank") : 0,
        intOr(file, root, "kv_lora_rank", 512), intOr(file, root, "qk_nope_head_dim", 128),
        intOr(file, root, "qk_rope_head_dim", 64), intOr(file, root, "v_head_dim", 128),
        scaling.path("mscale_all_dim").asDouble(0));
  }

  private static int intOr(Path file, JsonNode root, String key, int otherwise) {
    return root.hasNonNull(key) ? requiredInt(file, root, key) : otherwise;
  }

  private static boolean sliding(Path file, String type, int layer) {
    return switch (type) {
      case "sliding_attention" -> true;
      case "full_attention" -> false;
      default -> throw new ModelFormatException(file + ": layer_types[" + layer + "] is '" + type
          + "'; expected sliding_attention or full_attention");
    };
  }

  /** Whether any layer attends through a sliding window. */
  public boolean hasSlidingWindows() {
    return Arrays.stream(slidingWindows).anyMatch(w -> w > 0);
  }

  private static String architecture(Path file, JsonNode root) {
    JsonNode archs = root.get("architectures");
    if (archs != null && archs.isArray() && archs.size() > 0) {
      return archs.get(0).asText();
    }
    String type = root.path("model_type").asText("");
    return switch (type) {
      case "llama" -> "LlamaForCausalLM";
      case "qwen2" -> "Qwen2ForCausalLM";
      case "qwen3" -> "Qwen3ForCausalLM";
      case "olmo2" -> "Olmo2ForCausalLM";
      case "olmo3" -> "Olmo3ForCausalLM";
      case "ernie4_5" -> "Ernie4_5ForCausalLM";
      case "qwen3_moe" -> "Qwen3MoeForCausalLM";
      case "ernie4_5_moe" -> "Ernie4_5_MoeForCausalLM";
      case "gpt_oss" -> "GptOssForCausalLM";
      case "deepseek_v3" -> "DeepseekV3ForCausalLM";
      case "mistral" -> "MistralForCausalLM";
      case "" -> throw new ModelFormatException(file + ": neither 'architectures' nor 'model_type' is set");
      default -> type;
    };
  }

  /**
   * YaRN as transformers reads it: the explicit factor (or, without one, {@code max_position_embeddings / original});
   * the attention factor, when absent, is YaRN's mscale (or the ratio of two mscales where {@code mscale} and
   * {@code mscale_all_dim} are given).
   */
  private static RopeScaling yarn(Path file, JsonNode node, int maxPositions) {
    int original = node.hasNonNull("original_max_position_embeddings")
        ? node.get("original_max_position_embeddings").asInt() : maxPositions;
    if (!node.hasNonNull("factor") && !node.hasNonNull("original_max_position_embeddings")) {
      throw new ModelFormatException(file + ": yarn rope scaling needs 'factor'");
    }
    // the explicit factor wins (transformers 5 only warns when it differs from max / original)
    double factor = node.hasNonNull("factor") ? node.get("factor").asDouble() : (double) maxPositions / original;
    double attention;
    if (node.hasNonNull("attention_factor")) {
      attention = node.get("attention_factor").asDouble();
    } else if (node.path("mscale").asDouble(0) != 0 && node.path("mscale_all_dim").asDouble(0) != 0) {
      double f = factor;
      java.util.function.DoubleUnaryOperator m = s -> f <= 1 ? 1.0 : 0.1 * s * Math.log(f) + 1.0;
      attention = m.applyAsDouble(node.get("mscale").asDouble()) / m.applyAsDouble(node.get("mscale_all_dim").asDouble());
    } else {
      attention = RopeScaling.yarnMscale(factor);
    }
    return new RopeScaling("yarn", factor, 0, 0, original, node.path("beta_fast").asDouble(32),
        node.path("beta_slow").asDouble(1), attention, node.path("truncate").asBoolean(true));
  }

  private static RopeScaling ropeScaling(Path file, JsonNode node, int maxPositions) {
    if (node == null || node.isNull() || node.isMissingNode()) {
      return null;
    }
    String type = node.hasNonNull("rope_type") ? node.get("rope_type").asText() : node.path("type").asText("default");
    return switch (type) {
      case "default" -> null;
      case "llama3" -> new RopeScaling(node.path("factor").asDouble(8.0), node.path("low_freq_factor").asDouble(1.0),
          node.path("high_freq_factor").asDouble(4.0), node.path("original_max_position_embeddings").asInt(8192));
      case "yarn" -> yarn(file, node, maxPositions);
      default -> throw new ModelFormatException(file + ": rope scaling type '" + type
          + "' is not supported (supported: default, llama3, yarn)");
    };
  }

  private static int requiredInt(Path file, JsonNode root, String key) {
    JsonNode n = root.get(key);
    if (n == null || n.isNull()) {
      throw new ModelFormatException(file + ": missing key '" + key + "'");
    }
    if (!n.canConvertToInt() || !n.isIntegralNumber()) {
      throw new ModelFormatException(file + ": key '" + key + "' must be an integer, got " + n);
    }
    return n.asInt();
  }

  private static int[] ids(JsonNode n) {
    if (n == null || n.isNull()) {
      return new int[0];
    }
    if (n.isArray()) {
      int[] out = new int[n.size()];
      for (int i = 0; i < out.length; i++) {
        out[i] = n.get(i).asInt();
      }
      return out;
    }
    return new int[] {n.asInt()};
  }

  /** Writes this config as a Hugging Face {@code config.json} that transformers can load (float32 weights). */
  public void writeHuggingFace(Path file) throws IOException {
    writeHuggingFace(file, "float32");
  }

  /**
   * Writes this config as a Hugging Face {@code config.json}, naming the weights' type as transformers spells it
   * ({@code float32}, {@code bfloat16}).
   */
  public void writeHuggingFace(Path file, String torchDtype) throws IOException {
    ObjectNode o = JSON.createObjectNode();
    o.putArray("architectures").add(architecture);
    o.put("model_type", switch (architecture) {
      case "Qwen2ForCausalLM" -> "qwen2";
      case "Qwen3ForCausalLM" -> "qwen3";
      case "Olmo2ForCausalLM" -> "olmo2";
      case "Olmo3ForCausalLM" -> "olmo3";
      case "Ernie4_5ForCausalLM" -> "ernie4_5";
      case "Qwen3MoeForCausalLM" -> "qwen3_moe";
      case "Ernie4_5_MoeForCausalLM" -> "ernie4_5_moe";
      case "GptOssForCausalLM" -> "gpt_oss";
      case "DeepseekV3ForCausalLM" -> "deepseek_v3";
      case "MistralForCausalLM" -> "mistral";
      default -> "llama";
    });
    o.put("vocab_size", vocabSize);
    o.put("hidden_size", hiddenSize);
    o.put("intermediate_size", intermediateSize);
    o.put("num_hidden_layers", numLayers);
    o.put("num_attention_heads", numHeads);
    o.put("num_key_value_heads", numKvHeads);
    if (latent == null) {
      o.put("head_dim", headDim); // DeepSeek-V3's transformers config takes head_dim as the rotary width: not written
    }
    o.put("hidden_act", "silu");
    o.put("rope_theta", ropeTheta);
    if (ropeScaling != null) {
      ObjectNode s = o.putObject("rope_scaling");
      s.put("rope_type", ropeScaling.type());
      s.put("factor", ropeScaling.factor());
      if (ropeScaling.type().equals("yarn")) {
        s.put("beta_fast", ropeScaling.betaFast());
        s.put("beta_slow", ropeScaling.betaSlow());
        s.put("attention_factor", ropeScaling.attentionFactor());
        s.put("truncate", ropeScaling.truncate());
      } else {
        s.put("low_freq_factor", ropeScaling.lowFreqFactor());
        s.put("high_freq_factor", ropeScaling.highFreqFactor());
      }
      s.put("original_max_position_embeddings", ropeScaling.originalMaxPositionEmbeddings());
    }
    o.put("rms_norm_eps", rmsNormEps);
    o.put("max_position_embeddings", maxPositionEmbeddings);
    o.put("tie_word_embeddings", tieWordEmbeddings);
    o.put("attention_bias", attentionBias);
    if (architecture.startsWith("Ernie4_5")) {
      o.put("use_bias", outputBias);
    }
    if (moe != null) {
      writeMoe(o);
    } else if (latent != null) {
      o.put("first_k_dense_replace", numLayers); // a DeepSeek-V3 shape without sparse layers
    }
    if (latent != null) {
      o.put("q_lora_rank", latent.qLoraRank() == 0 ? null : latent.qLoraRank());
      o.put("kv_lora_rank", latent.kvLoraRank());
      o.put("qk_nope_head_dim", latent.qkNopeDim());
      o.put("qk_rope_head_dim", latent.qkRopeDim());
      o.put("v_head_dim", latent.vHeadDim());
      o.put("rope_interleave", true);
      if (ropeScaling != null && latent.mscaleAllDim() != 0) {
        ((ObjectNode) o.get("rope_scaling")).put("mscale_all_dim", latent.mscaleAllDim());
      }
    }
    int window = Arrays.stream(slidingWindows).max().orElse(0);
    switch (architecture) {
      case "Olmo3ForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "Qwen3MoeForCausalLM", "GptOssForCausalLM" -> {
        ArrayNode types = o.putArray("layer_types");
        Arrays.stream(slidingWindows).forEach(w -> types.add(w > 0 ? "sliding_attention" : "full_attention"));
        if (architecture.equals("Olmo3ForCausalLM") || architecture.equals("GptOssForCausalLM")) {
          o.put("sliding_window", window > 0 ? window : 4096);
        } else {
          o.put("use_sliding_window", window > 0);
          if (window > 0) {
            o.put("sliding_window", window);
          } else {
            o.putNull("sliding_window");
          }
          // for readers that go by max_window_layers rather than layer_types: the first sliding layer
          int first = 0;
          while (first < numLayers && slidingWindows[first] == 0) {
            first++;
          }
          o.put("max_window_layers", first);
        }
      }
      case "MistralForCausalLM" -> {
        if (window > 0) {
          o.put("sliding_window", window);
        } else {
          o.putNull("sliding_window");
        }
      }
      default -> { }
    }
    if (bosTokenId >= 0) {
      o.put("bos_token_id", bosTokenId);
    }
    if (eosTokenIds.length == 1) {
      o.put("eos_token_id", eosTokenIds[0]);
    } else if (eosTokenIds.length > 1) {
      ArrayNode a = o.putArray("eos_token_id");
      Arrays.stream(eosTokenIds).forEach(a::add);
    }
    o.put("torch_dtype", torchDtype);
    Files.writeString(file, JSON.writeValueAsString(o));
  }

  /**
   * The mixture's keys as the family spells them: every sparse layer listed by the family's own rule where it can
   * express the set, else refused (a set no rule of the family produces cannot be written as its config).
   */
  private void writeMoe(ObjectNode o) {
    List<Integer> sparse = moe.sparseLayers();
    switch (architecture) {
      case "Qwen3MoeForCausalLM" -> {
        o.put("num_experts", moe.numExperts());
        o.put("num_experts_per_tok", moe.topK());
        o.put("moe_intermediate_size", moe.expertSize());
        o.put("norm_topk_prob", moe.router().normalizeTopK());
        o.put("decoder_sparse_step", 1);
        ArrayNode dense = o.putArray("mlp_only_layers");
        for (int i = 0; i < numLayers; i++) {
          if (!sparse.contains(i)) {
            dense.add(i);
          }
        }
      }
      case "Ernie4_5_MoeForCausalLM" -> {
        int start = sparse.get(0);
        int end = sparse.get(sparse.size() - 1);
        int interval = 1;
        while (!sparse.equals(everyNth(start, end, interval))) {
          if (++interval > numLayers) {
            throw new IllegalStateException("ERNIE 4.5 MoE sparse layers " + sparse + " follow no layer interval");
          }
        }
        o.put("moe_num_experts", moe.numExperts());
        o.put("moe_k", moe.topK());
        o.put("moe_intermediate_size", moe.expertSize());
        o.put("moe_num_shared_experts", moe.sharedSize() / moe.expertSize());
        o.put("moe_layer_start_index", start);
        o.put("moe_layer_end_index", end);
        o.put("moe_layer_interval", interval);
        o.put("moe_norm_min", moe.router().normMin());
        o.put("moe_use_aux_free", true);
      }
      case "DeepseekV3ForCausalLM" -> {
        if (!sparse.equals(java.util.stream.IntStream.range(sparse.get(0), numLayers).boxed().toList())) {
          throw new IllegalStateException("DeepSeek-V3 sparse layers " + sparse + " are not every layer from the "
              + "first one on (first_k_dense_replace)");
        }
        o.put("n_routed_experts", moe.numExperts());
        o.put("num_experts_per_tok", moe.topK());
        o.put("moe_intermediate_size", moe.expertSize());
        o.put("n_shared_experts", moe.sharedSize() / moe.expertSize());
        o.put("first_k_dense_replace", sparse.get(0));
        o.put("norm_topk_prob", moe.router().normalizeTopK());
        o.put("routed_scaling_factor", moe.router().scaling());
        o.put("n_group", moe.router().groups());
        o.put("topk_group", moe.router().topKGroups());
        o.put("scoring_func", "sigmoid");
        o.put("topk_method", "noaux_tc");
      }
      case "GptOssForCausalLM" -> {
        if (sparse.size() != numLayers) {
          throw new IllegalStateException("gpt-oss has a mixture of experts in every layer, not only " + sparse);
        }
        o.put("intermediate_size", moe.expertSize());
        o.put("num_local_experts", moe.numExperts());
        o.put("num_experts_per_tok", moe.topK());
        o.put("experts_per_token", moe.topK());
        o.put("swiglu_limit", moe.swigluLimit());
      }
      default -> throw new IllegalStateException(architecture + " has no mixture-of-experts config keys");
    }
  }

  /** Layers i in {@code [start, end]} with {@code (i + 1) % interval == 0} (ERNIE 4.5 MoE's rule). */
  private static List<Integer> everyNth(int start, int end, int interval) {
    return java.util.stream.IntStream.rangeClosed(start, end).filter(i -> (i + 1) % interval == 0).boxed().toList();
  }

  @Override
  public boolean equals(Object other) {
    return other instanceof LlamaConfig c && architecture.equals(c.architecture) && vocabSize == c.vocabSize
        && hiddenSize == c.hiddenSize && intermediateSize == c.intermediateSize && numLayers == c.numLayers
        && numHeads == c.numHeads && numKvHeads == c.numKvHeads && headDim == c.headDim
        && ropeTheta == c.ropeTheta && java.util.Objects.equals(ropeScaling, c.ropeScaling)
        && rmsNormEps == c.rmsNormEps && maxPositionEmbeddings == c.maxPositionEmbeddings
        && tieWordEmbeddings == c.tieWordEmbeddings && attentionBias == c.attentionBias
        && bosTokenId == c.bosTokenId && Arrays.equals(eosTokenIds, c.eosTokenIds) && outputBias == c.outputBias
        && Arrays.equals(slidingWindows, c.slidingWindows) && java.util.Objects.equals(moe, c.moe)
        && java.util.Objects.equals(latent, c.latent);
  }

  @Override
  public int hashCode() {
    return java.util.Objects.hash(architecture, vocabSize, hiddenSize, numLayers, numHeads, numKvHeads, headDim);
  }

  @Override
  public String toString() {
    return architecture + "{vocab=" + vocabSize + ", d=" + hiddenSize + ", ffn=" + intermediateSize + ", layers="
        + numLayers + ", heads=" + numHeads + "/" + numKvHeads + ", headDim=" + headDim + ", theta=" + ropeTheta
        + ", tied=" + tieWordEmbeddings + ", qkvBias=" + attentionBias + (outputBias ? ", outputBias=true" : "")
        + (moe == null ? "" : ", experts=" + moe.numExperts() + " top-" + moe.topK() + " in layers "
            + moe.sparseLayers()) + "}";
  }
}
