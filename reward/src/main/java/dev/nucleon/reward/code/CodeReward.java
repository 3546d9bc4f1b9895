package dev.nucleon.reward.code;

import com.typesafe.config.Config;
import dev.nucleon.core.reward.RewardFactory;
import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.reward.ConfigValues;
import dev.nucleon.core.sandbox.Sandbox;
import dev.nucleon.core.sandbox.Workspace;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CancellationException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Runs the program in a completion against the tests of its dataset row, sandboxed ({@link Sandbox}): the reward is
 * 1 when every test passes ({@code scoring = all}) or the fraction that pass ({@code fraction}).
 *
 * <ol>
 *   <li>The language is the row's {@code language-field}, else {@code language}; the solution is the last code block
 *       of that language in the completion (or untagged), the whole completion when it has none.</li>
 *   <li>Tests that are code ({@link TestCases}): the program is the language's template filled with the solution
 *       and the tests, then a line printing a random nonce. A test passes when the program exits 0 and its last line
 *       of output is the nonce, so a solution that exits early ({@code sys.exit(0)}) passes nothing. With
 *       {@code all} every test goes into one program; with {@code fraction} each test is its own run.</li>
 *   <li>Standard-input tests: the solution runs once per case with the input on stdin; it passes when its output
 *       equals the expected output, line by line, trailing white space and trailing blank lines ignored.
 *       {@code all} stops at the first failure.</li>
 *   <li>Each run has a wall-clock limit ({@code timeout}) and the sandbox's limits; a run past them, a crash, or a
 *       compile error fails that test (reward 0, not a failed request: it is the completion's fault). Each request
 *       has its own folder, deleted afterwards, and every process of a run dies with it.</li>
 * </ol>
 *
 * A row without tests, with tests in no known form, or naming an unknown language fails its request, naming why.
 * What the code can do inside its own process (read its source, replace functions the tests call) this cannot
 * prevent: run tests the solution cannot see when that matters.
 */
public final class CodeReward implements RewardFunction {

  private static final Logger log = LoggerFactory.getLogger(CodeReward.class);

  /** How a request's tests turn into a reward. */
  public enum Scoring { ALL, FRACTION }

  private final Map<String, Language> languages;
  private final String defaultLanguage;
  private final String testsField;
  private final String languageField;
  private final Scoring scoring;
  private final Duration timeout;
  private final Path workRoot;
  private final boolean keepWorkDirs;
  private final Sandbox sandbox;
  private final Sandbox.Support support;

  public CodeReward(Map<String, Language> languages, String defaultLanguage, String testsField, String languageField,
      Scoring scoring, Duration timeout, Path workRoot, boolean keepWorkDirs, Sandbox sandbox) {
    if (!languages.containsKey(defaultLanguage)) {
      throw new IllegalArgumentException("no language '" + defaultLanguage + "' among " + languages.keySet());
    }
    this.languages = Map.copyOf(languages);
    this.defaultLanguage = defaultLanguage;
    this.testsField = testsField;
    this.languageField = languageField;
    this.scoring = scoring;
    this.timeout = timeout;
    this.workRoot = workRoot;
    this.keepWorkDirs = keepWorkDirs;
    this.sandbox = sandbox;
    this.support = sandbox.prepareForUntrustedCode("code", workRoot);
  }

  @Override
  public RewardResult scoreOne(RewardRequest request) {
    String name = request.metadata().getOrDefault(languageField, defaultLanguage).strip().toLowerCase(Locale.ROOT);
    Language language = languages.get(name);
    if (language == null) {
      throw new IllegalArgumentException("code: no language '" + name + "' (field '" + languageField + "'); "
          + "configured: " + languages.keySet().stream().sorted().toList());
    }
    String raw = request.metadata().get(testsField);
    if (raw == null) {
      throw new IllegalArgumentException("code: the request has no tests (metadata field '" + testsField + "')");
    }
    TestCases tests;
    try {
      tests = TestCases.parse(raw);
    } catch (IllegalArgumentException e) {
      throw new IllegalArgumentException("code: field '" + testsField + "': " + e.getMessage(), e);
    }
    String code = language.extract(request.completion());
    if (code == null) {
      log.debug("code: no {} code block in the completion", language.name());
      return RewardResult.ok(0.0);
    }
    try (Workspace ws = Workspace.create(workRoot, "nucleon-code-", support.dropRoot(), keepWorkDirs)) {
      int passed = tests.io().isEmpty() ? runStatements(ws, language, code, tests.statements())
          : runIo(ws, language, code, tests.io());
      return RewardResult.ok(scoring == Scoring.ALL ? (passed == tests.size() ? 1.0 : 0.0)
          : (double) passed / tests.size());
    } catch (IOException e) {
      throw new UncheckedIOException("code: cannot prepare or start the program: " + e.getMessage(), e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new CancellationException("code: interrupted; the program was killed");
    }
  }

  private int runStatements(Workspace ws, Language language, String code, List<String> tests)
      throws IOException, InterruptedException {
    if (scoring == Scoring.ALL) {
      return passes(ws, language, code, String.join("\n", tests)) ? tests.size() : 0;
    }
    int passed = 0;
    for (String test : tests) {
      passed += passes(ws, language, code, test) ? 1 : 0;
    }
    return passed;
  }

  private boolean passes(Workspace ws, Language language, String code, String test)
      throws IOException, InterruptedException {
    String nonce = "nucleon-tests-passed-" + UUID.randomUUID();
    ws.write(ws.work().resolve(language.file()), language.assemble(code, test, nonce));
    Path out = ws.outputFile("stdout.txt");
    Path err = ws.outputFile("stderr.txt");
    Workspace.Exit exit = run(ws, language, null, out, err);
    if (!exit.ok()) {
      log.debug("code: test failed ({}): {}", describe(exit), Workspace.tail(err, 500));
      return false;
    }
    String tail = Workspace.readAtMost(out, nonce.length() + 256L, true).strip();
    return tail.endsWith(nonce) && (tail.length() == nonce.length()
        || tail.charAt(tail.length() - nonce.length() - 1) == '\n');
  }

  private int runIo(Workspace ws, Language language, String code, List<TestCases.Io> cases)
      throws IOException, InterruptedException {
    ws.write(ws.work().resolve(language.file()), code);
    int passed = 0;
    for (TestCases.Io c : cases) {
      Path in = ws.dir().resolve("stdin.txt");
      ws.write(in, c.input());
      Path out = ws.outputFile("stdout.txt");
      Path err = ws.outputFile("stderr.txt");
      Workspace.Exit exit = run(ws, language, in, out, err);
      // output longer than the expected one plus a little trailing white space cannot match
      long limit = c.output().getBytes(java.nio.charset.StandardCharsets.UTF_8).length + 1024L;
      boolean ok = exit.ok() && Files.size(out) <= limit
          && normalize(Workspace.readAtMost(out, limit, false)).equals(normalize(c.output()));
      if (ok) {
        passed++;
      } else {
        log.debug("code: case failed ({}): {}", describe(exit), Workspace.tail(err, 500));
        if (scoring == Scoring.ALL) {
          break;
        }
      }
    }
    return passed;
  }

  private Workspace.Exit run(Workspace ws, Language language, Path stdin, Path out, Path err)
      throws IOException, InterruptedException {
    // the sandbox's environment always: no tokens or keys of the JVM's reach model-written code
    return ws.run(sandbox.wrap(language.command(), support), true, Map.of(), stdin, out, err, timeout);
  }

  private String describe(Workspace.Exit exit) {
    return exit.timedOut() ? "timed out after " + timeout.toMillis() + " ms" : "exit " + exit.exitCode();
  }

  /** Output compared line by line: CR LF as LF, trailing white space of each line and trailing blank lines dropped. */
  static String normalize(String output) {
    String[] lines = output.replace("\r\n", "\n").split("\n", -1);
    StringBuilder b = new StringBuilder();
    for (String line : lines) {
      b.append(line.stripTrailing()).append('\n');
    }
    return b.toString().stripTrailing();
  }

  /**
   * {@code nucleon.reward.code { language, languages, tests-field, language-field, scoring, timeout, work-dir,
   * keep-work-dirs, sandbox }}.
   */
  public static final class Factory implements RewardFactory {
    @Override
    public String identifier() {
      return "code";
    }

    @Override
    public RewardFunction create(Config config) {
      Config c = ConfigValues.withDefaults(config, "code");
      Map<String, Language> languages = new LinkedHashMap<>();
      for (String name : c.getConfig("languages").root().keySet()) {
        languages.put(name.toLowerCase(Locale.ROOT), Language.fromConfig(c, name));
      }
      String language = ConfigValues.string(c, "language").strip().toLowerCase(Locale.ROOT);
      if (!languages.containsKey(language)) {
        throw ConfigValues.bad(c, "language", "'" + language + "' is not among languages " + languages.keySet());
      }
      Scoring scoring = Scoring.valueOf(ConfigValues.oneOf(c, "scoring", List.of("all", "fraction"))
          .toUpperCase(Locale.ROOT));
      String dir = ConfigValues.string(c, "work-dir").trim();
      Path root = dir.isEmpty() ? Paths.get(System.getProperty("java.io.tmpdir")) : Paths.get(dir);
      return new CodeReward(languages, language, ConfigValues.string(c, "tests-field"),
          ConfigValues.string(c, "language-field"), scoring, ConfigValues.positiveDuration(c, "timeout"), root,
          ConfigValues.bool(c, "keep-work-dirs"), Sandbox.fromConfig(c));
    }
  }
}
