package dev.nucleon.reward.composite;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class CompositeRewardTest {

  private static RewardFunction composite(String hocon) {
    return new CompositeReward.Factory().create(ConfigFactory.parseString(hocon));
  }

  @Test
  void weightedSumKeepsComponentNames() {
    RewardFunction r = composite("""
        components = [
          { name = gsm8k, weight = 1.0, config { mode = strict } }
          { name = format, label = fmt, weight = 0.5 }
        ]""");
    RewardResult both = r.scoreOne(RewardRequest.of("<think>x</think><answer>#### 12</answer>", "12"));
    assertEquals(1.5, both.reward(), 1e-12);
    assertEquals(Map.of("gsm8k", 1.0, "fmt", 1.0, "gsm8k.correct", 1.0, "fmt.format", 1.0), both.components());
    assertEquals(List.of("gsm8k", "fmt", "gsm8k.correct", "fmt.format"), List.copyOf(both.components().keySet()));
    // strict mode came from the component's config: "The answer is 12" has no "#### 12"
    RewardResult formatOnly = r.scoreOne(RewardRequest.of("<think>x</think><answer>The answer is 12</answer>",
        "12"));
    assertEquals(0.5, formatOnly.reward(), 1e-12);
    List<RewardResult> batch = r.score(List.of(RewardRequest.of("#### 12", "12"), RewardRequest.of("13", "12")));
    assertEquals(List.of(1.0, 0.0), batch.stream().map(RewardResult::reward).toList());
  }

  @Test
  void aFailingPartFailsTheRequestNamingThePart() {
    RewardFunction r = composite("""
        components = [
          { name = gsm8k }
          { name = length, weight = -1, config { unit = tokens } }
        ]""");
    RewardResult out = r.scoreOne(new RewardRequest("", "12", new int[] {1, 2}, "12", null));
    assertEquals(1.0, out.reward());
    assertThrows(IllegalArgumentException.class, () -> r.scoreOne(RewardRequest.of("12", "12")));
  }

  @Test
  void failedPartResultBecomesFailedComposite() {
    CompositeReward r = new CompositeReward(List.of(
        new CompositeReward.Part("a", 1, request -> RewardResult.ok(1)),
        new CompositeReward.Part("b", 1, request -> RewardResult.failed("server down"))));
    RewardResult out = r.scoreOne(RewardRequest.of("x", ""));
    assertFalse(out.isOk());
    assertEquals("component 'b' failed: server down", out.reason());
  }

  @Test
  void badComponentConfigNamesIt() {
    ConfigException e = assertThrows(ConfigException.class, () -> composite("components = []"));
    assertTrue(e.getMessage().contains("components"), e.getMessage());
    e = assertThrows(ConfigException.class, () -> composite("components = [ { name = gsm8k, config { mode = x } } ]"));
    assertTrue(e.getMessage().contains("reward 'gsm8k'") && e.getMessage().contains("mode"), e.getMessage());
    IllegalArgumentException u = assertThrows(IllegalArgumentException.class,
        () -> composite("components = [ { name = nope } ]"));
    assertTrue(u.getMessage().contains("available rewards:"), u.getMessage());
    e = assertThrows(ConfigException.class, () -> composite("components = [ { name = gsm8k }, { name = gsm8k } ]"));
    assertTrue(e.getMessage().contains("used twice"), e.getMessage());
  }
}
