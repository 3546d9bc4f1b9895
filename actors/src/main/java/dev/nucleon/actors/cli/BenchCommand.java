package dev.nucleon.actors.cli;

import ai.djl.Device;
import ai.djl.engine.Engine;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.training.GradientCollector;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nucleon.model.LlamaConfig;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.Precision;
import dev.nucleon.model.generate.GenerationRequest;
import dev.nucleon.model.generate.Generator;
import dev.nucleon.model.generate.SamplingParams;
import dev.nucleon.model.io.HostTensor;
import dev.nucleon.model.lora.PeftAdapter;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code nucleon bench}: throughput figures, one JSON line per run. */
@Command(name = "bench", mixinStandardHelpOptions = true, description = "Benchmarks; each prints one JSON line.",
    subcommands = {BenchCommand.Generate.class, BenchCommand.Score.class, BenchCommand.Learn.class,
        BenchCommand.LogprobGap.class, WeightsBenchCommand.class, WeightsBenchCommand.Receiver.class,
        RunBenchCommand.class})
final class BenchCommand {

  private static final ObjectMapper JSON = new ObjectMapper();

  /** Resident set size of this process in MiB, from /proc (-1 where there is no /proc). */
  static double rssMb() {
    return statusMb("VmRSS:");
  }

  /** The process's peak resident set so far (VmHWM), in MB; -1 where /proc is not there. */
  static double peakRssMb() {
    return statusMb("VmHWM:");
  }

  private static double statusMb(String field) {
    try {
      for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
        if (line.startsWith(field)) {
          return Long.parseLong(line.replaceAll("[^0-9]", "")) / 1024.0;
        }
      }
    } catch (IOException | NumberFormatException e) {
      return -1;
    }
    return -1;
  }

  static int[][] randomPrompts(int batch, int len, int vocab, long seed) {
    SplittableRandom rng = new SplittableRandom(seed);
    int[][] p = new int[batch][len];
    for (int[] row : p) {
      for (int i = 0; i < len; i++) {
        row[i] = rng.nextInt(vocab);
      }
    }
    return p;
  }

  static double round(double v, int digits) {
    double f = Math.pow(10, digits);
    return Math.round(v * f) / f;
  }

  /** A random adapter for every linear projection, as a LoRA learner publishes a version (PEFT's names). */
  static Map<String, HostTensor> randomAdapterVersion(LlamaConfig c, PeftAdapter.Settings lora) {
    java.util.SplittableRandom rng = new java.util.SplittableRandom(7);
    Map<String, long[]> shapes = dev.nucleon.model.WeightLayout.huggingFaceShapes(c);
    Map<String, HostTensor> out = new java.util.LinkedHashMap<>();
    for (String module : lora.modules(c)) {
      long[] w = shapes.get(module + ".weight");
      int r = lora.rankOf(module);
      out.putAll(randomTensor("base_model.model." + module + ".lora_A.weight", new long[] {r, w[1]}, rng));
      out.putAll(randomTensor("base_model.model." + module + ".lora_B.weight", new long[] {w[0], r}, rng));
    }
    return out;
  }

  private static Map<String, HostTensor> randomTensor(String name, long[] shape, java.util.SplittableRandom rng) {
    float[] v = new float[(int) (shape[0] * shape[1])];
    for (int i = 0; i < v.length; i++) {
      v[i] = (float) ((rng.nextDouble() - 0.5) * 0.02);
    }
    return Map.of(name, new HostTensor(name, shape, v));
  }

  /**
   * Refuses a comparison the PyTorch references cannot make like for like: they run a plain Llama (grouped-query
   * attention, head_dim = hidden / heads, no biases, q/k norms, windows or experts) on the CPU.
   */
  static void refuseUnlikeReference(LlamaConfig c, Device device, String model) {
    if (!"cpu".equals(device.getDeviceType())) {
      throw new IllegalArgumentException("--reference runs PyTorch on the CPU; this run is on " + device);
    }
    if (c.moe() != null || c.latent() != null || c.qkNorm() != LlamaConfig.QkNorm.NONE || c.attentionBias()
        || c.outputBias() || c.hasSlidingWindows() || c.headDim() * c.numHeads() != c.hiddenSize()) {
      throw new IllegalArgumentException("--reference runs a plain Llama (grouped-query attention, head_dim = "
          + "hidden / heads, no biases, q/k norms, sliding windows or experts); " + model + " is not one");
    }
  }

  /** The model shape as the PyTorch references' arguments. */
  static List<String> modelShape(LlamaConfig c) {
    return List.of("--vocab", String.valueOf(c.vocabSize()), "--dim", String.valueOf(c.hiddenSize()),
        "--ffn", String.valueOf(c.intermediateSize()), "--layers", String.valueOf(c.numLayers()),
        "--heads", String.valueOf(c.numHeads()), "--kv-heads", String.valueOf(c.numKvHeads()));
  }

  /**
   * Runs one of the PyTorch eager references in resources/bench (with the model they share, torch_llama.py) under
   * the given Python interpreter, from a temporary folder removed afterwards; returns the JSON line it prints.
   */
  static ObjectNode runTorchReference(String python, String script, List<String> shape, String... args)
      throws IOException, InterruptedException {
    Path dir = Files.createTempDirectory("nucleon-torch-reference");
    try {
      for (String file : List.of("torch_llama.py", script)) {
        try (var in = BenchCommand.class.getResourceAsStream("/bench/" + file)) {
          if (in == null) {
            throw new IllegalStateException("bench/" + file + " is missing from the jar");
          }
          Files.copy(in, dir.resolve(file));
        }
      }
      List<String> cmd = new ArrayList<>(List.of(python, dir.resolve(script).toString()));
      cmd.addAll(shape);
      cmd.addAll(List.of(args));
      Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true).start();
      String out = new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
      int code = p.waitFor();
      String last = out.strip().lines().reduce((a, b) -> b).orElse("");
      if (code != 0 || !last.startsWith("{")) {
        throw new IllegalStateException("the PyTorch reference (" + String.join(" ", cmd) + ") failed with exit "
            + "code " + code + ":\n" + out.substring(Math.max(0, out.length() - 2000)));
      }
      return (ObjectNode) JSON.readTree(last);
    } finally {
      MergeCommand.deleteTree(dir);
    }
  }

  @Command(name = "generate", mixinStandardHelpOptions = true,
      description = "Batched KV-cache sampling throughput (T=1, no stop tokens, so every row makes N tokens).")
  static final class Generate implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    ModelOptions modelOptions;

    @Option(names = "--batch", defaultValue = "8", description = "sequences per batch (default: ${DEFAULT-VALUE})")
    int batch;

    @Option(names = "--new-tokens", defaultValue = "128", description = "tokens per sequence (default: ${DEFAULT-VALUE})")
    int newTokens;

    @Option(names = "--prompt-len", defaultValue = "16", description = "prompt tokens (default: ${DEFAULT-VALUE})")
    int promptLen;

    @Option(names = "--calls", defaultValue = "3", description = "timed generate calls (default: ${DEFAULT-VALUE})")
    int calls;

    @Option(names = "--warmup", defaultValue = "1", description = "untimed static calls first (default: "
        + "${DEFAULT-VALUE})")
    int warmup;

    @Option(names = "--lengths", paramLabel = "A-B", description = "each request's max new tokens drawn uniformly "
        + "in [A, B] (seeded), as RL completions vary; default: all --new-tokens")
    String lengths;

    @Option(names = "--group-size", defaultValue = "1", paramLabel = "G",
        description = "requests per prompt, side by side, as a GRPO group's samples share theirs (the generator "
            + "prefills each distinct prompt once) (default: ${DEFAULT-VALUE})")
    int groupSize;

    @Option(names = "--profile", paramLabel = "FILE",
        description = "write libtorch's profile of the timed calls (Chrome trace JSON; every round, and both modes "
            + "with --batching both) to FILE")
    Path profile;

    @Option(names = "--batching", defaultValue = "static", paramLabel = "static|continuous|both",
        description = "static: each call's --batch requests decode until the longest is done; continuous: all the "
            + "calls' requests go through the generator's open batch of --batch slots (as a rollout worker sends "
            + "its work batches), a finished one's slot taking the next, and the steady rate until the last request "
            + "started is printed too; both: the two in turn in one process, with their ratio (default: "
            + "${DEFAULT-VALUE})")
    String batching;

    @Option(names = "--rounds", defaultValue = "1", description = "times the timed calls run (with --batching both: "
        + "static and continuous alternate, each round's first the last one's second) (default: ${DEFAULT-VALUE})")
    int rounds;

    @Option(names = "--decode", defaultValue = "script", paramLabel = "script|eager",
        description = "script: each forward with the KV cache is one TorchScript call; eager: op by op through "
            + "DJL, as training runs (default: ${DEFAULT-VALUE})")
    String decode;

    @Option(names = "--reorder-weights", defaultValue = "true", paramLabel = "true|false", arity = "1",
        description = "on the CPU, multiply the large weight matrices of the decode script through oneDNN-layout "
            + "copies (false: MKL on the plain matrices; model/README.md) (default: ${DEFAULT-VALUE})")
    boolean reorderWeights;

    @Option(names = "--lora", defaultValue = "0", paramLabel = "RANK",
        description = "generate as a LoRA run's worker: a random all-linear adapter of this rank (alpha = 2 x rank) "
            + "arrives as an adapter-only version and is applied as --adapter-updates says; prints the time one "
            + "version takes to apply (default: 0, no adapter)")
    int loraRank;

    @Option(names = "--adapter-updates", defaultValue = "merged", paramLabel = "merged|side-products",
        description = "with --lora: merged into the weights, or side products in every forward "
            + "(nucleon.rollout.adapter-updates) (default: ${DEFAULT-VALUE})")
    String adapterUpdates;

    @Option(names = "--reference", paramLabel = "PYTHON",
        description = "after the timed calls, generate the same way in PyTorch eager (a random model of the same "
            + "shape and --dtype, KV cache grown by concatenation as transformers' eager Llama) with this Python "
            + "interpreter (needs torch, e.g. Debian's python3-torch: /usr/bin/python3); reports both and their ratio")
    String reference;

    @Override
    public Integer call() throws Exception {
      int[] range = lengthRange();
      boolean[] modes = switch (batching) {
        case "static" -> new boolean[] {false};
        case "continuous" -> new boolean[] {true};
        case "both" -> new boolean[] {false, true};
        default -> throw new picocli.CommandLine.ParameterException(spec.commandLine(),
            "--batching: expected static, continuous or both, got '" + batching + "'");
      };
      if (rounds < 1) {
        throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--rounds: expected at least 1, got "
            + rounds);
      }
      if (groupSize < 1) {
        throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--group-size: expected at least 1, "
            + "got " + groupSize);
      }
      if (reference != null && (lengths != null || !"static".equals(batching) || loraRank > 0 || groupSize > 1)) {
        throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--reference compares the plain case "
            + "only: every request --new-tokens long, static batching, no --lora, one request per prompt");
      }
      LlamaModel.AdapterUpdates how = switch (adapterUpdates) {
        case "merged" -> LlamaModel.AdapterUpdates.MERGED;
        case "side-products" -> LlamaModel.AdapterUpdates.SIDE_PRODUCTS;
        default -> throw new picocli.CommandLine.ParameterException(spec.commandLine(),
            "--adapter-updates: expected merged or side-products, got '" + adapterUpdates + "'");
      };
      boolean scripted = switch (decode) {
        case "script" -> true;
        case "eager" -> false;
        default -> throw new picocli.CommandLine.ParameterException(spec.commandLine(),
            "--decode: expected script or eager, got '" + decode + "'");
      };
      Device device = modelOptions.startEngine();
      double rssBeforeModel = rssAfterGc();
      try (NDManager manager = NDManager.newBaseManager(device);
          LlamaModel model = modelOptions.load(manager);
          Generator generator = new Generator(model, 0)) {
        LlamaConfig c = model.config();
        if (reference != null) {
          refuseUnlikeReference(c, device, modelOptions.describe(c));
        }
        model.setScriptedDecode(scripted);
        model.setReorderedWeights(reorderWeights);
        double adapterMs = Double.NaN;
        if (loraRank > 0) {
          PeftAdapter.Settings lora = PeftAdapter.Settings.of(loraRank, 2.0 * loraRank, 0, List.of("all-linear"));
          model.takeAdapterUpdates(lora, how);
          Map<String, HostTensor> version = randomAdapterVersion(c, lora);
          int repeats = 5;
          long t0 = 0;
          for (int i = 0; i <= repeats; i++) { // the first application is untimed (warm-up)
            java.util.concurrent.CountDownLatch done = new java.util.concurrent.CountDownLatch(1);
            generator.updateWeights(1 + i, version, done::countDown);
            done.await();
            if (i == 0) {
              t0 = System.nanoTime();
            }
          }
          adapterMs = (System.nanoTime() - t0) / 1e6 / repeats;
        }
        double rssModel = rssAfterGc();
        int[][] distinct = randomPrompts((batch + groupSize - 1) / groupSize, promptLen, c.vocabSize(), 1);
        int[][] prompts = new int[batch][];
        for (int i = 0; i < batch; i++) {
          prompts[i] = distinct[i / groupSize];
        }
        for (int w = 0; w < warmup; w++) {
          generator.generate(requests(prompts, range, w));
        }
        double rssStart = rssMb();
        if (profile != null) {
          generator.startProfile();
        }
        long prefilledBefore = generator.prefilledRows();
        Timed[] timed = new Timed[modes.length];
        ArrayNode roundRatios = JSON.createArrayNode();
        for (int r = 0; r < rounds; r++) {
          Timed[] thisRound = new Timed[modes.length];
          for (int k = 0; k < modes.length; k++) {
            int m = r % 2 == 0 ? k : modes.length - 1 - k;
            thisRound[m] = timedCalls(generator, prompts, range, modes[m]);
            timed[m] = timed[m] == null ? thisRound[m] : timed[m].plus(thisRound[m]);
          }
          if (modes.length == 2) {
            roundRatios.add(round(thisRound[1].tokensPerSecond() / thisRound[0].tokensPerSecond(), 3));
          }
        }
        if (profile != null) {
          generator.stopProfile(profile);
        }
        ObjectNode o = JSON.createObjectNode();
        o.put("bench", "generate");
        o.put("model", modelOptions.describe(c));
        o.put("device", device.toString());
        o.put("threads", Engine.getEngine("PyTorch").getGpuCount() > 0 ? -1 : threadCount());
        o.put("batch", batch);
        o.put("prompt_len", promptLen);
        o.put("group_size", groupSize);
        o.put("prefilled_rows", generator.prefilledRows() - prefilledBefore);
        o.put("new_tokens", range[0] == range[1] ? String.valueOf(range[0]) : range[0] + "-" + range[1]);
        o.put("calls", calls);
        o.put("batching", batching);
        o.put("rounds", rounds);
        // what ran: LoRA side products, mixtures of experts and latent attention decode eagerly whatever --decode says
        o.put("decode", model.decodesScripted() ? "script" : "eager");
        o.put("reordered_matrices", model.reorderedMatrices());
        if (loraRank > 0) {
          o.put("lora_rank", loraRank);
          o.put("adapter_updates", adapterUpdates);
          o.put("adapter_version_apply_ms", round(adapterMs, 2));
        }
        if (modes.length == 1) {
          timed[0].report(o, batch);
        } else {
          timed[0].report(o.putObject("static"), batch);
          timed[1].report(o.putObject("continuous"), batch);
          o.put("continuous_over_static", round(timed[1].tokensPerSecond() / timed[0].tokensPerSecond(), 3));
          if (timed[1].steadySeconds() > 0) {
            o.put("steady_over_static", round(timed[1].steadyTokensPerSecond() / timed[0].tokensPerSecond(), 3));
          }
          o.set("round_ratios", roundRatios);
        }
        o.put("rss_mb_start", round(rssStart, 1));
        o.put("rss_mb_end", round(rssMb(), 1));
        memoryPerParameter(o, c, rssBeforeModel, rssModel);
        o.put("tensor_bytes_per_param", round((double) model.parameterBytes() / c.parameterCount(), 2));
        if (reference != null) {
          ObjectNode ref = runTorchReference(reference, "torch_generate.py", modelShape(c),
              "--batch", String.valueOf(batch), "--prompt-len", String.valueOf(promptLen),
              "--new-tokens", String.valueOf(newTokens), "--calls", String.valueOf(calls),
              "--warmup", String.valueOf(warmup), "--threads", String.valueOf(Math.max(0, threadCount())),
              "--dtype", Precision.name(modelOptions.type()));
          o.set("reference", ref);
          o.put("speedup_vs_reference", round(timed[0].tokensPerSecond() / ref.get("tokens_per_s").asDouble(), 3));
        }
        spec.commandLine().getOut().println(JSON.writeValueAsString(o));
      }
      return 0;
    }

    /**
     * Tokens made, seconds taken and batch rows decoded by timed calls; for a continuous batch also the tokens made
     * and seconds taken until its last request started (its steady state: a worker that keeps sending work never
     * reaches the drain after it).
     */
    record Timed(long tokens, double seconds, long rowSteps, long steadyTokens, double steadySeconds) {
      Timed plus(Timed other) {
        return new Timed(tokens + other.tokens, seconds + other.seconds, rowSteps + other.rowSteps,
            steadyTokens + other.steadyTokens, steadySeconds + other.steadySeconds);
      }

      double tokensPerSecond() {
        return tokens / seconds;
      }

      double steadyTokensPerSecond() {
        return steadyTokens / steadySeconds;
      }

      void report(ObjectNode o, int batch) {
        o.put("tokens", tokens);
        o.put("tokens_per_s", round(tokensPerSecond(), 1));
        // tokens of the requests, per second; the share of decoded row-steps that produced one
        o.put("useful_tokens_per_s", round(tokensPerSecond(), 1));
        o.put("slot_utilization", round((double) tokens / rowSteps, 3));
        // per step of --batch rows
        o.put("ms_per_step", round(seconds * 1000 / ((double) rowSteps / batch), 3));
        o.put("seconds", round(seconds, 3));
        if (steadySeconds > 0) {
          // until the last request started: the rate of an open batch that is kept fed
          o.put("steady_useful_tokens_per_s", round(steadyTokensPerSecond(), 1));
          o.put("steady_seconds", round(steadySeconds, 3));
        }
      }
    }

    /**
     * The --calls timed calls of one kind: static, each call's requests in one batch; continuous, all the calls'
     * requests (the same ones) through one continuous batch of --batch slots. Rows decoded: a static batch decodes
     * every row until its longest request is done; a continuous one its running rows (the compiled decode step
     * leaves idle rows out; an eager one decodes them while newcomers wait to be admitted and while it drains).
     */
    private Timed timedCalls(Generator generator, int[][] prompts, int[] range, boolean continuous) {
      long tokens = 0;
      long rowStepsBefore = generator.rowSteps();
      long start = System.nanoTime();
      if (continuous) {
        // each call's requests a submission, sent together; every token counted as drawn (on the generator's
        // thread), and when the last request draws its first one, the count and the time
        java.util.concurrent.atomic.AtomicLong drawn = new java.util.concurrent.atomic.AtomicLong();
        java.util.concurrent.atomic.AtomicInteger started = new java.util.concurrent.atomic.AtomicInteger();
        java.util.concurrent.atomic.AtomicInteger finished = new java.util.concurrent.atomic.AtomicInteger();
        long[] steady = new long[2];
        int total = calls * prompts.length;
        List<List<GenerationRequest>> submissions = new ArrayList<>();
        for (int i = 0; i < calls; i++) {
          List<GenerationRequest> counted = new ArrayList<>();
          for (GenerationRequest r : requests(prompts, range, 1000L + i)) {
            boolean[] first = {true};
            counted.add(new GenerationRequest(r.prompt(), r.params(), r.seed(), (token, logProb, finish) -> {
              long n = drawn.incrementAndGet();
              if (first[0]) {
                first[0] = false;
                // a steady state only where the last request took the row of a finished one (not all at once)
                if (started.incrementAndGet() == total && finished.get() > 0) {
                  steady[0] = n;
                  steady[1] = System.nanoTime();
                }
              }
              if (finish != null) {
                finished.incrementAndGet();
              }
              return true;
            }));
          }
          submissions.add(counted);
        }
        for (Generator.Submitted s : generator.submitAll(submissions, batch)) {
          for (var r : s.results().join()) {
            tokens += r.tokens().length;
          }
        }
        return new Timed(tokens, (System.nanoTime() - start) / 1e9, generator.rowSteps() - rowStepsBefore,
            steady[0], steady[1] == 0 ? 0 : (steady[1] - start) / 1e9);
      }
      for (int i = 0; i < calls; i++) {
        for (var r : generator.generate(requests(prompts, range, 1000L + i))) {
          tokens += r.tokens().length;
        }
      }
      return new Timed(tokens, (System.nanoTime() - start) / 1e9, generator.rowSteps() - rowStepsBefore, 0, 0);
    }

    /** Each request's max new tokens: {@code --new-tokens}, or drawn in {@code --lengths} from the call's seed. */
    private static List<GenerationRequest> requests(int[][] prompts, int[] range, long seed) {
      java.util.SplittableRandom rng = new java.util.SplittableRandom(seed);
      List<GenerationRequest> out = new ArrayList<>();
      for (int i = 0; i < prompts.length; i++) {
        int n = range[0] + rng.nextInt(range[1] - range[0] + 1);
        out.add(new GenerationRequest(prompts[i], SamplingParams.sample(1f, n), seed * 1_000_003L + i));
      }
      return out;
    }

    private int[] lengthRange() {
      if (lengths == null) {
        return new int[] {newTokens, newTokens};
      }
      String[] p = lengths.split("-");
      try {
        int a = Integer.parseInt(p[0].trim());
        int b = Integer.parseInt(p[p.length - 1].trim());
        if (p.length != 2 || a < 1 || b < a) {
          throw new NumberFormatException();
        }
        return new int[] {a, b};
      } catch (NumberFormatException e) {
        throw new picocli.CommandLine.ParameterException(spec.commandLine(),
            "--lengths: expected A-B with 1 <= A <= B, got '" + lengths + "'");
      }
    }
  }

  /**
   * Resident memory per parameter above the process before loading (on the CPU, RSS is where the tensors live):
   * what loading the model added ({@code bytes_per_param_model}), what the process holds after the timed work
   * ({@code bytes_per_param_end}: caches, gradients and optimizer state included) and at its peak
   * ({@code bytes_per_param_peak}: activations included, and the float32 copies a load makes before casting). The
   * Java heap is collected before each reading; with {@code JAVA_OPTS="-XX:+UseSerialGC -XX:MinHeapFreeRatio=5
   * -XX:MaxHeapFreeRatio=10"} it also shrinks, so the host copies of the weights drop out of the figures.
   */
  static void memoryPerParameter(ObjectNode o, LlamaConfig c, double rssBeforeModel, double rssModel) {
    double params = c.parameterCount();
    o.put("rss_mb_before_model", round(rssBeforeModel, 1));
    o.put("bytes_per_param_model", round((rssModel - rssBeforeModel) * 1024 * 1024 / params, 2));
    o.put("bytes_per_param_end", round((rssAfterGc() - rssBeforeModel) * 1024 * 1024 / params, 2));
    o.put("bytes_per_param_peak", round((peakRssMb() - rssBeforeModel) * 1024 * 1024 / params, 2));
  }

  /** RSS after collecting the Java heap (twice: the first may only queue finalization). */
  static double rssAfterGc() {
    System.gc();
    System.gc();
    return rssMb();
  }

  static int threadCount() {
    String t = System.getProperty("ai.djl.pytorch.num_threads");
    return t == null ? Runtime.getRuntime().availableProcessors() : Integer.parseInt(t);
  }

  @Command(name = "score", mixinStandardHelpOptions = true,
      description = "Per-token log-prob scoring throughput: one batched forward pass (and with --backward, "
          + "the backward pass of the summed log-probs, as a learner step does).")
  static final class Score implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    ModelOptions modelOptions;

    @Option(names = "--batch", defaultValue = "16", description = "sequences (default: ${DEFAULT-VALUE})")
    int batch;

    @Option(names = "--seq-len", defaultValue = "256", description = "tokens per sequence (default: ${DEFAULT-VALUE})")
    int seqLen;

    @Option(names = "--iterations", defaultValue = "5", description = "timed passes (default: ${DEFAULT-VALUE})")
    int iterations;

    @Option(names = "--backward", description = "also run backward (forward + backward per iteration)")
    boolean backward;

    @Override
    public Integer call() throws Exception {
      Device device = modelOptions.startEngine();
      try (NDManager manager = NDManager.newBaseManager(device);
          LlamaModel model = modelOptions.load(manager)) {
        LlamaConfig c = model.config();
        int[][] seqs = randomPrompts(batch, seqLen, c.vocabSize(), 2);
        if (backward) {
          model.setTrainable(true);
        }
        pass(model, manager, seqs); // warm-up
        double rssStart = rssMb();
        long start = System.nanoTime();
        for (int i = 0; i < iterations; i++) {
          pass(model, manager, seqs);
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        ObjectNode o = JSON.createObjectNode();
        o.put("bench", backward ? "score+backward" : "score");
        o.put("model", modelOptions.describe(c));
        o.put("device", device.toString());
        o.put("threads", threadCount());
        o.put("batch", batch);
        o.put("seq_len", seqLen);
        o.put("iterations", iterations);
        o.put("tokens_per_s", round((double) batch * seqLen * iterations / seconds, 1));
        o.put("ms_per_pass", round(seconds * 1000 / iterations, 2));
        o.put("rss_mb_start", round(rssStart, 1));
        o.put("rss_mb_end", round(rssMb(), 1));
        spec.commandLine().getOut().println(JSON.writeValueAsString(o));
      }
      return 0;
    }

    private void pass(LlamaModel model, NDManager manager, int[][] seqs) {
      try (NDManager step = manager.newSubManager()) {
        if (backward) {
          try (GradientCollector gc = Engine.getEngine("PyTorch").newGradientCollector()) {
            NDArray logp = model.tokenLogProbs(step, seqs, 1f);
            gc.backward(logp.sum().neg());
          }
        } else {
          ai.djl.pytorch.jni.JniUtils.setGradMode(false);
          model.tokenLogProbs(step, seqs, 1f).toFloatArray();
        }
      }
    }
  }

  @Command(name = "learn", mixinStandardHelpOptions = true,
      description = "Learner throughput: GRPO steps (forward + backward + AdamW) on random trajectories.")
  static final class Learn implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    ModelOptions modelOptions;

    @Option(names = "--batch", defaultValue = "16", description = "sequences per step (default: ${DEFAULT-VALUE})")
    int batch;

    @Option(names = "--seq-len", defaultValue = "256", description = "prompt + completion tokens (default: ${DEFAULT-VALUE})")
    int seqLen;

    @Option(names = "--prompt-len", defaultValue = "64", description = "prompt tokens (default: ${DEFAULT-VALUE})")
    int promptLen;

    @Option(names = "--micro-batch-tokens", defaultValue = "4096",
        description = "tokens per forward/backward pass (default: ${DEFAULT-VALUE})")
    int microBatchTokens;

    @Option(names = "--group-size", defaultValue = "0",
        description = "sequences per prompt (a GRPO group); 0: one prompt for the whole batch (default: "
            + "${DEFAULT-VALUE})")
    int groupSize;

    @Option(names = "--share-prompts", defaultValue = "true", arity = "1",
        description = "run each distinct prompt once per micro-batch, as nucleon.learner.share-prompts does "
            + "(default: ${DEFAULT-VALUE}); false scores every sequence as its own row")
    boolean sharePrompts;

    @Option(names = "--steps", defaultValue = "3", description = "timed steps (default: ${DEFAULT-VALUE})")
    int steps;

    @Option(names = "--profile", paramLabel = "FILE",
        description = "write libtorch's profile of the timed steps (Chrome trace JSON) to FILE")
    Path profile;

    @Option(names = "--reference", paramLabel = "PYTHON",
        description = "after the timed steps, run the same GRPO step in PyTorch eager with this Python interpreter "
            + "(needs torch, e.g. Debian's python3-torch: /usr/bin/python3) and report both and their ratio")
    String reference;

    @Override
    public Integer call() throws Exception {
      if (promptLen < 1 || promptLen >= seqLen) {
        throw new IllegalArgumentException("--prompt-len must be in [1, --seq-len), got " + promptLen);
      }
      if (groupSize < 0 || groupSize > 0 && batch % groupSize != 0) {
        throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--group-size: expected 0 or a divisor "
            + "of --batch " + batch + ", got " + groupSize);
      }
      if (reference != null && sharePrompts) {
        throw new picocli.CommandLine.ParameterException(spec.commandLine(), "--reference compares the plain case "
            + "only: the PyTorch step scores every sequence as its own row, so add --share-prompts false");
      }
      Device device = modelOptions.startEngine();
      double rssBeforeModel = rssAfterGc();
      try (NDManager manager = NDManager.newBaseManager(device);
          LlamaModel model = modelOptions.loadForTraining(manager);
          dev.nucleon.learner.Learner learner = new dev.nucleon.learner.Learner(model, null,
              dev.nucleon.learner.LossSettings.defaults(), dev.nucleon.learner.OptimizerSettings.adamw(1e-5), 1f, 0)) {
        LlamaConfig c = model.config();
        if (reference != null) {
          refuseUnlikeReference(c, device, modelOptions.describe(c));
        }
        learner.setSharedPrompts(sharePrompts);
        double rssModel = rssAfterGc();
        learner.train(randomBatch(c, 0)); // warm-up
        double rssStart = rssMb();
        if (profile != null) {
          ai.djl.pytorch.jni.JniUtils.startProfile(false, false, false);
        }
        long start = System.nanoTime();
        for (int i = 0; i < steps; i++) {
          learner.train(randomBatch(c, i + 1));
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        if (profile != null) {
          ai.djl.pytorch.jni.JniUtils.stopProfile(profile.toAbsolutePath().toString());
        }
        ObjectNode o = JSON.createObjectNode();
        o.put("bench", "learn");
        o.put("model", modelOptions.describe(c));
        o.put("device", device.toString());
        o.put("threads", threadCount());
        o.put("batch", batch);
        o.put("seq_len", seqLen);
        o.put("micro_batch_tokens", microBatchTokens);
        o.put("group_size", groupSize == 0 ? batch : groupSize);
        o.put("share_prompts", sharePrompts);
        o.put("steps", steps);
        o.put("tokens_per_s", round((double) batch * seqLen * steps / seconds, 1));
        o.put("ms_per_step", round(seconds * 1000 / steps, 1));
        o.put("rss_mb_start", round(rssStart, 1));
        o.put("rss_mb_end", round(rssMb(), 1));
        o.put("rss_mb_peak", round(peakRssMb(), 1));
        memoryPerParameter(o, c, rssBeforeModel, rssModel);
        // parameters, their gradients and AdamW's moments, as allocated (activations come and go within a step)
        o.put("tensor_bytes_per_param", round((double) (model.parameterBytes() + model.gradientBytes()
            + learner.optimizer().stateBytes()) / c.parameterCount(), 2));
        if (reference != null) {
          ObjectNode ref = runReference(c, threadCount());
          o.set("reference", ref);
          o.put("speedup_vs_reference", round(o.get("tokens_per_s").asDouble() / ref.get("tokens_per_s").asDouble(),
              3));
        }
        spec.commandLine().getOut().println(JSON.writeValueAsString(o));
      }
      return 0;
    }

    /** Runs resources/bench/torch_learn.py with the same shape, batch and threads; returns its JSON line. */
    private ObjectNode runReference(LlamaConfig c, int threads) throws IOException, InterruptedException {
      return runTorchReference(reference, "torch_learn.py", modelShape(c), "--batch", String.valueOf(batch),
          "--seq-len", String.valueOf(seqLen), "--prompt-len", String.valueOf(promptLen),
          "--steps", String.valueOf(steps), "--threads", String.valueOf(Math.max(0, threads)));
    }

    private dev.nucleon.replay.TrainingBatch randomBatch(LlamaConfig c, long seed) {
      int group = groupSize == 0 ? batch : groupSize;
      var replay = new dev.nucleon.replay.ReplayBuffer(new dev.nucleon.replay.ReplaySettings(group, "grpo", 1e-4,
          batch / group, 0, false, false, 0, microBatchTokens, dev.nucleon.replay.MicroBatchCost.PADDED,
          dev.nucleon.replay.FailedRewardPolicy.DROP_SAMPLE));
      SplittableRandom rng = new SplittableRandom(seed);
      int[][] prompts = randomPrompts(batch / group, promptLen, c.vocabSize(), seed);
      int n = seqLen - promptLen;
      for (int i = 0; i < batch; i++) {
        int[] prompt = prompts[i / group];
        int[] completion = randomPrompts(1, n, c.vocabSize(), seed * 7919 + i)[0];
        float[] logp = new float[n];
        java.util.Arrays.fill(logp, (float) -Math.log(c.vocabSize()));
        var t = new dev.nucleon.core.rollout.Trajectory(i / group, i % group, prompt, completion, logp, new int[n],
            dev.nucleon.core.rollout.FinishReason.LENGTH, "");
        replay.add(new dev.nucleon.core.rollout.ScoredTrajectory(t,
            dev.nucleon.core.reward.RewardResult.ok(rng.nextDouble())));
      }
      return replay.pollBatch().orElseThrow();
    }
  }

  @Command(name = "logprob-gap", mixinStandardHelpOptions = true,
      description = "How far a rollout's behaviour log-probs lie from a float32 scorer's on the same weights: "
          + "samples completions with the model in --dtype, scores the same tokens with it in float32, and reports "
          + "TRL's sampling_logp_difference (mean, max) and NeMo-RL's token_mult_prob_error.")
  static final class LogprobGap implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    ModelOptions modelOptions;

    @Option(names = "--batch", defaultValue = "16", description = "sequences (default: ${DEFAULT-VALUE})")
    int batch;

    @Option(names = "--new-tokens", defaultValue = "64", description = "tokens per sequence (default: ${DEFAULT-VALUE})")
    int newTokens;

    @Option(names = "--prompt-len", defaultValue = "8", description = "prompt tokens (default: ${DEFAULT-VALUE})")
    int promptLen;

    @Option(names = "--temperature", defaultValue = "1.0", description = "sampling temperature (default: ${DEFAULT-VALUE})")
    float temperature;

    @Override
    public Integer call() throws Exception {
      Device device = modelOptions.startEngine();
      try (NDManager manager = NDManager.newBaseManager(device);
          LlamaModel sampler = modelOptions.load(manager);
          LlamaModel scorer = modelOptions.load(manager, dev.nucleon.model.Precision.FP32);
          Generator generator = new Generator(sampler, 0)) {
        LlamaConfig c = sampler.config();
        int[][] prompts = randomPrompts(batch, promptLen, c.vocabSize(), 3);
        List<GenerationRequest> requests = new ArrayList<>();
        for (int i = 0; i < batch; i++) {
          requests.add(new GenerationRequest(prompts[i], SamplingParams.sample(temperature, newTokens), 77L + i));
        }
        var results = generator.generate(requests);
        int[][] sequences = new int[batch][];
        for (int i = 0; i < batch; i++) {
          int[] done = results.get(i).tokens();
          sequences[i] = java.util.Arrays.copyOf(prompts[i], promptLen + done.length);
          System.arraycopy(done, 0, sequences[i], promptLen, done.length);
        }
        var gap = new dev.nucleon.learner.LogProbGap.Accumulator();
        ai.djl.pytorch.jni.JniUtils.setGradMode(false);
        try (NDManager m = manager.newSubManager()) {
          float[] scored = scorer.tokenLogProbs(m, sequences, temperature).toFloatArray();
          int width = java.util.Arrays.stream(sequences).mapToInt(x -> x.length).max().orElse(0) - 1;
          for (int i = 0; i < batch; i++) {
            float[] behaviour = results.get(i).samplingLogProbs();
            float[] learner = new float[behaviour.length];
            for (int j = 0; j < behaviour.length; j++) {
              learner[j] = scored[i * width + promptLen - 1 + j];
            }
            gap.add(learner, behaviour, new int[behaviour.length], 0);
          }
        }
        var r = gap.result();
        ObjectNode o = JSON.createObjectNode();
        o.put("bench", "logprob-gap");
        o.put("model", modelOptions.describe(c));
        o.put("sampler_dtype", dev.nucleon.model.Precision.name(modelOptions.type()));
        o.put("scorer_dtype", "f32");
        o.put("temperature", temperature);
        o.put("tokens", r.tokens());
        o.put("logprob_gap_mean", r.mean());
        o.put("logprob_gap_max", r.max());
        o.put("token_mult_prob_error", r.multProbError());
        spec.commandLine().getOut().println(JSON.writeValueAsString(o));
      }
      return 0;
    }
  }
}
