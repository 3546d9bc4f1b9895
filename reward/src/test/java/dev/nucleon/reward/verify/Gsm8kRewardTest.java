package dev.nucleon.reward.verify;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.reward.TestData;
import dev.nucleon.reward.verify.Gsm8kReward.Mode;
import java.math.BigDecimal;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

class Gsm8kRewardTest {

  private static final Pattern FINAL = Pattern.compile("#### (\\-?[0-9.,]+)\\s*$");

  private static double score(Gsm8kReward reward, String completion, String gold) {
    return reward.scoreOne(RewardRequest.of(completion, gold)).reward();
  }

  @Test
  void everyGoldSolutionScoresOneAndAChangedFinalNumberScoresZero() {
    List<JsonNode> rows = TestData.jsonl("gsm8k/test.jsonl");
    assertEquals(1319, rows.size());
    for (Mode mode : Mode.values()) {
      Gsm8kReward reward = new Gsm8kReward(mode);
      List<String> misses = new ArrayList<>();
      for (int i = 0; i < rows.size(); i++) {
        String solution = rows.get(i).get("answer").asText();
        Matcher m = FINAL.matcher(solution);
        assertTrue(m.find(), "line " + (i + 1) + " has no final '#### N'");
        BigDecimal gold = new BigDecimal(m.group(1).replace(",", ""));
        String changed = solution.substring(0, m.start(1)) + gold.add(BigDecimal.valueOf(7)).toPlainString();
        if (score(reward, solution, solution) != 1.0) {
          misses.add("line " + (i + 1) + ": gold solution not accepted");
        }
        if (score(reward, changed, solution) != 0.0) {
          misses.add("line " + (i + 1) + ": changed final number accepted");
        }
      }
      assertTrue(misses.isEmpty(), mode + ": " + misses);
    }
  }

  @Test
  void usesTheHarnessRegexes() {
    String yaml = TestData.text("verify/lm-eval-harness_gsm8k.yaml.txt");
    assertTrue(yaml.contains("regex_pattern: \"" + Gsm8kReward.STRICT.pattern().replace("\\", "\\\\") + "\""), yaml);
    assertTrue(yaml.contains("regex_pattern: \"" + Gsm8kReward.FLEXIBLE.pattern() + "\""), yaml);
  }

  @Test
  void cleansDollarsCommasAndTrailingPeriods() {
    Gsm8kReward flexible = new Gsm8kReward(Mode.FLEXIBLE);
    assertEquals(1.0, score(flexible, "So she pays $1,200.", "1200"));
    assertEquals(1.0, score(flexible, "The answer is 18.00", "#### 18"));
    assertEquals(1.0, score(flexible, "It is -5 degrees.", "-5"));
    assertEquals(0.0, score(flexible, "I have no idea", "5"));
    assertEquals(0.0, score(flexible, "first 5 then 6", "5"));
    Gsm8kReward strict = new Gsm8kReward(Mode.STRICT);
    assertEquals(1.0, score(strict, "#### 5 and later 6", "5"));
    assertEquals(0.0, score(strict, "The answer is 5", "5"));
    assertEquals(1.0, score(strict, "... so\n#### 1,234", "1234"));
  }

  @Test
  void aGroundTruthWithoutANumberIsAnErrorNotAZero() {
    Gsm8kReward reward = new Gsm8kReward(Mode.FLEXIBLE);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> reward.scoreOne(RewardRequest.of("5", "five")));
    assertTrue(e.getMessage().contains("'five'"), e.getMessage());
  }
}
