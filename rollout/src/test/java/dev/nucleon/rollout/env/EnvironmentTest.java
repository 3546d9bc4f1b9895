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

  @Test
  void theGuessingGameHintsUntilTheNumberIsFoundOrTheGuessesRunOut() {
    GuessEnvironment game = new GuessEnvironment.Factory().create(ConfigFactory.parseString("max-turns = 3"));
    Episode found = game.start(new EpisodeStart(1, 0, "?", "13", Map.of()));
    assertEquals(List.of(EnvMessage.user("<")), found.step("20").observation(), "13 is smaller than 20");
    assertEquals(List.of(EnvMessage.user(">")), found.step("I say 07").observation(), "13 is larger than 7");
    assertEquals(StepResult.end(1.0, "found at turn 3"), found.step("13"));
    Episode lost = game.start(new EpisodeStart(2, 0, "?", "05", Map.of()));
    lost.step("16");
    lost.step("08");
    assertEquals(StepResult.end(0.0, "not found"), lost.step("06"));
    assertEquals(StepResult.end(0.0, "no guess"), game.start(new EpisodeStart(3, 0, "?", "5", Map.of())).step("?"));
    IllegalArgumentException bad = assertThrows(IllegalArgumentException.class,
        () -> game.start(new EpisodeStart(4, 0, "?", "32", Map.of())));
    assertTrue(bad.getMessage().contains("[0, 32)"), bad.getMessage());
    assertThrows(ConfigException.class, () -> new GuessEnvironment.Factory().create(
        ConfigFactory.parseString("smaller = \"1\"")));
  }

  @Test
  void randomPlayGuessesAmongTheNumbersStillPossibleAndAgreesWithTheGame() {
    GuessEnvironment game = new GuessEnvironment.Factory().create(ConfigFactory.empty());
    TurnFormat format = TurnFormat.plain("{content}");
    java.util.SplittableRandom rng = new java.util.SplittableRandom(5);
    int found = 0;
    for (int i = 0; i < 400; i++) {
      int target = i % 32;
      String play = game.randomPlay(target, rng, "$", format, "?");
      // replayed through the game, every hint in the transcript is the game's, and it ends where the game ends
      java.util.regex.Matcher turn = java.util.regex.Pattern.compile("(\\d\\d)\\$([<>]?)").matcher(play);
      Episode episode = game.start(new EpisodeStart(i, 0, "?", game.format(target), Map.of()));
      int lo = 0;
      int hi = 31;
      StepResult last = null;
      int end = 0;
      while (turn.find()) {
        assertEquals(end, turn.start(), "turns follow each other: " + play);
        end = turn.end();
        int guess = Integer.parseInt(turn.group(1));
        assertTrue(guess >= lo && guess <= hi, guess + " is still possible in " + play);
        last = episode.step(turn.group(1));
        if (last.done()) {
          assertEquals("", turn.group(2), play);
          break;
        }
        assertEquals(List.of(EnvMessage.user(turn.group(2))), last.observation(), play);
        if (turn.group(2).equals("<")) {
          hi = guess - 1;
        } else {
          lo = guess + 1;
        }
      }
      assertEquals(play.length(), end, play);
      assertTrue(last != null && last.done(), play);
      found += last.reward() == 1.0 ? 1 : 0;
    }
    // random play among the possible numbers finds about 54% of numbers in [0, 32) within 5 guesses
    assertTrue(found > 180 && found < 260, "found " + found + " of 400");
  }
}
