package dev.nucleon.actors.run;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.filter.Filter;
import ch.qos.logback.core.spi.FilterReply;

/**
 * What a run's console shows: its progress, evaluations and summary ({@value #RUN_LOGGER}), and warnings and errors
 * from everywhere. The INFO chatter of Pekko, the cluster and Nucleon's actors goes to the run directory's
 * {@code nucleon.log} only (every appender but the console's sees it), unless the console is made verbose
 * ({@code train -v}, {@code nucleon.monitor.console = verbose}, or a cluster node, whose console is its log).
 */
public final class ConsoleFilter extends Filter<ILoggingEvent> {

  /** The logger of the run's own lines (progress, evaluations, the summary). */
  public static final String RUN_LOGGER = "dev.nucleon.run";

  private static volatile boolean verbose;

  /** Shows every INFO line on the console (true) or the run's lines, warnings and errors only (false). */
  public static void setVerbose(boolean on) {
    verbose = on;
  }

  /** Whether the console shows every INFO line. */
  public static boolean verbose() {
    return verbose;
  }

  @Override
  public FilterReply decide(ILoggingEvent event) {
    if (verbose || event.getLevel().isGreaterOrEqual(Level.WARN)) {
      return FilterReply.NEUTRAL;
    }
    String name = event.getLoggerName();
    return name.equals(RUN_LOGGER) || name.startsWith(RUN_LOGGER + ".") ? FilterReply.NEUTRAL : FilterReply.DENY;
  }
}
