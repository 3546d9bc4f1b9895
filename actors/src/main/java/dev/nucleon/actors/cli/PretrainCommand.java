package dev.nucleon.actors.cli;

import ai.djl.ndarray.NDManager;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.typesafe.config.Config;
import dev.nucleon.learner.Learner;
import dev.nucleon.learner.LossSettings;
import dev.nucleon.learner.LrSchedule;
import dev.nucleon.learner.OptimizerSettings;
import dev.nucleon.model.Engines;
import dev.nucleon.model.LlamaConfig;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.generate.Generator;
import dev.nucleon.model.generate.SamplingParams;
import dev.nucleon.model.io.HfCheckpoint;
import dev.nucleon.model.tokenizer.CharVocabulary;
import dev.nucleon.model.tokenizer.HfTokenizer;
import dev.nucleon.rollout.RolloutEngine;
import dev.nucleon.rollout.data.ArithmeticTask;
import dev.nucleon.rollout.data.Dataset;
import dev.nucleon.rollout.data.DatasetRow;
import dev.nucleon.rollout.data.DatasetSettings;
import dev.nucleon.core.env.EnvironmentRegistry;
import dev.nucleon.core.rollout.PromptGroup;
import dev.nucleon.rollout.env.EpisodeRunner;
import dev.nucleon.rollout.env.EpisodeSettings;
import dev.nucleon.rollout.env.GuessEnvironment;
import dev.nucleon.rollout.env.TurnFormat;
import dev.nucleon.actors.run.RunConfig;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code nucleon pretrain CONF}: builds a small base model from scratch with the supervised loss (character
 * tokenizer, Llama-shaped decoder), evaluating greedy accuracy on the held-out rows and stopping at the first
 * evaluation that reaches the target. The task is the project's arithmetic (one turn), or, with
 * {@code nucleon.environment.name = guess}, transcripts of the guessing game played at random among the numbers still
 * possible (a base model that knows the rules, not the strategy), evaluated by greedy episodes. One libtorch thread
 * and a fixed seed: two runs, in any two processes, write byte-identical weights (ReproducibilityTest). The
 * quickstarts' base models in conf/models/ were made this way.
 */
@Command(name = "pretrain", mixinStandardHelpOptions = true,
    description = "Trains a small base model with the supervised loss (the arithmetic task, or transcripts of an "
        + "environment's episodes) and saves it.")
final class PretrainCommand implements Callable<Integer> {

  @Spec
  CommandSpec spec;

  @Parameters(index = "0", paramLabel = "CONF", description = "e.g. conf/pretrain-quickstart.conf")
  Path conf;

  @Option(names = "-D", paramLabel = "KEY=VALUE", description = "override a config key (HOCON value)")
  Map<String, String> overrides = new LinkedHashMap<>();

  @Override
  public Integer call() throws Exception {
    Config config = RunConfig.load(conf, overrides);
    Config p = config.getConfig("nucleon.pretrain");
    System.setProperty("ai.djl.pytorch.num_threads", String.valueOf(p.getInt("threads")));
    System.setProperty("ai.djl.pytorch.num_interop_threads", "1");
    Engines.start();
    DatasetSettings ds = DatasetSettings.from(config);
    EpisodeSettings episodes = EpisodeSettings.from(config);
    Dataset data = Dataset.load(ds);
    Task task = episodes.enabled() ? new EpisodeTask(episodes, p.getString("stop"), data)
        : new SingleTurnTask(ds);
    Path out = Path.of(p.getString("output"));
    int vocab = CharVocabulary.write(out, task.vocabulary(), task.stop().charAt(0));
    PrintWriter log = spec.commandLine().getOut();
    try (HfTokenizer tok = HfTokenizer.load(out)) {
      int eos = tok.eosIds()[0];
      LlamaConfig shape = new LlamaConfig("LlamaForCausalLM", vocab, p.getInt("model.dim"), p.getInt("model.ffn"),
          p.getInt("model.layers"), p.getInt("model.heads"), p.getInt("model.kv-heads"),
          p.getInt("model.dim") / p.getInt("model.heads"), 10000.0, null, 1e-5, p.getInt("model.max-positions"),
          true, false, tok.bosId(), new int[] {eos});
      long seed = p.getLong("seed");
      OptimizerSettings opt = new OptimizerSettings(p.getDouble("lr"), 0.9, 0.99, 1e-8, 0, 1.0,
          LrSchedule.constant(p.getInt("warmup-steps")));
      int batch = p.getInt("batch");
      int maxSteps = p.getInt("max-steps");
      int evalEvery = p.getInt("eval-every");
      double target = p.getDouble("target-accuracy");
      List<DatasetRow> train = data.train();
      List<DatasetRow> eval = data.eval();
      log.printf("pretraining %s (%d parameters) on %d training problems; %d held out%n", shape,
          shape.parameterCount(), train.size(), eval.size());
      log.flush();
      SplittableRandom rng = new SplittableRandom(seed);
      long start = System.nanoTime();
      double accuracy = 0;
      int step = 0;
      try (NDManager manager = NDManager.newBaseManager();
          LlamaModel policy = LlamaModel.random(shape, manager, seed);
          LlamaModel copy = LlamaModel.random(shape, manager, seed);
          RolloutEngine evaluator = task.evaluator(new Generator(copy, 0), tok, eos);
          Learner learner = new Learner(policy, null, LossSettings.defaults(), opt, 1f, 0)) {
        while (step < maxSteps) {
          List<int[]> prompts = new ArrayList<>();
          List<int[]> targets = new ArrayList<>();
          for (int i = 0; i < batch; i++) {
            DatasetRow r = train.get(rng.nextInt(train.size()));
            prompts.add(tok.encode(r.prompt(), true));
            targets.add(tok.encode(task.target(r, rng), false));
          }
          var stats = learner.supervised(prompts, targets, batch);
          step++;
          if (step % evalEvery == 0 || step == maxSteps) {
            evaluator.updateWeights(step, policy.toHostTensors());
            accuracy = task.accuracy(evaluator, eval);
            log.printf("step %d  loss %.4f  held-out greedy accuracy %.1f%%  (%.1f s)%n", step, stats.loss(),
                100 * accuracy, (System.nanoTime() - start) / 1e9);
            log.flush();
            if (accuracy >= target) {
              break;
            }
          }
        }
        HfCheckpoint.write(out, shape, policy.toHuggingFace());
      }
      double seconds = (System.nanoTime() - start) / 1e9;
      writeCard(out, config, step, accuracy, seconds, train.size(), eval.size());
      log.printf("saved %s after %d steps (%.1f s): held-out greedy accuracy %.1f%%%n", out, step, seconds,
          100 * accuracy);
    }
    return 0;
  }

  /** What the base model learns: its characters, its training texts and how it is evaluated. */
  private interface Task {
    String vocabulary();

    /** The character that ends a model turn. */
    String stop();

    /** The text after a training row's prompt that the model learns to write. */
    String target(DatasetRow row, SplittableRandom rng);

    RolloutEngine evaluator(Generator generator, HfTokenizer tok, int eos);

    /** Fraction of held-out rows the greedy model gets right. */
    double accuracy(RolloutEngine evaluator, List<DatasetRow> rows);
  }

  /** The arithmetic task: the answer and the stop marker, one turn. */
  private static final class SingleTurnTask implements Task {
    private final ArithmeticTask task;

    SingleTurnTask(DatasetSettings ds) {
      if (ds.format() != DatasetSettings.Format.ARITHMETIC) {
        throw new IllegalArgumentException("pretrain builds single-turn models for the arithmetic task "
            + "(nucleon.dataset.format = arithmetic), got " + ds.format().id() + "; or name an environment that "
            + "writes transcripts (nucleon.environment.name = guess)");
      }
      this.task = new ArithmeticTask(ds.arithmetic());
    }

    @Override
    public String vocabulary() {
      return task.vocabulary();
    }

    @Override
    public String stop() {
      return task.stop();
    }

    @Override
    public String target(DatasetRow row, SplittableRandom rng) {
      return row.groundTruth() + task.stop();
    }

    @Override
    public RolloutEngine evaluator(Generator generator, HfTokenizer tok, int eos) {
      return new RolloutEngine(generator, tok, SamplingParams.greedy(6, eos));
    }

    @Override
    public double accuracy(RolloutEngine evaluator, List<DatasetRow> rows) {
      return greedyAccuracy(evaluator, rows);
    }
  }

  /**
   * An environment's episodes: transcripts of the environment's own demonstration play (model turns and its
   * answers as the run renders them, {@code nucleon.environment.message-format}); evaluated by greedy episodes.
   */
  private static final class EpisodeTask implements Task {
    private final EpisodeSettings settings;
    private final GuessEnvironment environment;
    private final String stop;
    private final TurnFormat format;
    private final String vocabulary;

    EpisodeTask(EpisodeSettings settings, String stop, Dataset data) {
      dev.nucleon.core.env.Environment env = EnvironmentRegistry.load().create(settings.name(), settings.config());
      if (!(env instanceof GuessEnvironment g)) {
        env.close();
        throw new IllegalArgumentException("environment '" + settings.name() + "' writes no pretraining "
            + "transcripts; pretrain knows the arithmetic task and the guess environment");
      }
      if (stop.length() != 1 || Character.isDigit(stop.charAt(0))) {
        throw new IllegalArgumentException("nucleon.pretrain.stop must be one character, not a digit, got '" + stop
            + "'");
      }
      this.settings = settings;
      this.environment = g;
      this.stop = stop;
      this.format = TurnFormat.plain(settings.messageFormat());
      // every character the prompts and a sample of transcripts use, in first-seen order after the digits
      java.util.LinkedHashSet<Character> chars = new java.util.LinkedHashSet<>();
      "0123456789".chars().forEach(c -> chars.add((char) c));
      SplittableRandom rng = new SplittableRandom(0);
      List<DatasetRow> rows = new ArrayList<>(data.train());
      rows.addAll(data.eval());
      for (DatasetRow r : rows) {
        r.prompt().chars().forEach(c -> chars.add((char) c));
        target(r, rng).chars().forEach(c -> chars.add((char) c));
      }
      StringBuilder v = new StringBuilder();
      chars.forEach(v::append);
      this.vocabulary = v.toString();
    }

    @Override
    public String vocabulary() {
      return vocabulary;
    }

    @Override
    public String stop() {
      return stop;
    }

    @Override
    public String target(DatasetRow row, SplittableRandom rng) {
      return environment.randomPlay(Integer.parseInt(row.groundTruth().strip()), rng, stop, format, row.prompt());
    }

    @Override
    public RolloutEngine evaluator(Generator generator, HfTokenizer tok, int eos) {
      RolloutEngine engine = new RolloutEngine(generator, tok, SamplingParams.greedy(4, eos));
      engine.useEpisodes(new EpisodeRunner(settings.environment(EnvironmentRegistry.load()), format,
          settings.maxTurns(), settings.maxTokens()));
      return engine;
    }

    @Override
    public double accuracy(RolloutEngine evaluator, List<DatasetRow> rows) {
      List<PromptGroup> prompts = rows.stream().map(r -> new PromptGroup(r.id(), 0, r.prompt(), r.groundTruth(),
          r.metadata(), 1, 0)).toList();
      List<String> last = evaluator.evaluate(prompts).join().completions();
      int found = 0;
      for (int i = 0; i < rows.size(); i++) {
        // the episode ends at the right guess, so it was found when the last turn is the number
        found += last.get(i).equals(environment.format(Integer.parseInt(rows.get(i).groundTruth().strip()))) ? 1 : 0;
      }
      return rows.isEmpty() ? 0 : found / (double) rows.size();
    }
  }

  /** Fraction of held-out prompts whose greedy completion before the stop token is the answer. */
  static double greedyAccuracy(RolloutEngine evaluator, List<DatasetRow> rows) {
    List<String> completions = evaluator.greedy(rows.stream().map(DatasetRow::prompt).toList()).join();
    int correct = 0;
    for (int i = 0; i < rows.size(); i++) {
      if (completions.get(i).equals(rows.get(i).groundTruth())) {
        correct++;
      }
    }
    return rows.isEmpty() ? 0 : correct / (double) rows.size();
  }

  private static void writeCard(Path out, Config config, int steps, double accuracy, double seconds, int train,
      int eval) throws java.io.IOException {
    ObjectMapper json = new ObjectMapper();
    ObjectNode o = json.createObjectNode();
    o.put("made_by", "./nucleon pretrain (supervised cross-entropy on the tokens after the prompt)");
    o.put("steps", steps);
    o.put("seconds", Math.round(seconds * 10) / 10.0);
    o.put("held_out_greedy_accuracy", accuracy);
    o.put("training_problems", train);
    o.put("held_out_problems", eval);
    o.set("settings", json.readTree(config.getConfig("nucleon.pretrain").root()
        .render(com.typesafe.config.ConfigRenderOptions.concise())));
    Files.writeString(out.resolve("nucleon-pretrain.json"), json.writerWithDefaultPrettyPrinter()
        .writeValueAsString(o));
  }
}
