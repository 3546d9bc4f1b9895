package dev.nucleon.actors;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nucleon.actors.monitor.NucleonMetrics;
import dev.nucleon.actors.serialization.NucleonMessage;
import java.io.BufferedWriter;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;

/**
 * Writes the run's record on the coordinator's node: one JSON line per learner step and per evaluation in
 * {@code metrics.jsonl}, progress on the console, and at the end {@code summary.json} plus a one-line summary.
 */
public final class RunReporter extends AbstractBehavior<RunReporter.Command> {

  public sealed interface Command {}

  /** The learner made {@code version} from the groups of {@code prompts}; the step's statistics. */
  public record StepDone(int version, List<Long> prompts, Map<String, Double> stats)
      implements Command, NucleonMessage {}

  /** An evaluation of {@code version} on {@code n} held-out prompts. */
  public record EvalDone(int version, double accuracy, double rewardMean, int n, int failed,
      List<EvalSample> samples) implements Command, NucleonMessage {}

  /**
   * One evaluated prompt as text, for samples.jsonl.
   *
   * @param reward the reward, or NaN when scoring failed ({@code error} says why)
   */
  public record EvalSample(long promptId, String prompt, String answer, String completion, double reward,
      String error) implements NucleonMessage {}

  /** What the model generated at each evaluation: the first {@code nucleon.run.eval.samples} prompts. */
  public static final String SAMPLES = "samples.jsonl";

  /**
   * The run is over; {@code prompts}: the coordinator's accounting ({@code read}, {@code trained}, {@code unfinished},
   * {@code dropped.REASON}, {@code reissued.REASON}).
   */
  public record Finished(int version, long promptsConsumed, String checkpoint, Map<String, Long> prompts)
      implements Command, NucleonMessage {}

  /** A part of the run failed; the run ends with this reason. */
  public record Failed(String reason) implements Command, NucleonMessage {}

  /** What a finished run reports. */
  public record Summary(int steps, long promptsConsumed, List<double[]> evals, double seconds, Path runDir,
      String checkpoint, Map<String, Long> prompts) {

    /** Accuracy of the first evaluation (before training), or NaN. */
    public double accuracyBefore() {
      return evals.isEmpty() ? Double.NaN : evals.get(0)[1];
    }

    /** Accuracy of the last evaluation, or NaN. */
    public double accuracyAfter() {
      return evals.isEmpty() ? Double.NaN : evals.get(evals.size() - 1)[1];
    }
  }

  private static final ObjectMapper JSON = new ObjectMapper();

  private final RunSettings settings;
  private final Path runDir;
  private final BufferedWriter jsonl;
  private final CompletableFuture<Summary> done;
  private final NucleonMetrics metrics;
  private final long start = System.nanoTime();
  private final List<double[]> evals = new ArrayList<>();
  private final List<Double> gradNorms = new ArrayList<>();
  private int gradSpikes;
  private int skippedUpdates;
  private final ProgressListener progress;

  /** Receives what the reporter learns, for a console progress display. */
  public interface ProgressListener {
    void step(int version, int totalSteps, Map<String, Double> stats);

    void eval(int version, double accuracy, int n);

    void close();
  }

  public static Behavior<Command> create(RunSettings settings, Path runDir, CompletableFuture<Summary> done,
      NucleonMetrics metrics, ProgressListener progress) {
    return create(settings, runDir, done, metrics, progress, -1);
  }

  /**
   * @param resumedFrom the policy version a resumed run continues from (0: resumed without a checkpoint), or -1 for a
   *     fresh run. A resumed run first writes a {@code resume} row: step rows written before it for later steps
   *     were lost with the node that wrote them, and the steps are trained again.
   */
  public static Behavior<Command> create(RunSettings settings, Path runDir, CompletableFuture<Summary> done,
      NucleonMetrics metrics, ProgressListener progress, int resumedFrom) {
    return Behaviors.setup(ctx -> new RunReporter(ctx, settings, runDir, done, metrics, progress, resumedFrom));
  }

  private RunReporter(ActorContext<Command> ctx, RunSettings settings, Path runDir, CompletableFuture<Summary> done,
      NucleonMetrics metrics, ProgressListener progress, int resumedFrom) {
    super(ctx);
    this.settings = settings;
    this.runDir = runDir;
    this.done = done;
    this.metrics = metrics;
    this.progress = progress;
    try {
      Files.createDirectories(runDir);
      for (String file : List.of("metrics.jsonl", SAMPLES)) {
        long cut = cutTornLine(runDir.resolve(file));
        if (cut > 0) {
          ctx.getLog().warn("{}: cut the last {} byte(s), a line without its end (its writer was stopped while "
              + "writing it)", runDir.resolve(file), cut);
        }
      }
      this.jsonl = Files.newBufferedWriter(runDir.resolve("metrics.jsonl"), StandardCharsets.UTF_8,
          StandardOpenOption.CREATE, StandardOpenOption.APPEND);
    } catch (IOException e) {
      throw new UncheckedIOException("cannot write the run's metrics in " + runDir, e);
    }
    if (resumedFrom >= 0) {
      ObjectNode row = JSON.createObjectNode();
      row.put("type", "resume");
      row.put("step", resumedFrom);
      row.put("time", Instant.now().toString());
      write(row);
    }
  }

  @Override
  public Receive<Command> createReceive() {
    return newReceiveBuilder()
        .onMessage(StepDone.class, this::onStep)
        .onMessage(EvalDone.class, this::onEval)
        .onMessage(Finished.class, this::onFinished)
        .onMessage(Failed.class, this::onFailed)
        .onSignal(PostStop.class, s -> {
          close();
          return this;
        })
        .build();
  }

  private Behavior<Command> onStep(StepDone s) {
    ObjectNode row = JSON.createObjectNode();
    row.put("type", "step");
    row.put("step", s.version());
    row.put("time", Instant.now().toString());
    row.put("elapsed_s", elapsed());
    s.stats().forEach((k, v) -> {
      if (Double.isFinite(v)) {
        row.put(k, v);
      }
    });
    Double norm = s.stats().get("grad_norm");
    if (norm != null && Double.isFinite(norm)) {
      gradNorms.add(norm);
    }
    gradSpikes += s.stats().getOrDefault("grad_spike", 0.0) > 0 ? 1 : 0;
    skippedUpdates += s.stats().getOrDefault("skipped_update", 0.0) > 0 ? 1 : 0;
    var ids = row.putArray("prompts");
    s.prompts().forEach(ids::add);
    var snapshot = metrics.snapshot();
    row.set("node", JSON.valueToTree(snapshot));
    write(row);
    int every = settings.run().logEverySteps();
    if (progress != null && (s.version() % every == 0 || s.version() >= settings.run().totalSteps())) {
      progress.step(s.version(), settings.run().totalSteps(), s.stats());
    }
    return this;
  }

  private Behavior<Command> onEval(EvalDone e) {
    evals.add(new double[] {e.version(), e.accuracy(), e.rewardMean(), e.n()});
    ObjectNode row = JSON.createObjectNode();
    row.put("type", "eval");
    row.put("step", e.version());
    row.put("time", Instant.now().toString());
    row.put("elapsed_s", elapsed());
    row.put("eval_accuracy", e.accuracy());
    row.put("eval_reward_mean", e.rewardMean());
    row.put("eval_prompts", e.n());
    row.put("eval_failed_rewards", e.failed());
    write(row);
    writeSamples(e);
    if (progress != null) {
      progress.eval(e.version(), e.accuracy(), e.n());
    }
    return this;
  }

  private Behavior<Command> onFinished(Finished f) {
    Summary summary = new Summary(f.version(), f.promptsConsumed(), List.copyOf(evals), elapsed(), runDir,
        f.checkpoint(), Map.copyOf(f.prompts()));
    ObjectNode o = JSON.createObjectNode();
    o.put("steps", summary.steps());
    o.put("prompts_consumed", summary.promptsConsumed());
    o.put("seconds", summary.seconds());
    o.put("run_dir", runDir.toString());
    o.put("checkpoint", f.checkpoint());
    // every prompt read is trained, dropped (by reason) or unfinished; re-issues by reason
    ObjectNode prompts = o.putObject("prompts");
    ObjectNode dropped = JSON.createObjectNode();
    ObjectNode reissued = JSON.createObjectNode();
    f.prompts().forEach((k, v) -> {
      if (k.startsWith("dropped.")) {
        dropped.put(k.substring("dropped.".length()), v);
      } else if (k.startsWith("reissued.")) {
        reissued.put(k.substring("reissued.".length()), v);
      } else {
        prompts.put(k, v);
      }
    });
    prompts.set("dropped", dropped);
    prompts.set("reissued", reissued);
    if (!evals.isEmpty()) {
      o.put("accuracy_before", summary.accuracyBefore());
      o.put("accuracy_after", summary.accuracyAfter());
    }
    if (!gradNorms.isEmpty()) {
      double[] sorted = gradNorms.stream().mapToDouble(Double::doubleValue).sorted().toArray();
      o.put("grad_norm_median", sorted[sorted.length / 2]);
      o.put("grad_norm_p99", sorted[Math.min(sorted.length - 1, (int) Math.ceil(0.99 * sorted.length) - 1)]);
      o.put("grad_norm_max", sorted[sorted.length - 1]);
    }
    o.put("grad_spikes", gradSpikes);
    o.put("skipped_updates", skippedUpdates);
    try {
      // whole or not at all: a watcher takes the file's appearance as the run's end and reads it at once
      Path tmp = runDir.resolve(".summary.json.tmp");
      Files.writeString(tmp, JSON.writerWithDefaultPrettyPrinter().writeValueAsString(o));
      Files.move(tmp, runDir.resolve("summary.json"), StandardCopyOption.ATOMIC_MOVE,
          StandardCopyOption.REPLACE_EXISTING);
    } catch (IOException e) {
      getContext().getLog().error("cannot write summary.json", e);
    }
    close();
    done.complete(summary);
    return this;
  }

  private Behavior<Command> onFailed(Failed f) {
    getContext().getLog().error("run failed: {}", f.reason());
    close();
    done.completeExceptionally(new IllegalStateException(f.reason()));
    return this;
  }

  private double elapsed() {
    return (System.nanoTime() - start) / 1e9;
  }

  /** Appends the evaluation's samples to samples.jsonl, one line each with the policy version that wrote it. */
  private void writeSamples(EvalDone e) {
    if (e.samples() == null || e.samples().isEmpty()) {
      return;
    }
    StringBuilder lines = new StringBuilder();
    for (EvalSample s : e.samples()) {
      ObjectNode o = JSON.createObjectNode();
      o.put("version", e.version());
      o.put("prompt_id", s.promptId());
      o.put("prompt", s.prompt());
      o.put("answer", s.answer());
      o.put("completion", s.completion());
      if (Double.isNaN(s.reward())) {
        o.putNull("reward");
        o.put("error", s.error());
      } else {
        o.put("reward", s.reward());
      }
      try {
        lines.append(JSON.writeValueAsString(o)).append('\n');
      } catch (IOException ex) {
        throw new java.io.UncheckedIOException(ex);
      }
    }
    try {
      Files.writeString(runDir.resolve(SAMPLES), lines, java.nio.file.StandardOpenOption.CREATE,
          java.nio.file.StandardOpenOption.APPEND);
    } catch (IOException ex) {
      getContext().getLog().error("cannot append to {}", SAMPLES, ex);
    }
  }

  /**
   * Cuts what follows the last newline of {@code file}: the start of a line whose writer was killed before it ended
   * it. Appending after it would join the next row to it, and readers would skip both as one malformed line.
   *
   * @return the bytes cut (0 when the file is missing, empty or ends with a newline)
   */
  static long cutTornLine(Path file) throws IOException {
    if (!Files.exists(file)) {
      return 0;
    }
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
      long size = ch.size();
      ByteBuffer buf = ByteBuffer.allocate(8192);
      long end = size;
      while (end > 0) {
        int n = (int) Math.min(buf.capacity(), end);
        buf.clear().limit(n);
        while (buf.hasRemaining() && ch.read(buf, end - n + buf.position()) >= 0) {
          // a positional read may return fewer bytes than asked
        }
        for (int i = n - 1; i >= 0; i--) {
          if (buf.get(i) == '\n') {
            long keep = end - n + i + 1;
            ch.truncate(keep);
            return size - keep;
          }
        }
        end -= n;
      }
      ch.truncate(0);
      return size;
    }
  }

  private void write(ObjectNode row) {
    try {
      jsonl.write(JSON.writeValueAsString(row));
      jsonl.newLine();
      jsonl.flush();
    } catch (IOException e) {
      getContext().getLog().error("cannot append to metrics.jsonl", e);
    }
  }

  private void close() {
    if (progress != null) {
      progress.close();
    }
    try {
      jsonl.close();
    } catch (IOException e) {
      getContext().getLog().warn("closing metrics.jsonl", e);
    }
  }
}
