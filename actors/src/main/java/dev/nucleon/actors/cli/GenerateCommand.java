package dev.nucleon.actors.cli;

import ai.djl.Device;
import ai.djl.ndarray.NDManager;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.ModelFiles;
import dev.nucleon.model.generate.GenerationRequest;
import dev.nucleon.model.generate.GenerationResult;
import dev.nucleon.model.generate.Generator;
import dev.nucleon.model.generate.SamplingParams;
import dev.nucleon.model.tokenizer.TextTokenizer;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.stream.IntStream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code nucleon generate}: sample completions of one prompt and print only the generated text. */
@Command(name = "generate", mixinStandardHelpOptions = true,
    description = {"Samples completions of a prompt and prints the generated text, one line per sample "
        + "(newlines inside a completion are printed as \\n)."})
final class GenerateCommand implements Callable<Integer> {

  @Spec
  CommandSpec spec;

  @Mixin
  ModelOptions modelOptions;

  @Option(names = "--tokenizer", paramLabel = "PATH",
      description = "tokenizer.json (or its folder) or a llama2.c tokenizer .bin; default: the model folder's")
  Path tokenizer;

  @Option(names = "--prompt", required = true, description = "the prompt text")
  String prompt;

  @Option(names = "--max-new-tokens", defaultValue = "64", description = "default: ${DEFAULT-VALUE}")
  int maxNewTokens;

  @Option(names = "--temperature", defaultValue = "1.0", description = "0 = greedy (default: ${DEFAULT-VALUE})")
  float temperature;

  @Option(names = "--top-k", defaultValue = "0", description = "0 = off (default: ${DEFAULT-VALUE})")
  int topK;

  @Option(names = "--top-p", defaultValue = "1.0", description = "1 = off (default: ${DEFAULT-VALUE})")
  float topP;

  @Option(names = "--seed", defaultValue = "0", description = "default: ${DEFAULT-VALUE}")
  long seed;

  @Option(names = "--num-samples", defaultValue = "1", description = "default: ${DEFAULT-VALUE}")
  int numSamples;

  @Override
  public Integer call() {
    if (modelOptions.model.startsWith("random:")) {
      throw new IllegalArgumentException("generate needs a real model with a tokenizer, not " + modelOptions.model);
    }
    if (numSamples < 1) {
      throw new IllegalArgumentException("--num-samples must be >= 1, got " + numSamples);
    }
    Device device = modelOptions.startEngine();
    Path modelPath = Path.of(modelOptions.model);
    ModelFiles.Checkpoint ckpt = modelOptions.checkpoint();
    try (TextTokenizer tok = ModelFiles.tokenizer(modelPath, tokenizer, ckpt.config());
        NDManager manager = NDManager.newBaseManager(device);
        LlamaModel model = ckpt.instantiate(manager);
        Generator generator = new Generator(model, 0)) {
      int[] promptIds = tok.encode(prompt, tok.bosId() >= 0);
      int[] stop = ModelFiles.stopIds(tok, ckpt.config());
      SamplingParams params = new SamplingParams(temperature, topK, topP, maxNewTokens, stop);
      List<GenerationRequest> requests = new ArrayList<>();
      for (int i = 0; i < numSamples; i++) {
        requests.add(new GenerationRequest(promptIds, params, seed + i));
      }
      PrintWriter out = spec.commandLine().getOut();
      for (GenerationResult r : generator.generate(requests)) {
        int[] ids = r.tokens();
        if (r.finishReason() == dev.nucleon.core.rollout.FinishReason.STOP) {
          ids = Arrays.copyOf(ids, ids.length - 1);
        }
        out.println(tok.decode(ids, true).replace("\n", "\\n"));
      }
      out.flush();
    }
    return 0;
  }
}
