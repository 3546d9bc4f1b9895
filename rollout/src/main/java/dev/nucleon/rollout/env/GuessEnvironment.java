package dev.nucleon.rollout.env;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import dev.nucleon.core.env.EnvMessage;
import dev.nucleon.core.env.Environment;
import dev.nucleon.core.env.EnvironmentFactory;
import dev.nucleon.core.env.Episode;
import dev.nucleon.core.env.EpisodeStart;
import dev.nucleon.core.env.StepResult;
import java.math.BigDecimal;
import java.util.SplittableRandom;

/**
 * A task that takes several turns by its nature: find a hidden number in {@code [0, range)} (the row's reference) by
 * guessing. After each wrong guess the environment says whether the number is smaller ({@code smaller}) or larger
 * ({@code larger}) than the guess; reward 1 for finding it within {@code max-turns} guesses, 0 otherwise (a turn
 * without a number ends the episode with 0). Halving the range every turn finds any number within
 * {@code ceil(log2(range + 1))} guesses (6 for 32 numbers; 31 of the 32 within 5); guessing at random among the
 * numbers still possible takes more.
 */
public final class GuessEnvironment implements Environment {

  private final int range;
  private final int maxTurns;
  private final String smaller;
  private final String larger;

  public GuessEnvironment(int range, int maxTurns, String smaller, String larger) {
    if (range < 2) {
      throw new IllegalArgumentException("range must be >= 2, got " + range);
    }
    if (maxTurns < 1) {
      throw new IllegalArgumentException("max-turns must be >= 1, got " + maxTurns);
    }
    if (smaller.isEmpty() || larger.isEmpty() || smaller.equals(larger) || smaller.matches(".*\\d.*")
        || larger.matches(".*\\d.*")) {
      throw new IllegalArgumentException("smaller and larger must be two different hints without digits, got '"
          + smaller + "' and '" + larger + "'");
    }
    this.range = range;
    this.maxTurns = maxTurns;
    this.smaller = smaller;
    this.larger = larger;
  }

  @Override
  public Episode start(EpisodeStart start) {
    int target = target(start.groundTruth());
    return new Episode() {
      private int turns;

      @Override
      public StepResult step(String modelTurn) {
        turns++;
        BigDecimal guess = RetryEnvironment.number(modelTurn);
        if (guess == null) {
          return StepResult.end(0.0, "no guess");
        }
        int cmp = guess.compareTo(BigDecimal.valueOf(target));
        if (cmp == 0) {
          return StepResult.end(1.0, "found at turn " + turns);
        }
        if (turns >= maxTurns) {
          return StepResult.end(0.0, "not found");
        }
        return StepResult.observe(EnvMessage.user(cmp > 0 ? smaller : larger));
      }
    };
  }

  private int target(String reference) {
    try {
      int t = Integer.parseInt(reference.strip());
      if (t >= 0 && t < range) {
        return t;
      }
    } catch (NumberFormatException e) {
      // reported below
    }
    throw new IllegalArgumentException("the reference '" + reference + "' is not a number in [0, " + range + ")");
  }

  /** How a guess is written: zero-padded to the digits of the largest number. */
  public String format(int guess) {
    int width = String.valueOf(range - 1).length();
    return String.format("%0" + width + "d", guess);
  }

  /**
   * The text after the prompt of an episode played by guessing at random among the numbers still possible, each
   * guess followed by {@code stop} and the environment's hint as {@code messageFormat}'s plain rendering writes it
   * (pretraining transcripts: a base model that knows the rules but not the strategy).
   */
  public String randomPlay(int target, SplittableRandom rng, String stop, TurnFormat format, String prompt) {
    StringBuilder out = new StringBuilder();
    int lo = 0;
    int hi = range - 1;
    for (int turn = 1; turn <= maxTurns; turn++) {
      int guess = lo + rng.nextInt(hi - lo + 1);
      out.append(format(guess)).append(stop);
      if (guess == target || turn == maxTurns) {
        break;
      }
      String hint = guess > target ? smaller : larger;
      out.append(format.after(prompt, java.util.List.of(EnvMessage.user(hint)), stop));
      if (guess > target) {
        hi = guess - 1;
      } else {
        lo = guess + 1;
      }
    }
    return out.toString();
  }

  /** {@code nucleon.environment.guess { range, max-turns, smaller, larger }}. */
  public static final class Factory implements EnvironmentFactory {
    @Override
    public String identifier() {
      return "guess";
    }

    @Override
    public GuessEnvironment create(Config config) {
      Config c = config.withFallback(ConfigFactory.defaultReference().getConfig("nucleon.environment.guess"));
      try {
        return new GuessEnvironment(c.getInt("range"), c.getInt("max-turns"), c.getString("smaller"),
            c.getString("larger"));
      } catch (IllegalArgumentException e) {
        throw new ConfigException.BadValue(c.origin(), "guess", e.getMessage());
      }
    }
  }
}
