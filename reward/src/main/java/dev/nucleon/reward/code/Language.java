package dev.nucleon.reward.code;

import com.typesafe.config.Config;
import dev.nucleon.reward.ConfigValues;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * How the {@code code} reward runs one language: the file the program is written to, the command that runs it,
 * and how a program with tests is put together.
 *
 * @param name the name rows and config use ({@code python}, {@code java})
 * @param file the program's file name in the working directory
 * @param command the program and its arguments, run in the working directory
 * @param program the template of a program with tests: {@code {code}} (the solution), {@code {tests}} (the test
 *     code), {@code {nonce}} (a random token the program prints once every test passed) and, optionally,
 *     {@code {imports}} (the import lines of solution and tests, moved there: Java needs them at the top)
 * @param fences the tags of Markdown code blocks that hold this language ({@code ```python})
 */
public record Language(String name, String file, List<String> command, String program, List<String> fences) {

  private static final Pattern BLOCK = Pattern.compile("```([\\w+#.-]*)[ \\t]*\\r?\\n(.*?)```", Pattern.DOTALL);
  private static final Pattern IMPORT = Pattern.compile(
      "^[ \\t]*import[ \\t]+(static[ \\t]+)?[\\w.*]+[ \\t]*;[ \\t]*$", Pattern.MULTILINE);
  private static final Pattern PLACEHOLDER = Pattern.compile("\\{(code|tests|nonce|imports)}");
  private static final Pattern PACKAGE = Pattern.compile("^[ \\t]*package[ \\t]+[\\w.]+;[ \\t]*$", Pattern.MULTILINE);

  public Language {
    command = List.copyOf(command);
    fences = fences.stream().map(f -> f.toLowerCase(Locale.ROOT)).toList();
  }

  /** The language of {@code languages.<name>} in the reward's block; a missing or bad key throws naming it. */
  static Language fromConfig(Config block, String name) {
    String p = "languages." + name + ".";
    List<String> command = ConfigValues.stringList(block, p + "command");
    if (command.isEmpty()) {
      throw ConfigValues.bad(block, p + "command", "is empty: give the program and its arguments");
    }
    String program = ConfigValues.string(block, p + "program");
    for (String placeholder : List.of("{code}", "{tests}", "{nonce}")) {
      if (!program.contains(placeholder)) {
        throw ConfigValues.bad(block, p + "program", "lacks " + placeholder);
      }
    }
    String file = ConfigValues.string(block, p + "file").strip();
    if (file.isEmpty() || file.contains("/") || file.startsWith(".")) {
      throw ConfigValues.bad(block, p + "file", "must be a plain file name, got '" + file + "'");
    }
    return new Language(name, file, command, program, ConfigValues.stringList(block, p + "fences"));
  }

  /**
   * The solution in a completion: the last Markdown code block tagged with one of this language's fences or with
   * none; the whole completion when it has no code block at all; {@code null} when it has code blocks but none of
   * this language.
   */
  String extract(String completion) {
    Matcher m = BLOCK.matcher(completion);
    String last = null;
    boolean any = false;
    while (m.find()) {
      any = true;
      String tag = m.group(1).toLowerCase(Locale.ROOT);
      if (tag.isEmpty() || fences.contains(tag)) {
        last = m.group(2);
      }
    }
    return any ? last : completion;
  }

  /** The program that runs {@code tests} against {@code code} and prints {@code nonce} when all of them passed. */
  String assemble(String code, String tests, String nonce) {
    String body = code;
    String testCode = tests;
    String imports = "";
    if (program.contains("{imports}")) {
      List<String> lines = new ArrayList<>();
      body = PACKAGE.matcher(moveImports(code, lines)).replaceAll("");
      testCode = moveImports(tests, lines);
      imports = String.join("\n", lines.stream().distinct().toList());
    }
    // one pass over the template: a placeholder inside the code or the tests is left as it is
    StringBuilder out = new StringBuilder();
    Matcher m = PLACEHOLDER.matcher(program);
    while (m.find()) {
      String value = switch (m.group(1)) {
        case "code" -> body;
        case "tests" -> testCode;
        case "nonce" -> nonce;
        default -> imports;
      };
      m.appendReplacement(out, Matcher.quoteReplacement(value));
    }
    m.appendTail(out);
    return out.toString();
  }

  private static String moveImports(String source, List<String> into) {
    Matcher m = IMPORT.matcher(source);
    while (m.find()) {
      into.add(m.group().strip());
    }
    return m.replaceAll("");
  }
}
