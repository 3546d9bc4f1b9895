package dev.nucleon.actors.run;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.encoder.PatternLayoutEncoder;
import ch.qos.logback.core.FileAppender;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigRenderOptions;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.Comparator;
import java.util.Optional;
import java.util.stream.Stream;
import org.slf4j.LoggerFactory;

/**
 * A run's folder: {@code config.conf} (the resolved settings), {@code nucleon.log}, {@code metrics.jsonl},
 * {@code checkpoints/}, {@code plots/} and {@code summary.json}.
 */
public final class RunDirectory {

  private static final DateTimeFormatter STAMP = DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss");

  private RunDirectory() {}

  /** A new folder {@code <dir>/<name>-<timestamp>}. */
  public static Path fresh(Path dir, String name) throws IOException {
    Path p = dir.resolve(name + "-" + LocalDateTime.now().format(STAMP));
    int n = 1;
    while (Files.exists(p)) {
      p = dir.resolve(name + "-" + LocalDateTime.now().format(STAMP) + "-" + n++);
    }
    return Files.createDirectories(p);
  }

  /** The newest existing run folder of that name (for {@code --resume}). */
  public static Optional<Path> newest(Path dir, String name) throws IOException {
    if (!Files.isDirectory(dir)) {
      return Optional.empty();
    }
    try (Stream<Path> s = Files.list(dir)) {
      return s.filter(Files::isDirectory)
          .filter(p -> p.getFileName().toString().startsWith(name + "-"))
          .max(Comparator.comparing(p -> p.getFileName().toString()));
    }
  }

  /** Writes the resolved {@code nucleon} settings. */
  public static void writeConfig(Path runDir, Config config) throws IOException {
    String text = config.getConfig("nucleon").atKey("nucleon").root()
        .render(ConfigRenderOptions.defaults().setOriginComments(false).setJson(false));
    Files.writeString(runDir.resolve("config.conf"), text);
  }

  /**
   * Writes the run's provenance record ({@link Provenance}) with the files the config names as inputs: the model
   * (file or folder), its tokenizer and starting adapter when given apart, the dataset and evaluation files and the
   * chat template's tokenizer_config.json. Call it once the engine is up (the record names its version).
   */
  public static Path writeProvenance(Path runDir, Config config) throws IOException {
    java.util.Map<String, Path> inputs = new java.util.LinkedHashMap<>();
    for (String[] k : new String[][] {{"model", "nucleon.model.path"}, {"tokenizer", "nucleon.model.tokenizer"},
        {"adapter", "nucleon.model.adapter"}, {"dataset", "nucleon.dataset.path"},
        {"eval-dataset", "nucleon.dataset.eval.path"}, {"chat-template", "nucleon.dataset.tokenizer-config"}}) {
      if (config.hasPath(k[1]) && !config.getString(k[1]).isBlank()) {
        inputs.put(k[0], Path.of(config.getString(k[1])));
      }
    }
    return Provenance.write(runDir, config, inputs);
  }

  /** Sends every log line to {@code nucleon.log} in the run folder as well. */
  public static void logToFile(Path runDir) {
    if (!(LoggerFactory.getILoggerFactory() instanceof LoggerContext ctx)) {
      return;
    }
    PatternLayoutEncoder encoder = new PatternLayoutEncoder();
    encoder.setContext(ctx);
    encoder.setPattern("%d{HH:mm:ss.SSS} %-5level [%thread] %logger{30} - %msg%n");
    encoder.start();
    FileAppender<ch.qos.logback.classic.spi.ILoggingEvent> file = new FileAppender<>();
    file.setContext(ctx);
    file.setName("run-file");
    file.setFile(runDir.resolve("nucleon.log").toString());
    file.setEncoder(encoder);
    file.start();
    Logger root = ctx.getLogger(org.slf4j.Logger.ROOT_LOGGER_NAME);
    root.addAppender(file);
  }
}
