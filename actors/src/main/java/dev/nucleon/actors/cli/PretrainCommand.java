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
 * {@code nucleon pretrain CONF}: builds a small base model from scratch with the supervised loss on the
 * project's arithmetic task (character tokenizer, Llama-shaped decoder), evaluating greedy accuracy on the
 * held-out problems and stopping at the first evaluation that reaches the target. One libtorch thread and a fixed
 * seed: two runs, in any two processes, write byte-identical weights (ReproducibilityTest). The quickstart's base
 * model in conf/models/ was made this way.
 */
@Command(name = "pretrain", mixinStandardHelpOptions = true,
    description = "Trains a small base model on the arithmetic task with the supervised loss and saves it.")
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
    if (ds.format() != DatasetSettings.Format.ARITHMETIC) {
      throw new IllegalArgumentException("pretrain builds models for the arithmetic task (nucleon.dataset.format = "
          + "arithmetic), got " + ds.format().id());
    }
    Dataset data = Dataset.load(ds);
    ArithmeticTask task = new ArithmeticTask(ds.arithmetic());
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
          RolloutEngine evaluator = new RolloutEngine(new Generator(copy, 0), tok,
              SamplingParams.greedy(6, eos));
          Learner learner = new Learner(policy, null, LossSettings.defaults(), opt, 1f, 0)) {
        while (step < maxSteps) {
          List<int[]> prompts = new ArrayList<>();
          List<int[]> targets = new ArrayList<>();
          for (int i = 0; i < batch; i++) {
            DatasetRow r = train.get(rng.nextInt(train.size()));
            prompts.add(tok.encode(r.prompt(), true));
            targets.add(tok.encode(r.groundTruth() + task.stop(), false));
          }
          var stats = learner.supervised(prompts, targets, batch);
          step++;
          if (step % evalEvery == 0 || step == maxSteps) {
            evaluator.updateWeights(step, policy.toHostTensors());
            accuracy = greedyAccuracy(evaluator, eval);
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
    o.put("made_by", "./nucleon pretrain (supervised cross-entropy on answer tokens)");
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
