package dev.nucleon.reward.verify;

import com.typesafe.config.Config;
import dev.nucleon.core.reward.RewardFactory;
import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.reward.ConfigValues;
import java.math.BigDecimal;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * GSM8K answer checking as EleutherAI's lm-evaluation-harness extracts it.
 *
 * <ol>
 *   <li>Extract the model's answer: {@code strict} takes the first {@code #### N}; {@code flexible} takes the last
 *       match of {@code (-?[$0-9.,]{2,})|(-?[0-9]+)} in the whole text.
 *   <li>Clean it as the harness does: drop {@code $} and commas, then one trailing period.
 *   <li>Take the reference the same way: the number after {@code ####} when the ground truth is a worked solution,
 *       else the whole ground truth.
 *   <li>Compare numerically ({@code 18.00} equals {@code 18}); the harness compares the cleaned strings.
 * </ol>
 *
 * <p>Reward 1 when equal, 0 otherwise (also when nothing could be extracted). A ground truth without a number is a
 * data error and fails the request.
 */
public final class Gsm8kReward implements RewardFunction {

  /** How the model's answer is found. */
  public enum Mode {
    STRICT,
    FLEXIBLE
  }

  static final Pattern STRICT = Pattern.compile("#### (\\-?[0-9\\.\\,]+)");
  static final Pattern FLEXIBLE = Pattern.compile("(-?[$0-9.,]{2,})|(-?[0-9]+)");

  private final Mode mode;

  public Gsm8kReward(Mode mode) {
    this.mode = mode;
  }

  public Mode mode() {
    return mode;
  }

  @Override
  public RewardResult scoreOne(RewardRequest request) {
    BigDecimal gold = reference(request.groundTruth());
    Optional<BigDecimal> answer = extract(request.completion(), mode).flatMap(Gsm8kReward::number);
    double correct = answer.isPresent() && answer.get().compareTo(gold) == 0 ? 1.0 : 0.0;
    return RewardResult.ok(correct, Map.of("correct", correct));
  }

  /** The raw answer string the harness would take from {@code text}, before cleaning. */
  public static Optional<String> extract(String text, Mode mode) {
    if (mode == Mode.STRICT) {
      Matcher m = STRICT.matcher(text);
      return m.find() ? Optional.of(m.group(1)) : Optional.empty();
    }
    Matcher m = FLEXIBLE.matcher(text);
    String last = null;
    while (m.find()) {
      last = m.group(1) != null ? m.group(1) : m.group(2);
    }
    return Optional.ofNullable(last);
  }

  /** The harness's cleaning ({@code $}, commas, one trailing period) followed by a numeric parse. */
  public static Optional<BigDecimal> number(String raw) {
    String s = raw.replace(",", "").replace("$", "").trim();
    if (s.endsWith(".")) {
      s = s.substring(0, s.length() - 1);
    }
    if (s.isEmpty()) {
      return Optional.empty();
    }
    try {
      return Optional.of(new BigDecimal(s));
    } catch (NumberFormatException e) {
      return Optional.empty();
    }
  }

  /** The reference number: after {@code ####} in a worked solution, else the whole ground truth. */
  public static BigDecimal reference(String groundTruth) {
    String text = groundTruth.strip();
    int hashes = text.lastIndexOf("####");
    if (hashes >= 0) {
      text = text.substring(hashes + 4).strip();
    }
    return number(text).orElseThrow(() -> new IllegalArgumentException(
        "the ground truth has no number to compare with: '" + abbreviate(groundTruth) + "'"));
  }

  static String abbreviate(String s) {
    return s.length() <= 80 ? s : s.substring(0, 77) + "...";
  }

  /** {@code nucleon.reward.gsm8k { mode = strict | flexible }}. */
  public static final class Factory implements RewardFactory {
    @Override
    public String identifier() {
      return "gsm8k";
    }

    @Override
    public RewardFunction create(Config config) {
      Config c = ConfigValues.withDefaults(config, "gsm8k");
      String mode = ConfigValues.oneOf(c, "mode", List.of("strict", "flexible"));
      return new Gsm8kReward(mode.equals("strict") ? Mode.STRICT : Mode.FLEXIBLE);
    }
  }
}
