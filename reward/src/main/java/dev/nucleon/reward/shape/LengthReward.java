package dev.nucleon.reward.shape;

import com.typesafe.config.Config;
import dev.nucleon.core.reward.RewardFactory;
import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.reward.ConfigValues;
import java.util.List;
import java.util.Map;

/**
 * A reward on completion length.
 *
 * <p>{@code mode = overlong} is DAPO's soft overlong punishment with {@code L_max = max-length} and
 * {@code L_cache = soft-margin}: 0 while {@code |y| <= L_max - L_cache}, then {@code (L_max - L_cache - |y|) / L_cache}
 * falling linearly to -1 at {@code L_max}, and -1 beyond. Add it to a correctness reward with {@code composite}.
 *
 * <p>{@code mode = budget}: 1 while {@code |y| <= max-length}, then falling linearly to 0 over {@code soft-margin}
 * more units.
 *
 * <p>{@code unit}: {@code tokens} (the request's completion tokens; a request without tokens fails rather than
 * scoring as empty), {@code characters} or {@code words}.
 */
public final class LengthReward implements RewardFunction {

  private final boolean overlong;
  private final int maxLength;
  private final int softMargin;
  private final String unit;

  public LengthReward(boolean overlong, int maxLength, int softMargin, String unit) {
    if (softMargin > maxLength && overlong) {
      throw new IllegalArgumentException("soft-margin (" + softMargin + ") must not exceed max-length (" + maxLength
          + ")");
    }
    this.overlong = overlong;
    this.maxLength = maxLength;
    this.softMargin = softMargin;
    this.unit = unit;
  }

  @Override
  public RewardResult scoreOne(RewardRequest request) {
    int length = length(request);
    double value;
    if (overlong) {
      int expected = maxLength - softMargin;
      if (length <= expected) {
        value = 0.0;
      } else if (length <= maxLength) {
        value = softMargin == 0 ? 0.0 : (double) (expected - length) / softMargin;
      } else {
        value = -1.0;
      }
    } else {
      if (length <= maxLength) {
        value = 1.0;
      } else if (softMargin == 0) {
        value = 0.0;
      } else {
        value = Math.max(0.0, 1.0 - (double) (length - maxLength) / softMargin);
      }
    }
    return RewardResult.ok(value, Map.of("length", value));
  }

  private int length(RewardRequest request) {
    return switch (unit) {
      case "tokens" -> {
        if (request.completionTokens().length == 0 && !request.completion().isEmpty()) {
          throw new IllegalArgumentException(
              "length counts tokens but the request has no completion tokens (set unit = characters or words)");
        }
        yield request.completionTokens().length;
      }
      case "characters" -> request.completion().codePointCount(0, request.completion().length());
      default -> request.completion().isBlank() ? 0 : request.completion().trim().split("\\s+").length;
    };
  }

  /** {@code nucleon.reward.length { mode, max-length, soft-margin, unit }}. */
  public static final class Factory implements RewardFactory {
    @Override
    public String identifier() {
      return "length";
    }

    @Override
    public RewardFunction create(Config config) {
      Config c = ConfigValues.withDefaults(config, "length");
      boolean overlong = ConfigValues.oneOf(c, "mode", List.of("overlong", "budget")).equals("overlong");
      int max = ConfigValues.intAtLeast(c, "max-length", 1);
      int margin = ConfigValues.intAtLeast(c, "soft-margin", 0);
      if (overlong && margin > max) {
        throw ConfigValues.bad(c, "soft-margin", "must not exceed max-length (" + max + "), got " + margin);
      }
      String unit = ConfigValues.oneOf(c, "unit", List.of("tokens", "characters", "words"));
      return new LengthReward(overlong, max, margin, unit);
    }
  }
}
