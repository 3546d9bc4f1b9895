package dev.nucleon.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

class EnginesTest {

  @Test
  void threadCountAppliesWhenTheEngineIsAlreadyRunning() {
    Engines.start();
    int before = Engines.intraOpThreads();
    int other = before == 1 ? 2 : 1;
    try {
      Engines.intraOpThreads(other);
      assertEquals(other, Engines.intraOpThreads());
    } finally {
      Engines.intraOpThreads(before);
    }
    assertEquals(before, Engines.intraOpThreads());
  }

  @Test
  void aThreadCountBelowOneIsRefused() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Engines.intraOpThreads(0));
    assertEquals("intra-op threads must be >= 1, got 0", e.getMessage());
  }
}
