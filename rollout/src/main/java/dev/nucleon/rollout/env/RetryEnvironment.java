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
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A task that needs acting on feedback: the model answers, and until its answer's last number equals the reference
 * (exactly, as decimals) the environment says so and lets it try again, up to {@code max-turns} turns. Reward 1 for
 * a right answer at any turn, 0 when the turns run out.
 */
public final class RetryEnvironment implements Environment {

  private static final Pattern NUMBER = Pattern.compile("-?\\d+(?:\\.\\d+)?");

  private final int maxTurns;
  private final String feedback;

  /**
   * @param maxTurns model turns an episode may take (at least 1)
   * @param feedback what the environment says after a wrong answer
   */
  public RetryEnvironment(int maxTurns, String feedback) {
    if (maxTurns < 1) {
      throw new IllegalArgumentException("max-turns must be >= 1, got " + maxTurns);
    }
    this.maxTurns = maxTurns;
    this.feedback = feedback;
  }

  @Override
  public Episode start(EpisodeStart start) {
    BigDecimal target = number(start.groundTruth());
    if (target == null) {
      throw new IllegalArgumentException("prompt " + start.promptId() + ": the reference '" + start.groundTruth()
          + "' holds no number");
    }
    return new Episode() {
      private int turns;

      @Override
      public StepResult step(String modelTurn) {
        turns++;
        BigDecimal answer = number(modelTurn);
        if (answer != null && answer.compareTo(target) == 0) {
          return StepResult.end(1.0, "correct at turn " + turns);
        }
        if (turns >= maxTurns) {
          return StepResult.end(0.0, "out of turns");
        }
        return StepResult.observe(EnvMessage.user(feedback));
      }
    };
  }

  /** The last number in a text, or null. */
  static BigDecimal number(String text) {
    Matcher m = NUMBER.matcher(text);
    String last = null;
    while (m.find()) {
      last = m.group();
    }
    return last == null ? null : new BigDecimal(last);
  }

  /** {@code nucleon.environment.retry { max-turns, feedback }}. */
  public static final class Factory implements EnvironmentFactory {
    @Override
    public String identifier() {
      return "retry";
    }

    @Override
    public Environment create(Config config) {
      Config c = config.withFallback(ConfigFactory.defaultReference().getConfig("nucleon.environment.retry"));
      int turns = c.getInt("max-turns");
      if (turns < 1) {
        throw new ConfigException.BadValue(c.origin(), "max-turns", "must be >= 1, got " + turns);
      }
      return new RetryEnvironment(turns, c.getString("feedback"));
    }
  }
}
