package dev.nucleon.reward.shape;

import com.typesafe.config.Config;
import dev.nucleon.core.reward.RewardFactory;
import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.reward.ConfigValues;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * Rewards the shape of a completion, by a regular expression or by a tag template.
 *
 * <p>Regex ({@code regex} set): 1 when the pattern matches ({@code match = full} the whole text, {@code prefix} from
 * the start like Python's {@code re.match}, {@code find} anywhere), else 0. Flags: {@code dotall},
 * {@code multiline}, {@code case-insensitive}.
 *
 * <p>Template ({@code template}, e.g. {@code <think>...</think><answer>...</answer>}): the tags, in order, each
 * section holding any text ("..."), with only white space allowed between and around sections.
 * {@code scoring = binary} gives 1 or 0; {@code partial} gives the fraction of the template's tags that occur
 * exactly once and in template order (so a completion missing {@code </answer>} still earns 3/4).
 */
public final class FormatReward implements RewardFunction {

  private static final Pattern TAG = Pattern.compile("<(/?)([A-Za-z][A-Za-z0-9_:-]*)>");

  private final Pattern pattern;
  private final String match;
  private final List<String> tags;
  private final boolean partial;

  private FormatReward(Pattern pattern, String match, List<String> tags, boolean partial) {
    this.pattern = pattern;
    this.match = match;
    this.tags = tags;
    this.partial = partial;
  }

  /** A regex format reward. */
  public static FormatReward regex(Pattern pattern, String match) {
    return new FormatReward(pattern, match, List.of(), false);
  }

  /** A template format reward ({@code <a>...</a><b>...</b>}). */
  public static FormatReward template(String template, boolean partial) {
    List<String> tags = new ArrayList<>();
    Matcher m = TAG.matcher(template);
    StringBuilder regex = new StringBuilder("\\s*");
    int last = 0;
    while (m.find()) {
      String between = template.substring(last, m.start());
      if (!between.isBlank() && !between.equals("...")) {
        throw new IllegalArgumentException("template text between tags must be '...' or white space, got '"
            + between + "' in " + template);
      }
      if (between.equals("...")) {
        regex.append("(.*?)");
      } else {
        regex.append("\\s*");
      }
      tags.add(m.group());
      regex.append(Pattern.quote(m.group()));
      last = m.end();
    }
    if (tags.isEmpty()) {
      throw new IllegalArgumentException("template has no tags: " + template);
    }
    if (!template.substring(last).isBlank()) {
      throw new IllegalArgumentException("template must end with a tag: " + template);
    }
    regex.append("\\s*");
    return new FormatReward(Pattern.compile(regex.toString(), Pattern.DOTALL), "full", List.copyOf(tags), partial);
  }

  @Override
  public RewardResult scoreOne(RewardRequest request) {
    String text = request.completion();
    Matcher m = pattern.matcher(text);
    boolean ok = switch (match) {
      case "full" -> m.matches();
      case "prefix" -> m.lookingAt();
      default -> m.find();
    };
    double value = ok ? 1.0 : (partial ? tagFraction(text) : 0.0);
    return RewardResult.ok(value, Map.of("format", value));
  }

  private double tagFraction(String text) {
    int good = 0;
    int from = 0;
    for (String tag : tags) {
      int first = text.indexOf(tag);
      if (first >= 0 && text.indexOf(tag, first + 1) < 0 && first >= from) {
        good++;
        from = first + tag.length();
      }
    }
    return (double) good / tags.size();
  }

  /** {@code nucleon.reward.format { template | regex, match, flags, scoring }}. */
  public static final class Factory implements RewardFactory {
    @Override
    public String identifier() {
      return "format";
    }

    @Override
    public RewardFunction create(Config config) {
      Config c = ConfigValues.withDefaults(config, "format");
      String regex = ConfigValues.string(c, "regex");
      String template = ConfigValues.string(c, "template");
      boolean partial = ConfigValues.oneOf(c, "scoring", List.of("binary", "partial")).equals("partial");
      if (!regex.isEmpty()) {
        if (config.hasPath("template") && !template.isEmpty()) {
          throw ConfigValues.bad(c, "regex", "set either regex or template, not both");
        }
        if (partial) {
          throw ConfigValues.bad(c, "scoring", "partial scoring needs a template, not a regex");
        }
        int flags = 0;
        for (String flag : ConfigValues.stringList(c, "flags")) {
          flags |= switch (flag.toLowerCase(java.util.Locale.ROOT)) {
            case "dotall" -> Pattern.DOTALL;
            case "multiline" -> Pattern.MULTILINE;
            case "case-insensitive" -> Pattern.CASE_INSENSITIVE | Pattern.UNICODE_CASE;
            default -> throw ConfigValues.bad(c, "flags",
                "unknown flag '" + flag + "' (expected dotall, multiline, case-insensitive)");
          };
        }
        String match = ConfigValues.oneOf(c, "match", List.of("full", "prefix", "find"));
        try {
          return regex(Pattern.compile(regex, flags), match);
        } catch (PatternSyntaxException e) {
          throw ConfigValues.bad(c, "regex", "not a valid regular expression: " + e.getDescription());
        }
      }
      if (template.isEmpty()) {
        throw ConfigValues.bad(c, "template", "set a template (e.g. <think>...</think><answer>...</answer>) or a regex");
      }
      try {
        return template(template, partial);
      } catch (IllegalArgumentException e) {
        throw ConfigValues.bad(c, "template", e.getMessage());
      }
    }
  }
}
