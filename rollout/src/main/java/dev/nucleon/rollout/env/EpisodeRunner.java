package dev.nucleon.rollout.env;

import dev.nucleon.core.env.EpisodeStart;
import dev.nucleon.core.env.StepResult;
import dev.nucleon.core.rollout.EpisodeOutcome;
import dev.nucleon.core.rollout.FinishReason;
import dev.nucleon.core.rollout.PromptGroup;
import dev.nucleon.core.rollout.Trajectory;
import dev.nucleon.model.generate.EpisodeRequest;
import dev.nucleon.model.generate.EpisodeResult;
import dev.nucleon.model.generate.SamplingParams;
import dev.nucleon.model.tokenizer.TextTokenizer;
import dev.nucleon.rollout.RolloutEngine;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Multi-turn rollouts: each sample of a prompt group is an episode of the environment, started from the group's
 * row; the model's turns and the environment's answers (rendered by a {@link TurnFormat}) alternate in one
 * trajectory whose loss mask trains the model's tokens only, generated over one KV cache per batch
 * ({@link dev.nucleon.model.generate.Generator#generateEpisodes}). An episode ends when the environment says so, after
 * {@code maxTurns} model turns, when its token budget is spent, or when the environment fails (the trajectory then
 * carries the failure and is dropped like a failed reward). The trajectory's completion text is the last model turn,
 * which the run's reward scores unless the environment gave a reward.
 */
public final class EpisodeRunner implements AutoCloseable {

  private final GuardedEnvironment environment;
  private final TurnFormat format;
  private final int maxTurns;
  private final int maxTokens;
  private final ExecutorService steps;

  /**
   * @param maxTurns model turns an episode may take (0: as many as the environment and the token budget allow)
   * @param maxTokens tokens after the prompt an episode may hold, model and environment tokens together (0: as many
   *     as the model's context allows)
   */
  public EpisodeRunner(GuardedEnvironment environment, TurnFormat format, int maxTurns, int maxTokens) {
    if (maxTurns < 0) {
      throw new IllegalArgumentException("max-turns must be >= 0 (0: no limit of its own), got " + maxTurns);
    }
    if (maxTokens < 0) {
      throw new IllegalArgumentException("max-tokens must be >= 0, got " + maxTokens);
    }
    this.environment = environment;
    this.format = format;
    this.maxTurns = maxTurns;
    this.maxTokens = maxTokens;
    AtomicInteger n = new AtomicInteger();
    this.steps = Executors.newCachedThreadPool(r -> {
      Thread t = new Thread(r, "nucleon-episode-" + n.incrementAndGet());
      t.setDaemon(true);
      return t;
    });
  }

  /**
   * The model's stop tokens and the environment's {@linkplain GuardedEnvironment#turnStops() turn stops}, each once;
   * throws IllegalArgumentException naming a turn stop the tokenizer does not encode as one token.
   */
  public static int[] stopTokens(int[] modelStops, GuardedEnvironment environment, TextTokenizer tokenizer) {
    java.util.LinkedHashSet<Integer> ids = new java.util.LinkedHashSet<>();
    for (int id : modelStops) {
      ids.add(id);
    }
    for (String text : environment.turnStops()) {
      int[] enc = tokenizer.encode(text, false);
      if (enc.length != 1) {
        throw new IllegalArgumentException("environment '" + environment.name() + "' ends turns at '" + text
            + "', which the model's tokenizer does not encode as one token (" + Arrays.toString(enc) + ")");
      }
      ids.add(enc[0]);
    }
    return ids.stream().mapToInt(Integer::intValue).toArray();
  }

  /** Samples each group's episodes; the result lists each group's trajectories in group order. */
  public CompletableFuture<List<List<Trajectory>>> generate(RolloutEngine engine, List<PromptGroup> groups) {
    List<Spec> specs = new ArrayList<>();
    for (PromptGroup g : groups) {
      for (int i = 0; i < g.groupSize(); i++) {
        specs.add(new Spec(g, i, RolloutEngine.sampleSeed(g.seed(), i)));
      }
    }
    return run(engine, specs, engine.sampling()).thenApply(all -> {
      List<List<Trajectory>> out = new ArrayList<>();
      int k = 0;
      for (PromptGroup g : groups) {
        out.add(new ArrayList<>(all.subList(k, k + g.groupSize())));
        k += g.groupSize();
      }
      return out;
    });
  }

  /** One greedy episode per prompt (evaluation); their trajectories in prompt order. */
  public CompletableFuture<List<Trajectory>> evaluate(RolloutEngine engine, List<PromptGroup> prompts) {
    SamplingParams s = engine.sampling();
    SamplingParams greedy = new SamplingParams(0f, 0, 1f, s.maxNewTokens(), s.stopTokens());
    List<Spec> specs = new ArrayList<>();
    for (PromptGroup p : prompts) {
      specs.add(new Spec(p, 0, 0));
    }
    return run(engine, specs, greedy);
  }

  private record Spec(PromptGroup group, int sample, long seed) {}

  /** What an episode's handler learned; written by step threads, read once generation has completed. */
  private static final class State {
    final Spec spec;
    GuardedEnvironment.GuardedEpisode episode;
    String opening = "";
    String lastTurn = "";
    java.util.Map<String, Long> counters = java.util.Map.of();
    String endReason;
    Double reward;
    String failure;
    boolean ended;

    State(Spec spec) {
      this.spec = spec;
    }
  }

  /**
   * Runs the episodes in consecutive parts no larger than the environment's capacity (a remote environment's
   * servers), each part's episodes started together and generated as one batch.
   */
  private CompletableFuture<List<Trajectory>> run(RolloutEngine engine, List<Spec> specs, SamplingParams turn) {
    int part = Math.max(1, Math.min(specs.size(), environment.capacity()));
    CompletableFuture<List<Trajectory>> all = CompletableFuture.completedFuture(new ArrayList<>());
    for (int from = 0; from < specs.size(); from += part) {
      List<Spec> these = specs.subList(from, Math.min(specs.size(), from + part));
      all = all.thenCompose(done -> runPart(engine, these, turn).thenApply(more -> {
        done.addAll(more);
        return done;
      }));
    }
    return all;
  }

  private CompletableFuture<List<Trajectory>> runPart(RolloutEngine engine, List<Spec> specs, SamplingParams turn) {
    List<CompletableFuture<State>> started = new ArrayList<>();
    for (Spec spec : specs) {
      // a start that throws anyway (the guard turns failures into failed starts) is a failed state
      started.add(CompletableFuture.supplyAsync(() -> start(spec), steps).exceptionally(e -> {
        State st = new State(spec);
        st.failure = "starting the episode: " + e;
        st.endReason = "failed";
        return st;
      }));
    }
    return CompletableFuture.allOf(started.toArray(CompletableFuture[]::new)).thenCompose(x -> {
      List<State> states = started.stream().map(CompletableFuture::join).toList();
      List<int[]> prompts = new ArrayList<>();
      CompletableFuture<List<EpisodeResult>> generated;
      try {
        List<EpisodeRequest> requests = new ArrayList<>();
        int budget = maxTokens > 0 ? maxTokens : Integer.MAX_VALUE;
        // an episode that could not start takes one token only: it is dropped like a failed reward
        SamplingParams one = new SamplingParams(turn.temperature(), turn.topK(), turn.topP(), 1, turn.stopTokens());
        for (State st : states) {
          int[] ids = engine.encodePrompt(st.spec.group().prompt() + st.opening);
          prompts.add(ids);
          requests.add(new EpisodeRequest(ids, st.failure == null ? turn : one, st.spec.seed(), budget));
        }
        generated = engine.generateEpisodes(requests, (e, t, tokens, reason) -> next(engine, states.get(e), t,
            tokens, reason));
      } catch (RuntimeException e) {
        generated = CompletableFuture.failedFuture(e);
      }
      // off the generator's thread: closing episodes and building trajectories must not hold up generation
      return generated.handleAsync((results, error) -> {
        states.forEach(this::end); // those still open when generation failed
        if (error != null) {
          throw error instanceof java.util.concurrent.CompletionException c ? c
              : new java.util.concurrent.CompletionException(error);
        }
        List<Trajectory> out = new ArrayList<>();
        for (int i = 0; i < states.size(); i++) {
          out.add(trajectory(states.get(i), prompts.get(i), results.get(i)));
        }
        return out;
      }, steps);
    });
  }

  private State start(Spec spec) {
    State st = new State(spec);
    PromptGroup g = spec.group();
    st.episode = environment.start(new EpisodeStart(g.promptId(), spec.sample(), g.prompt(), g.groundTruth(),
        g.metadata()));
    StepResult failed = st.episode.failedStart();
    if (failed != null) {
      st.failure = failed.failure();
      st.endReason = "failed";
      end(st);
    } else if (!st.episode.opening().isEmpty()) {
      try {
        st.opening = format.opening(g.prompt(), st.episode.opening());
      } catch (RuntimeException e) {
        st.failure = "the episode's opening messages: " + e.getMessage();
        st.endReason = "failed";
        end(st);
      }
    }
    return st;
  }

  /** The environment's answer to a model turn, rendered and tokenized; null ends the episode. */
  private CompletableFuture<int[]> next(RolloutEngine engine, State st, int turn, int[] tokens,
      FinishReason reason) {
    boolean stopped = reason == FinishReason.STOP;
    int[] turnTokens = stopped ? Arrays.copyOf(tokens, tokens.length - 1) : tokens;
    st.lastTurn = engine.tokenizer().decode(turnTokens, true);
    if (st.failure != null) {
      return CompletableFuture.completedFuture(null); // a failed start: the turn is not shown to anyone
    }
    // the environment reads the turn with its special tokens: tool calls are marked with them
    String raw = engine.tokenizer().decode(turnTokens, false);
    String stopText = stopped ? engine.tokenizer().decode(new int[] {tokens[tokens.length - 1]}, false) : null;
    return CompletableFuture.supplyAsync(() -> {
      int[] answer = answer(st, raw, stopText, turn, engine);
      if (answer == null) {
        end(st); // its resources (a remote server) go back at once, not when the whole batch is done
      }
      return answer;
    }, steps).exceptionally(e -> {
      st.failure = "answering the model's turn: " + e.getMessage();
      st.endReason = "failed";
      end(st);
      return null;
    });
  }

  /** The environment's answer to a turn, rendered and tokenized; null when the episode ends. */
  private int[] answer(State st, String raw, String stopText, int turn, RolloutEngine engine) {
    StepResult r = st.episode.step(raw);
    if (r.isFailed()) {
      st.failure = r.failure();
      st.endReason = "failed";
      return null;
    }
    if (r.done()) {
      st.reward = r.reward();
      st.endReason = r.endReason();
      return null;
    }
    if (maxTurns > 0 && turn + 1 >= maxTurns) {
      st.endReason = "max_turns";
      return null;
    }
    String text = format.after(st.spec.group().prompt(), r.observation(), stopText);
    return engine.tokenizer().encode(text, false);
  }

  /** Closes an episode that ended, keeping its counters; again does nothing. */
  private void end(State st) {
    GuardedEnvironment.GuardedEpisode e = st.episode;
    if (e != null) {
      synchronized (st) {
        if (!st.ended) {
          st.ended = true;
          st.counters = e.counters();
          e.close();
        }
      }
    }
  }

  private static Trajectory trajectory(State st, int[] prompt, EpisodeResult r) {
    String end = st.endReason != null ? st.endReason
        : r.end() == EpisodeResult.End.TOKEN_LIMIT ? "max_tokens" : "ended";
    PromptGroup g = st.spec.group();
    return new Trajectory(g.promptId(), st.spec.sample(), prompt, r.tokens(), r.samplingLogProbs(), r.versions(),
        r.lastTurn(), st.lastTurn, r.routedExperts(), r.trained(),
        new EpisodeOutcome(r.turns(), end, st.reward, st.failure, st.counters));
  }

  /** Stops the runner's threads and closes the environment (several runners may share one: closing is idempotent). */
  @Override
  public void close() {
    steps.shutdownNow();
    environment.close();
  }
}
