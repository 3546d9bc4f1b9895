package dev.nucleon.actors.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** {@code bench run}'s steady figures: the steps after the warm-up ones, from the run's per-step metric rows. */
class RunBenchSteadyTest {

  private static final ObjectMapper JSON = new ObjectMapper();

  private static ObjectNode step(int step, double elapsed, double samples, double learnerSeconds) {
    return JSON.createObjectNode().put("type", "step").put("step", step).put("elapsed_s", elapsed)
        .put("samples", samples).put("learner_step_seconds", learnerSeconds);
  }

  @Test
  void countsTrainedTrajectoriesFromTheEndOfTheWarmUp() {
    List<ObjectNode> rows = new ArrayList<>();
    // five slow warm-up steps (3 s), then eight of 0.25 s with 100 samples each; an evaluation row in between
    double t = 0;
    for (int s = 1; s <= 5; s++) {
      t += 0.6;
      rows.add(step(s, t, 100, 0.5));
    }
    rows.add(JSON.createObjectNode().put("type", "eval").put("step", 5).put("accuracy", 0.2));
    double[] learner = {0.20, 0.22, 0.21, 0.30, 0.19, 0.20, 0.23, 0.21};
    for (int s = 6; s <= 13; s++) {
      t += 0.25;
      rows.add(step(s, t, 100, learner[s - 6]));
    }
    RunBenchCommand.Steady steady = RunBenchCommand.Steady.of(rows);
    assertEquals(800 / 2.0, steady.trajectoriesPerSecond(), 1e-9); // whole run: 1,300 in 5 s
    assertEquals(210, steady.learnerStepMs(), 1e-9); // the upper median of the eight
  }

  @Test
  void aRunNoLongerThanItsWarmUpHasNoSteadyFigures() {
    List<ObjectNode> rows = new ArrayList<>();
    for (int s = 1; s <= 6; s++) {
      rows.add(step(s, s, 100, 0.5));
    }
    assertNull(RunBenchCommand.Steady.of(rows));
    assertNull(RunBenchCommand.Steady.of(List.of()));
  }
}
