package dev.nucleon.rollout.env;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import dev.nucleon.core.env.EnvMessage;
import dev.nucleon.core.env.Environment;
import dev.nucleon.core.env.EnvironmentFactory;
import dev.nucleon.core.env.EnvironmentRegistry;
import dev.nucleon.core.env.Episode;
import dev.nucleon.core.env.EpisodeStart;
import dev.nucleon.core.env.StepResult;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The environment plug-in point, the guard every environment runs behind, and the built-in retry task. */
class EnvironmentTest {

  private static EpisodeStart row(String answer) {
    return new EpisodeStart(7, 0, "What is 12+30?", answer, Map.of());
  }

  @Test
  void environmentsAreFoundByNameAndAnUnknownNameListsThem() {
    EnvironmentRegistry registry = EnvironmentRegistry.load();
    assertTrue(registry.names().contains("retry"), registry.names().toString());
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> registry.create("gym", ConfigFactory.empty()));
    assertTrue(e.getMessage().contains("unknown environment 'gym'") && e.getMessage().contains("retry"),
        e.getMessage());
    EnvironmentFactory one = new RetryEnvironment.Factory();
    IllegalStateException twice = assertThrows(IllegalStateException.class,
        () -> EnvironmentRegistry.of(List.of(one, new RetryEnvironment.Factory())));
    assertTrue(twice.getMessage().contains("two environment factories claim the identifier 'retry'"));
    ConfigException bad = assertThrows(ConfigException.class,
        () -> registry.create("retry", ConfigFactory.parseString("max-turns = 0")));
    assertTrue(bad.getMessage().contains("max-turns"), bad.getMessage());
  }

  @Test
  void theRetryTaskRewardsARightAnswerAtAnyTurnAndEndsWhenTurnsRunOut() {
    try (GuardedEnvironment env = new GuardedEnvironment(
        EnvironmentRegistry.load().create("retry", ConfigFactory.empty()), "retry", Duration.ofSeconds(5))) {
      GuardedEnvironment.GuardedEpisode ep = env.start(row("42"));
      assertNull(ep.failedStart());
      StepResult first = ep.step("It is 41.");
      assertFalse(first.done());
      assertEquals(List.of(EnvMessage.user("That is not right. Check your work and try again.")),
          first.observation());
      StepResult second = ep.step("Sorry: 12 + 30 = 42");
      assertTrue(second.done());
      assertEquals(1.0, second.reward());
      assertEquals("correct at turn 2", second.endReason());
      assertThrows(IllegalStateException.class, () -> ep.step("42"), "no step after the end");

      GuardedEnvironment.GuardedEpisode lost = env.start(row("42"));
      lost.step("1");
      lost.step("2");
      StepResult last = lost.step("3");
      assertEquals(0.0, last.reward());
      assertEquals("out of turns", last.endReason());
    }
  }

  /** An environment whose episodes misbehave as told by the model's turn. */
  private static final class Hostile implements Environment {
    @Override
    public Episode start(EpisodeStart start) {
      if (start.groundTruth().equals("no start")) {
        throw new IllegalStateException("the server is down");
      }
      return turn -> switch (turn) {
        case "hang" -> {
          try {
            Thread.sleep(60_000);
          } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
          }
          yield StepResult.observe();
        }
        case "throw" -> throw new IllegalArgumentException("cannot parse the move");
        case "null" -> null;
        default -> StepResult.end(0.5, "fine");
      };
    }
  }

  @Test
  void aFailingOrHangingEnvironmentFailsTheEpisodeNamingWhyNeverAZero() {
    try (GuardedEnvironment env = new GuardedEnvironment(new Hostile(), "hostile", Duration.ofMillis(300))) {
      StepResult noStart = env.start(row("no start")).failedStart();
      assertTrue(noStart.isFailed() && noStart.failure().contains("the server is down"), noStart.failure());
      assertNull(noStart.reward(), "a failed episode has no reward");
      long before = System.nanoTime();
      StepResult hang = env.start(row("1")).step("hang");
      assertTrue((System.nanoTime() - before) / 1e9 < 10, "ended at the timeout");
      assertTrue(hang.isFailed() && hang.done() && hang.failure().contains("timed out after 300 ms"),
          hang.failure());
      StepResult thrown = env.start(row("1")).step("throw");
      assertTrue(thrown.isFailed() && thrown.failure().contains("cannot parse the move"), thrown.failure());
      StepResult nothing = env.start(row("1")).step("null");
      assertTrue(nothing.isFailed() && nothing.failure().contains("answered nothing"), nothing.failure());
      assertEquals(StepResult.end(0.5, "fine"), env.start(row("1")).step("ok"), "a well-behaved step passes");
    }
  }

  @Test
  void aStepResultRefusesNonFiniteRewardsAndFailuresThatGoOn() {
    assertThrows(IllegalArgumentException.class, () -> StepResult.end(Double.NaN, "x"));
    assertThrows(IllegalArgumentException.class, () -> new StepResult(List.of(), null, false, null, "broken"));
  }
}
