package dev.nucleon.learner;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

class LrScheduleTest {

  @Test
  void warmupThenShapes() {
    LrSchedule constant = LrSchedule.constant(4);
    assertEquals(0.25, constant.multiplier(0));
    assertEquals(1.0, constant.multiplier(3));
    assertEquals(1.0, constant.multiplier(1000));
    LrSchedule linear = new LrSchedule(LrSchedule.Type.LINEAR, 0, 10, 0.1);
    assertEquals(1.0, linear.multiplier(0));
    assertEquals(0.55, linear.multiplier(5), 1e-12);
    assertEquals(0.1, linear.multiplier(10), 1e-12);
    assertEquals(0.1, linear.multiplier(50), 1e-12);
    LrSchedule cosine = new LrSchedule(LrSchedule.Type.COSINE, 2, 12, 0.0);
    assertEquals(0.5, cosine.multiplier(0));
    assertEquals(1.0, cosine.multiplier(2), 1e-12);
    assertEquals(0.5, cosine.multiplier(7), 1e-12);
    assertEquals(0.0, cosine.multiplier(12), 1e-12);
  }

  @Test
  void badSchedulesAreRefused() {
    assertThrows(IllegalArgumentException.class, () -> new LrSchedule(LrSchedule.Type.COSINE, 10, 10, 0));
    assertThrows(IllegalArgumentException.class, () -> new LrSchedule(LrSchedule.Type.LINEAR, 0, 10, 2));
  }
}
