package dev.nucleon.rollout.data;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigFactory;
import dev.nucleon.rollout.env.ToolEnvironment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A tool-using environment's tools reach the prompts through the model's chat template. */
class DatasetToolsTest {

  @TempDir Path dir;

  @Test
  void theToolsEnvironmentsDeclarationsAreRenderedIntoEveryPrompt() throws Exception {
    Path config = TestData.copy("hf-real/extra/gpt-oss-20b/tokenizer_config.json", dir.resolve("gpt-oss"));
    TestData.copy("hf-real/extra/gpt-oss-20b/chat_template.jinja", dir.resolve("gpt-oss"));
    Path rows = dir.resolve("rows.jsonl");
    Files.writeString(rows, "{\"prompt\": \"What is 12*34?\", \"answer\": \"408\"}\n"
        + "{\"prompt\": \"What is 2^10?\", \"answer\": \"1024\"}\n");
    DatasetSettings settings = DatasetSettings.parse("nucleon.dataset { format = generic, path = \"" + rows
        + "\", chat-template = true, tokenizer-config = \"" + config + "\", template-date = \"2025-06-28\", "
        + "eval.size = 0 }");
    List<Map<String, Object>> tools;
    try (ToolEnvironment env = new ToolEnvironment.Factory().create(ConfigFactory.empty())) {
      tools = env.declarations();
    }
    Dataset data = Dataset.load(settings, tools);
    for (DatasetRow row : data.train()) {
      // gpt-oss writes function declarations as a TypeScript namespace in the developer message
      assertTrue(row.prompt().contains("namespace functions {") && row.prompt().contains("type calculator = (_: {")
          && row.prompt().contains("// Evaluates an arithmetic expression exactly"), row.prompt());
      assertTrue(row.prompt().endsWith("<|start|>assistant"), row.prompt());
    }
    assertTrue(!Dataset.load(settings).train().get(0).prompt().contains("calculator"), "no tools, no declarations");
    DatasetSettings plain = DatasetSettings.parse("nucleon.dataset { format = generic, path = \"" + rows
        + "\", eval.size = 0 }");
    DatasetException e = assertThrows(DatasetException.class, () -> Dataset.load(plain, tools));
    assertTrue(e.getMessage().contains("chat-template = true"), e.getMessage());
  }
}
