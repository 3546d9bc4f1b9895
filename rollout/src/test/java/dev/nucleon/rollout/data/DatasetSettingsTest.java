package dev.nucleon.rollout.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import dev.nucleon.rollout.data.DatasetSettings.Format;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class DatasetSettingsTest {

  @Test
  void referenceDefaultsAndPresets() {
    DatasetSettings s = DatasetSettings.parse("nucleon.dataset { format = gsm8k, path = \"x.jsonl\" }");
    assertEquals(Format.GSM8K, s.format());
    assertEquals("question", s.promptField());
    assertEquals("answer", s.answerField());
    assertEquals("Question: {question}\nAnswer:", s.template());
    assertEquals(List.of(), s.metadataFields());
    assertFalse(s.chatTemplate());
    assertTrue(s.shuffle());
    assertEquals(0L, s.shuffleSeed());
    assertEquals(1, s.epochs());
    assertEquals(new DatasetSettings.Eval("", 500, 1234L), s.eval());
    assertEquals(new DatasetSettings.Arithmetic(99, List.of("+"), "$"), s.arithmetic());

    DatasetSettings a = DatasetSettings.parse("nucleon.dataset.format = arithmetic");
    assertEquals(Format.ARITHMETIC, a.format());
    assertEquals("", a.path());

    DatasetSettings m = DatasetSettings.parse("nucleon.dataset { format = math500, path = m.json, "
        + "prompt-field = question, metadata-fields = [unique_id], template = \"{question}\", epochs = 3 }");
    assertEquals("question", m.promptField());
    assertEquals("answer", m.answerField());
    assertEquals(List.of("unique_id"), m.metadataFields());
    assertEquals(3, m.epochs());
  }

  private static String errorOf(String hocon) {
    return assertThrows(ConfigException.class, () -> DatasetSettings.parse(hocon)).getMessage();
  }

  @Test
  void badKeysAndValuesNameTheKey() {
    String unknown = errorOf("nucleon.dataset { format = arithmetic, shufle-seed = 3 }");
    assertTrue(unknown.contains("nucleon.dataset.shufle-seed") && unknown.contains("unknown key"), unknown);
    assertTrue(unknown.contains("shuffle-seed"), "lists the known keys: " + unknown);
    String nested = errorOf("nucleon.dataset { format = arithmetic, eval.sise = 3 }");
    assertTrue(nested.contains("nucleon.dataset.eval.sise"), nested);

    String format = errorOf("nucleon.dataset.format = gsm9k");
    assertTrue(format.contains("nucleon.dataset.format") && format.contains("gsm9k"), format);
    String path = errorOf("nucleon.dataset.format = gsm8k");
    assertTrue(path.contains("nucleon.dataset.path"), path);
    String epochs = errorOf("nucleon.dataset { format = arithmetic, epochs = many }");
    assertTrue(epochs.contains("nucleon.dataset.epochs") && epochs.contains("integer"), epochs);
    String negative = errorOf("nucleon.dataset { format = arithmetic, epochs = -1 }");
    assertTrue(negative.contains("nucleon.dataset.epochs"), negative);
    String chat = errorOf("nucleon.dataset { format = arithmetic, chat-template = true }");
    assertTrue(chat.contains("nucleon.dataset.tokenizer-config"), chat);
    String chatBool = errorOf("nucleon.dataset { format = arithmetic, chat-template = maybe }");
    assertTrue(chatBool.contains("nucleon.dataset.chat-template"), chatBool);
    String op = errorOf("nucleon.dataset { format = arithmetic, arithmetic.ops = [\"/\"] }");
    assertTrue(op.contains("nucleon.dataset.arithmetic.ops"), op);
    String evalSize = errorOf("nucleon.dataset { format = arithmetic, arithmetic.max-operand = 9, eval.size = 100 }");
    assertTrue(evalSize.contains("nucleon.dataset.eval.size") && evalSize.contains("100"), evalSize);
    String template = errorOf("nucleon.dataset { format = arithmetic, template = \"Q: {question\" }");
    assertTrue(template.contains("nucleon.dataset.template"), template);
    String date = errorOf("nucleon.dataset { format = arithmetic, template-date = tomorrow }");
    assertTrue(date.contains("nucleon.dataset.template-date"), date);
    String fields = errorOf("nucleon.dataset { format = arithmetic, metadata-fields = 3 }");
    assertTrue(fields.contains("nucleon.dataset.metadata-fields"), fields);
  }

  @Test
  void errorsNameTheFileAndLine(@TempDir Path dir) throws IOException {
    Path conf = dir.resolve("my-run.conf");
    Files.writeString(conf, "nucleon.dataset {\n  format = arithmetic\n  eval.size = lots\n}\n");
    ConfigException e = assertThrows(ConfigException.class,
        () -> DatasetSettings.from(ConfigFactory.parseFile(conf.toFile())));
    assertTrue(e.getMessage().contains("my-run.conf") && e.getMessage().contains(": 3")
        && e.getMessage().contains("nucleon.dataset.eval.size"), e.getMessage());

    Files.writeString(conf, "nucleon.dataset {\n  format = arithmetic\n  temperature = 1\n}\n");
    ConfigException unknown = assertThrows(ConfigException.class,
        () -> DatasetSettings.from(ConfigFactory.parseFile(conf.toFile())));
    assertTrue(unknown.getMessage().contains("my-run.conf") && unknown.getMessage().contains(": 3")
        && unknown.getMessage().contains("nucleon.dataset.temperature"), unknown.getMessage());
  }
}
