package dev.nucleon.actors.cli;

import ai.djl.Device;
import ai.djl.ndarray.NDManager;
import dev.nucleon.model.LlamaModel;
import dev.nucleon.model.ModelFiles;
import dev.nucleon.model.generate.Generator;
import dev.nucleon.model.tokenizer.TextTokenizer;
import dev.nucleon.serve.OpenAiServer;
import dev.nucleon.serve.ServedModel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code nucleon serve}: an OpenAI-compatible HTTP server over a checkpoint, until the process is stopped. */
@Command(name = "serve", mixinStandardHelpOptions = true,
    description = {"Serves a checkpoint over an OpenAI-compatible HTTP API (GET /v1/models, POST /v1/completions, "
        + "POST /v1/chat/completions; streaming; the chosen tokens' log-probs) until stopped (Ctrl-C, SIGTERM). "
        + "Concurrent requests are batched. See serve/README.md."})
final class ServeCommand implements Callable<Integer> {

  @Spec
  CommandSpec spec;

  @Mixin
  ModelOptions modelOptions;

  @Option(names = "--tokenizer", paramLabel = "PATH",
      description = "tokenizer.json (or its folder) or a llama2.c tokenizer .bin; default: the model folder's")
  Path tokenizer;

  @Option(names = "--host", defaultValue = "127.0.0.1",
      description = "address to listen on; 0.0.0.0 for every interface (default: ${DEFAULT-VALUE})")
  String host;

  @Option(names = "--port", defaultValue = "8000", description = "0 = any free port (default: ${DEFAULT-VALUE})")
  int port;

  @Option(names = "--served-model-name", paramLabel = "NAME",
      description = "the model id clients use (default: the model folder's or file's name)")
  String name;

  @Option(names = "--max-batch", defaultValue = "32",
      description = "sequences decoded at once (default: ${DEFAULT-VALUE})")
  int maxBatch;

  @Option(names = "--http-threads", defaultValue = "64",
      description = "requests answered at once; a streaming request holds one (default: ${DEFAULT-VALUE})")
  int httpThreads;

  @Option(names = "--default-max-tokens", defaultValue = "512",
      description = "new tokens when a request sets no limit (default: ${DEFAULT-VALUE})")
  int defaultMaxTokens;

  @Override
  public Integer call() throws Exception {
    if (modelOptions.model.startsWith("random:")) {
      throw new IllegalArgumentException("serve needs a real model with a tokenizer, not " + modelOptions.model);
    }
    if (maxBatch < 1 || httpThreads < 1 || defaultMaxTokens < 1) {
      throw new IllegalArgumentException("--max-batch, --http-threads and --default-max-tokens must be >= 1");
    }
    Device device = modelOptions.startEngine();
    Path modelPath = Path.of(modelOptions.model);
    ModelFiles.Checkpoint ckpt = modelOptions.checkpoint();
    String served = name != null ? name : modelPath.toAbsolutePath().normalize().getFileName().toString();
    CountDownLatch stopped = new CountDownLatch(1);
    CountDownLatch closed = new CountDownLatch(1);
    // on SIGTERM the JVM halts once the hooks return: the hook waits until the server and the model are closed
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      stopped.countDown();
      try {
        closed.await(30, java.util.concurrent.TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }, "nucleon-serve-stop"));
    try (TextTokenizer tok = ModelFiles.tokenizer(modelPath, tokenizer, ckpt.config());
        NDManager manager = NDManager.newBaseManager(device);
        LlamaModel model = modelOptions.load(manager);
        Generator generator = new Generator(model, 0)) {
      ServedModel served0 = ServedModel.of(served, Files.isDirectory(modelPath) ? modelPath : null, tok,
          ModelFiles.stopIds(tok, ckpt.config()), model.config().vocabSize(), model.maxPositions(),
          defaultMaxTokens);
      try (OpenAiServer server = new OpenAiServer(served0, generator, host, port, maxBatch, httpThreads)) {
        spec.commandLine().getOut().println("serving " + served + " at http://" + host + ":" + server.port()
            + "/v1" + (served0.chatTemplate() == null ? " (no chat template: /v1/completions only)" : ""));
        spec.commandLine().getOut().flush();
        stopped.await();
      }
    } finally {
      closed.countDown();
    }
    return 0;
  }
}
