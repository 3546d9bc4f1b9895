package dev.nucleon.actors.run;

import static org.junit.jupiter.api.Assertions.assertEquals;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.spi.LoggingEvent;
import ch.qos.logback.core.spi.FilterReply;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The run's console: its own lines, warnings and errors; the rest only when made verbose. */
class ConsoleFilterTest {

  private final LoggerContext context = new LoggerContext();

  private FilterReply decide(String logger, Level level) {
    ConsoleFilter filter = new ConsoleFilter();
    return filter.decide(new LoggingEvent(logger, context.getLogger(logger), level, "message", null, null));
  }

  @AfterEach
  void quiet() {
    ConsoleFilter.setVerbose(false);
  }

  @Test
  void theConsoleShowsTheRunsLinesWarningsAndErrorsOnly() {
    ConsoleFilter.setVerbose(false);
    assertEquals(FilterReply.NEUTRAL, decide(ConsoleFilter.RUN_LOGGER, Level.INFO), "progress and evaluations");
    assertEquals(FilterReply.DENY, decide("org.apache.pekko.cluster.Cluster", Level.INFO), "cluster chatter");
    assertEquals(FilterReply.DENY, decide("dev.nucleon.actors.coordinator.Coordinator", Level.INFO));
    assertEquals(FilterReply.DENY, decide("dev.nucleon.running", Level.INFO), "a name that merely starts alike");
    assertEquals(FilterReply.NEUTRAL, decide("org.apache.pekko.cluster.Cluster", Level.WARN), "warnings");
    assertEquals(FilterReply.NEUTRAL, decide("dev.nucleon.learner.Learner", Level.ERROR), "errors");
    ConsoleFilter.setVerbose(true);
    assertEquals(FilterReply.NEUTRAL, decide("org.apache.pekko.cluster.Cluster", Level.INFO), "-v shows all");
  }
}
