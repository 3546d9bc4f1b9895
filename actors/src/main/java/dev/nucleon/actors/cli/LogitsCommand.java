package dev.nucleon.actors.cli;

import ai.djl.Device;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import ai.djl.pytorch.jni.JniUtils;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nucleon.model.LlamaModel;
import java.io.PrintWriter;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code nucleon logits --model PATH --ids 1,2,3}: the model's logits at every position of a token sequence, one
 * JSON line per position. The tool to reach for when a model misbehaves, and how its conformance to another
 * implementation can be checked from outside (compare the lines with transformers' {@code model(ids).logits}).
 */
@Command(name = "logits", mixinStandardHelpOptions = true,
    description = {"Prints the logits of every position of a token-id sequence, one JSON line per position: "
        + "{\"pos\", \"id\", \"logits\": [...]} (float32, no BOS added)."})
final class LogitsCommand implements Callable<Integer> {

  private static final ObjectMapper JSON = new ObjectMapper();

  @Spec
  CommandSpec spec;

  @Mixin
  ModelOptions modelOptions;

  @Option(names = "--ids", required = true, split = ",", paramLabel = "ID[,ID...]",
      description = "token ids, comma-separated (e.g. 1,2,3)")
  List<Long> ids;

  @Override
  public Integer call() throws Exception {
    Device device = modelOptions.startEngine();
    JniUtils.setGradMode(false);
    try (NDManager manager = NDManager.newBaseManager(device); LlamaModel model = modelOptions.load(manager)) {
      int vocab = model.config().vocabSize();
      long[] tokens = new long[ids.size()];
      for (int i = 0; i < tokens.length; i++) {
        long id = ids.get(i);
        if (id < 0 || id >= vocab) {
          throw new IllegalArgumentException("--ids: token " + id + " at position " + i + " is outside the model's "
              + "vocabulary [0, " + vocab + ")");
        }
        tokens[i] = id;
      }
      float[] logits = model.logits(manager.create(tokens, new Shape(1, tokens.length))).toFloatArray();
      PrintWriter out = spec.commandLine().getOut();
      for (int p = 0; p < tokens.length; p++) {
        ObjectNode line = JSON.createObjectNode();
        line.put("pos", p);
        line.put("id", tokens[p]);
        ArrayNode row = line.putArray("logits");
        for (int k = 0; k < vocab; k++) {
          row.add(logits[p * vocab + k]);
        }
        out.println(JSON.writeValueAsString(line));
      }
      out.flush();
    }
    return 0;
  }
}
