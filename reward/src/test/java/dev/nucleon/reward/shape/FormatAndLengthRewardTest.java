package dev.nucleon.reward.shape;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.core.reward.RewardRequest;
import java.util.Map;
import org.junit.jupiter.api.Test;

class FormatAndLengthRewardTest {

  private static double score(RewardFunction r, String completion) {
    return r.scoreOne(RewardRequest.of(completion, "")).reward();
  }

  @Test
  void templateBinaryAndPartial() {
    RewardFunction binary = new FormatReward.Factory().create(ConfigFactory.empty());
    assertEquals(1.0, score(binary, "<think>a\nb</think>\n<answer>42</answer>\n"));
    assertEquals(0.0, score(binary, "<think>a</think> x <answer>42</answer>"));
    assertEquals(0.0, score(binary, "<answer>42</answer><think>a</think>"));
    assertEquals(0.0, score(binary, "<think>a</think><answer>42"));
    RewardFunction partial = new FormatReward.Factory().create(ConfigFactory.parseString("scoring = partial"));
    assertEquals(1.0, score(partial, "<think>a</think><answer>42</answer>"));
    assertEquals(0.75, score(partial, "<think>a</think><answer>42"));
    assertEquals(0.5, score(partial, "<answer>42</answer>"));
    assertEquals(0.0, score(partial, "42"));
    assertEquals(Map.of("format", 0.75), partial.scoreOne(RewardRequest.of("<think>a</think><answer>42", ""))
        .components());
  }

  @Test
  void regexMatchModes() {
    RewardFunction prefix = new FormatReward.Factory().create(ConfigFactory.parseString(
        "template = \"\", regex = \"^\\\\d+\", match = prefix"));
    assertEquals(1.0, score(prefix, "42 apples"));
    assertEquals(0.0, score(prefix, "apples 42"));
    RewardFunction find = new FormatReward.Factory().create(ConfigFactory.parseString(
        "template = \"\", regex = \"\\\\d+\", match = find"));
    assertEquals(1.0, score(find, "apples 42"));
    RewardFunction full = new FormatReward.Factory().create(ConfigFactory.parseString(
        "template = \"\", regex = \"[a-z]+\", flags = [case-insensitive]"));
    assertEquals(1.0, score(full, "Apples"));
    assertEquals(0.0, score(full, "Apples 42"));
  }

  @Test
  void badFormatConfigNamesTheKey() {
    ConfigException e = assertThrows(ConfigException.class, () -> new FormatReward.Factory()
        .create(ConfigFactory.parseString("template = \"\", regex = \"(\"")));
    assertTrue(e.getMessage().contains("regex") && e.getMessage().contains("not a valid regular expression"),
        e.getMessage());
    e = assertThrows(ConfigException.class, () -> new FormatReward.Factory()
        .create(ConfigFactory.parseString("scoring = most")));
    assertTrue(e.getMessage().contains("scoring") && e.getMessage().contains("binary, partial"), e.getMessage());
    e = assertThrows(ConfigException.class, () -> new FormatReward.Factory()
        .create(ConfigFactory.parseString("template = \"<a>x</a>\"")));
    assertTrue(e.getMessage().contains("template"), e.getMessage());
  }

  private static double len(RewardFunction r, int tokens) {
    return r.scoreOne(new RewardRequest("", "x", new int[tokens], "", null)).reward();
  }

  @Test
  void dapoOverlongPenalty() {
    RewardFunction r = new LengthReward.Factory().create(ConfigFactory.parseString(
        "max-length = 20, soft-margin = 4"));
    assertEquals(0.0, len(r, 1));
    assertEquals(0.0, len(r, 16));
    assertEquals(-0.25, len(r, 17));
    assertEquals(-0.5, len(r, 18));
    assertEquals(-1.0, len(r, 20));
    assertEquals(-1.0, len(r, 21));
  }

  @Test
  void budgetAndUnits() {
    RewardFunction r = new LengthReward.Factory().create(ConfigFactory.parseString(
        "mode = budget, max-length = 10, soft-margin = 10, unit = characters"));
    assertEquals(1.0, score(r, "0123456789"));
    assertEquals(0.5, score(r, "0123456789" + "01234"));
    assertEquals(0.0, score(r, "x".repeat(40)));
    RewardFunction words = new LengthReward.Factory().create(ConfigFactory.parseString(
        "mode = budget, max-length = 2, soft-margin = 0, unit = words"));
    assertEquals(1.0, score(words, " two  words "));
    assertEquals(0.0, score(words, "three words here"));
  }

  @Test
  void tokenLengthWithoutTokensFailsInsteadOfScoringEmpty() {
    RewardFunction r = new LengthReward.Factory().create(ConfigFactory.empty());
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> score(r, "some text"));
    assertTrue(e.getMessage().contains("no completion tokens"), e.getMessage());
    ConfigException c = assertThrows(ConfigException.class, () -> new LengthReward.Factory().create(
        ConfigFactory.parseString("max-length = 10, soft-margin = 11")));
    assertTrue(c.getMessage().contains("soft-margin"), c.getMessage());
  }
}
