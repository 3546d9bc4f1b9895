package dev.nucleon.actors.monitor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import me.tongfei.progressbar.ProgressBarConsumer;
import org.junit.jupiter.api.Test;

class RunProgressTest {

  @Test
  void plainLinesAreThrottledAndCarryRewardThroughputAndEta() {
    AtomicLong now = new AtomicLong();
    List<String> lines = new ArrayList<>();
    try (RunProgress p = RunProgress.withLines("quickstart", 100, 0, Duration.ofSeconds(10), lines::add, now::get)) {
      for (int step = 1; step <= 100; step++) {
        now.addAndGet(TimeUnit.MILLISECONDS.toNanos(500));
        p.update(step, Map.of("reward_mean", 0.5, "accuracy", 0.25, "tokens_per_s", 12345.0));
      }
    }
    // first step, then every 10 s (20 steps of 0.5 s), and the last one
    assertEquals(6, lines.size(), String.join("\n", lines));
    assertEquals("quickstart step 1/100 (1%) | reward 0.500 | acc 0.250 | 12,345 tok/s | elapsed 1s | ETA 50s",
        lines.get(0));
    assertTrue(lines.get(5).startsWith("quickstart step 100/100 (100%)"), lines.get(5));
    assertTrue(lines.get(5).contains("elapsed 50s") && !lines.get(5).contains("ETA"), lines.get(5));
  }

  @Test
  void barShowsStepsAndFigures() {
    StringBuilder out = new StringBuilder();
    ProgressBarConsumer consumer = new ProgressBarConsumer() {
      @Override
      public int getMaxRenderedLength() {
        return 160;
      }

      @Override
      public void accept(String s) {
        out.append(s).append('\n');
      }

      @Override
      public void close() {}
    };
    try (RunProgress p = RunProgress.withBar("run", 10, 0, consumer)) {
      p.update(4, 0.75, 2000);
    }
    String text = out.toString();
    assertTrue(text.contains("run") && text.contains("4/10") && text.contains("reward 0.750")
        && text.contains("2,000 tok/s"), text);
  }

  @Test
  void asTheRunReportersListenerWithEvaluations() {
    AtomicLong now = new AtomicLong();
    List<String> lines = new ArrayList<>();
    dev.nucleon.actors.RunReporter.ProgressListener p =
        RunProgress.withLines("q", 10, 0, Duration.ofSeconds(10), lines::add, now::get);
    p.eval(0, 0.25, 500);
    now.addAndGet(TimeUnit.SECONDS.toNanos(1));
    p.step(1, 10, Map.of("reward_mean", 0.125, "learner_tokens_per_s", 900.0));
    p.close();
    assertEquals("q eval at step 0: accuracy 25.0% on 500 held-out prompts (greedy)", lines.get(0));
    assertEquals("q step 1/10 (10%) | reward 0.125 | 900 tok/s | eval 25.0% @0 | elapsed 1s | ETA 9s", lines.get(1));
  }

  @Test
  void autoIsLogLinesWithoutATerminal() {
    // surefire runs without a console
    assertEquals(false, RunProgress.interactive());
    assertEquals("1h01m05s", RunProgress.duration(3665));
    assertEquals("2m03s", RunProgress.duration(123));
  }
}
