package dev.nucleon.rollout.data;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A prompt template with {@code {field}} placeholders ({@code "Question: {question}\nAnswer:"}). A placeholder is a
 * name of letters, digits, {@code _}, {@code -} or {@code .} in braces; {@code {{} and {@code }}} are literal braces;
 * any other brace is literal text too (so {@code \boxed{}} needs no escaping).
 */
public final class PromptTemplate {

  private final String text;
  private final List<Object> parts; // String literal or Field
  private final Set<String> fields;

  private record Field(String name) {}

  private PromptTemplate(String text, List<Object> parts, Set<String> fields) {
    this.text = text;
    this.parts = List.copyOf(parts);
    this.fields = Collections.unmodifiableSet(new LinkedHashSet<>(fields));
  }

  /** Parses {@code text}; throws IllegalArgumentException for an unclosed placeholder. */
  public static PromptTemplate parse(String text) {
    List<Object> parts = new ArrayList<>();
    Set<String> fields = new LinkedHashSet<>();
    StringBuilder literal = new StringBuilder();
    int i = 0;
    while (i < text.length()) {
      char c = text.charAt(i);
      if (c == '{' && i + 1 < text.length() && text.charAt(i + 1) == '{') {
        literal.append('{');
        i += 2;
      } else if (c == '}' && i + 1 < text.length() && text.charAt(i + 1) == '}') {
        literal.append('}');
        i += 2;
      } else if (c == '{') {
        int j = i + 1;
        while (j < text.length() && isNameChar(text.charAt(j))) {
          j++;
        }
        if (j > i + 1 && j < text.length() && text.charAt(j) == '}') {
          if (!literal.isEmpty()) {
            parts.add(literal.toString());
            literal.setLength(0);
          }
          String name = text.substring(i + 1, j);
          parts.add(new Field(name));
          fields.add(name);
          i = j + 1;
        } else if (j > i + 1 && j == text.length()) {
          throw new IllegalArgumentException("placeholder {" + text.substring(i + 1) + " is not closed with }");
        } else {
          literal.append(c);
          i++;
        }
      } else {
        literal.append(c);
        i++;
      }
    }
    if (!literal.isEmpty()) {
      parts.add(literal.toString());
    }
    return new PromptTemplate(text, parts, fields);
  }

  private static boolean isNameChar(char c) {
    return Character.isLetterOrDigit(c) || c == '_' || c == '-' || c == '.';
  }

  /** The placeholder names, in order of first use. */
  public Set<String> fields() {
    return fields;
  }

  public String text() {
    return text;
  }

  /** The template with each placeholder replaced; a placeholder missing from {@code values} is an error. */
  public String render(Map<String, String> values) {
    StringBuilder out = new StringBuilder();
    for (Object part : parts) {
      if (part instanceof Field f) {
        String v = values.get(f.name());
        if (v == null) {
          throw new IllegalArgumentException("the template uses {" + f.name() + "} but the row has no field '"
              + f.name() + "' (it has " + new java.util.TreeSet<>(values.keySet()) + ")");
        }
        out.append(v);
      } else {
        out.append((String) part);
      }
    }
    return out.toString();
  }
}
