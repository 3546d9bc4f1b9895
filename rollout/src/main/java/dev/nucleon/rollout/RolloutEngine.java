package dev.nucleon.rollout;

import dev.nucleon.core.rollout.FinishReason;
import dev.nucleon.core.rollout.PromptGroup;
import dev.nucleon.core.rollout.Trajectory;
import dev.nucleon.model.generate.EpisodeRequest;
import dev.nucleon.model.generate.EpisodeResult;
import dev.nucleon.model.generate.GenerationRequest;
import dev.nucleon.model.generate.GenerationResult;
import dev.nucleon.model.generate.Generator;
import dev.nucleon.model.generate.SamplingParams;
import dev.nucleon.model.generate.TurnHandler;
import dev.nucleon.model.io.HostTensor;
import dev.nucleon.model.tokenizer.TextTokenizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/**
 * Turns prompt groups into trajectories: tokenizes each prompt, samples G completions per prompt in one batch
 * with the generator, and decodes them. Weights arrive with {@link #updateWeights} and are applied between decode
 * steps of a running batch; every token records the version that produced it.
 */
public final class RolloutEngine implements AutoCloseable {

  private final Generator generator;
  private final TextTokenizer tokenizer;
  private final SamplingParams sampling;
  private final boolean addBos;
  private final PromptCheck check;
  private final int slots;
  private volatile boolean openBatch = true;
  /** Multi-turn episodes of an environment instead of single completions, or null. */
  private volatile dev.nucleon.rollout.env.EpisodeRunner episodes;

  /**
   * @param sampling temperature, top-k, top-p, max new tokens; its stop tokens are used as given (add the
   *     tokenizer's EOS ids when building it)
   */
  public RolloutEngine(Generator generator, TextTokenizer tokenizer, SamplingParams sampling) {
    this(generator, tokenizer, sampling, 0);
  }

  /**
   * @param slots sequences decoded at once (0: all of a call's together; above 0: a continuous batch, see
   *     {@link Generator#generate}, kept open across calls by {@link #submit})
   */
  public RolloutEngine(Generator generator, TextTokenizer tokenizer, SamplingParams sampling, int slots) {
    this.slots = slots;
    this.generator = generator;
    this.tokenizer = tokenizer;
    this.sampling = sampling;
    this.addBos = tokenizer.bosId() >= 0;
    this.check = new PromptCheck(tokenizer, generator.model().maxPositions(), sampling.maxNewTokens());
  }

  /** Checks prompts before they are sampled (empty, undecodable, too long for the model's context). */
  public PromptCheck check() {
    return check;
  }

  public SamplingParams sampling() {
    return sampling;
  }

  public TextTokenizer tokenizer() {
    return tokenizer;
  }

  /** Sequences decoded at once (0: all of a call's together). */
  public int slots() {
    return slots;
  }

  /** The policy version of the weights in use. */
  public int version() {
    return generator.version();
  }

  /** Row-steps the generator has decoded so far ({@link Generator#rowSteps()}). */
  public long rowSteps() {
    return generator.rowSteps();
  }

  /** Queues new weights (internal parameter names); see {@link Generator#updateWeights}. */
  public void updateWeights(int version, Map<String, HostTensor> weights) {
    generator.updateWeights(version, weights);
  }

  /** As above; {@code applied} runs once the weights are in the model (see {@link Generator#updateWeights}). */
  public void updateWeights(int version, Map<String, HostTensor> weights, Runnable applied) {
    generator.updateWeights(version, weights, applied);
  }

  /** The prompt's token ids as the model sees them. */
  public int[] encodePrompt(String prompt) {
    return tokenizer.encode(prompt, addBos);
  }

  /**
   * From now on, each sample is an episode of {@code runner}'s environment ({@link #generate}, {@link #evaluate});
   * the engine closes it.
   */
  public void useEpisodes(dev.nucleon.rollout.env.EpisodeRunner runner) {
    if (generator.model().config().hasSlidingWindows()) {
      throw new IllegalArgumentException("multi-turn episodes (nucleon.environment.name) are not supported for "
          + "models with sliding-window attention layers");
    }
    dev.nucleon.rollout.env.EpisodeRunner before = episodes;
    this.episodes = runner;
    if (before != null && before != runner) {
      before.close();
    }
  }

  /** Samples every group; the result lists each group's trajectories in group order. */
  public CompletableFuture<List<List<Trajectory>>> generate(List<PromptGroup> groups) {
    dev.nucleon.rollout.env.EpisodeRunner runner = episodes;
    if (runner != null) {
      return runner.generate(this, groups);
    }
    List<GenerationRequest> requests = new ArrayList<>();
    List<int[]> prompts = new ArrayList<>();
    for (PromptGroup g : groups) {
      int[] ids = encodePrompt(g.prompt());
      prompts.add(ids);
      requests.addAll(requests(g, ids));
    }
    return generator.generateAsync(requests, slots).thenApply(results -> {
      List<List<Trajectory>> out = new ArrayList<>();
      int k = 0;
      for (int gi = 0; gi < groups.size(); gi++) {
        PromptGroup g = groups.get(gi);
        out.add(trajectories(g, prompts.get(gi), results.subList(k, k + g.groupSize())));
        k += g.groupSize();
      }
      return out;
    });
  }

  /**
   * Whether {@link #submit} can send groups to the generator's open continuous batch: batch slots are set, the batch
   * may stay open ({@link #keepBatchOpen}), samples are single completions (no environment), and the model has no
   * sliding-window layers.
   */
  public boolean streams() {
    return openBatch && slots > 0 && episodes == null && generator.streams();
  }

  /**
   * Whether {@link #submit} may be used (default true): false makes a continuous batch end with each call, as
   * deterministic runs need (an open batch's row layout depends on when work arrives, and with it the rounding).
   */
  public void keepBatchOpen(boolean open) {
    this.openBatch = open;
  }

  /**
   * One group on its way through the open continuous batch: its trajectories once its last completion is done, and
   * {@code admitted} once none of its completions waits for a row any more.
   */
  public record GroupRun(PromptGroup group, CompletableFuture<List<Trajectory>> trajectories,
      CompletableFuture<Void> admitted) {}

  /**
   * Sends each group to the generator's open continuous batch of batch-slots rows ({@link #streams()}), which keeps
   * its rows filled across calls: a caller that sends more groups while earlier ones run never lets the batch drain.
   * Each group's trajectories come as soon as its own completions are done.
   *
   * @throws IllegalStateException when the engine does not stream
   */
  public List<GroupRun> submit(List<PromptGroup> groups) {
    if (!streams()) {
      throw new IllegalStateException("this engine samples one batch at a time (batch-slots 0, deterministic mode, "
          + "an environment, or a model with sliding-window layers)");
    }
    // every prompt is encoded before any is sent: one that cannot be fails the call, and none runs untracked
    List<int[]> prompts = new ArrayList<>(groups.size());
    List<List<GenerationRequest>> requests = new ArrayList<>(groups.size());
    for (PromptGroup g : groups) {
      int[] ids = encodePrompt(g.prompt());
      prompts.add(ids);
      requests.add(requests(g, ids));
    }
    List<Generator.Submitted> sent = generator.submitAll(requests, slots);
    List<GroupRun> out = new ArrayList<>(groups.size());
    for (int i = 0; i < groups.size(); i++) {
      PromptGroup g = groups.get(i);
      int[] ids = prompts.get(i);
      Generator.Submitted s = sent.get(i);
      // decoded off the generator's thread, which delivers each group between decode steps
      out.add(new GroupRun(g, s.results().thenApplyAsync(results -> trajectories(g, ids, results)), s.admitted()));
    }
    return out;
  }

  /** The group's G requests: its prompt, this engine's sampling, per-sample seeds. */
  private List<GenerationRequest> requests(PromptGroup g, int[] ids) {
    List<GenerationRequest> out = new ArrayList<>(g.groupSize());
    for (int i = 0; i < g.groupSize(); i++) {
      out.add(new GenerationRequest(ids, sampling, sampleSeed(g.seed(), i)));
    }
    return out;
  }

  private List<Trajectory> trajectories(PromptGroup g, int[] ids, List<GenerationResult> results) {
    List<Trajectory> group = new ArrayList<>(results.size());
    for (int i = 0; i < results.size(); i++) {
      GenerationResult r = results.get(i);
      group.add(new Trajectory(g.promptId(), i, ids, r.tokens(), r.samplingLogProbs(), r.versions(),
          r.finishReason(), completionText(r), r.routedExperts()));
    }
    return group;
  }

  /**
   * Generates multi-turn episodes on this engine's model (see
   * {@link Generator#generateEpisodesAsync}); {@link dev.nucleon.rollout.env.EpisodeRunner} drives them.
   */
  public CompletableFuture<List<EpisodeResult>> generateEpisodes(List<EpisodeRequest> requests, TurnHandler handler) {
    // batch-slots bounds the episodes decoded at once as it bounds single completions
    return generator.generateEpisodesAsync(requests, handler, slots);
  }

  /**
   * An evaluation's answers, and the policy version that produced them: the oldest version among their tokens (the
   * weights in use when evaluation began; an in-flight update may have changed them for later tokens), or the
   * engine's version when no token was drawn.
   */
  public record Evaluation(int version, List<String> completions) {}

  /**
   * Greedy answers to held-out prompts (evaluation), in order: single completions, or with an environment the last
   * model turn of each greedy episode.
   */
  public CompletableFuture<Evaluation> evaluate(List<PromptGroup> prompts) {
    dev.nucleon.rollout.env.EpisodeRunner runner = episodes;
    if (runner == null) {
      return greedyResults(prompts.stream().map(PromptGroup::prompt).toList()).thenApply(results -> {
        int version = Integer.MAX_VALUE;
        for (GenerationResult r : results) {
          for (int v : r.versions()) {
            version = Math.min(version, v);
          }
        }
        return new Evaluation(version == Integer.MAX_VALUE ? version() : version,
            results.stream().map(this::completionText).toList());
      });
    }
    return runner.evaluate(this, prompts).thenApply(ts -> new Evaluation(
        ts.stream().filter(t -> t.tokenVersions().length > 0).mapToInt(Trajectory::oldestVersion).min()
            .orElse(version()), ts.stream().map(Trajectory::completionText).toList()));
  }

  /** Greedy completions of prompts (evaluation), decoded. */
  public CompletableFuture<List<String>> greedy(List<String> prompts) {
    return greedyResults(prompts).thenApply(results -> results.stream().map(this::completionText).toList());
  }

  /** Greedy completions of prompts with this engine's token limit and stop tokens. */
  private CompletableFuture<List<GenerationResult>> greedyResults(List<String> prompts) {
    SamplingParams greedy = new SamplingParams(0f, 0, 1f, sampling.maxNewTokens(), sampling.stopTokens());
    List<GenerationRequest> requests = new ArrayList<>();
    for (String p : prompts) {
      requests.add(new GenerationRequest(encodePrompt(p), greedy, 0));
    }
    return generator.generateAsync(requests);
  }

  private String completionText(GenerationResult r) {
    int[] ids = r.finishReason() == FinishReason.STOP ? Arrays.copyOf(r.tokens(), r.tokens().length - 1) : r.tokens();
    return tokenizer.decode(ids, true);
  }

  /** A per-sample seed: the group's seed mixed with the sample index (SplitMix64's finalizer). */
  public static long sampleSeed(long groupSeed, int index) {
    long z = groupSeed + 0x9E3779B97F4A7C15L * (index + 1);
    z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
    return z ^ (z >>> 31);
  }

  @Override
  public void close() {
    // the generator first: a running batch must not step an environment that is closed
    generator.close();
    dev.nucleon.rollout.env.EpisodeRunner runner = episodes;
    if (runner != null) {
      runner.close();
    }
  }
}
