package dev.nucleon.actors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.types.DataType;
import com.typesafe.config.ConfigException;
import dev.nucleon.model.Engines;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The type settings: f32, bf16, or auto, which each node decides on its own hardware. */
class RunSettingsTest {

  private static final DataType CPU_AUTO = Engines.hasBf16Units("cpu") ? DataType.BFLOAT16 : DataType.FLOAT32;

  private static RunSettings with(String... keyValues) {
    Map<String, String> o = TestRuns.small();
    for (int i = 0; i < keyValues.length; i += 2) {
      o.put(keyValues[i], keyValues[i + 1]);
    }
    return TestRuns.settings(o);
  }

  @Test
  void autoIsBfloat16WhereTheDeviceHasBfloat16Units() {
    RunSettings s = with("nucleon.learner.dtype", "auto", "nucleon.rollout.dtype", "auto");
    assertEquals(CPU_AUTO, s.learner().dtype());
    assertEquals(CPU_AUTO, s.rollout().dtype());
    // a rollout type decided per worker travels in float32, whatever this node decided
    assertEquals(DataType.FLOAT32, s.learner().weightDtype());
    assertEquals(DataType.BFLOAT16, with("nucleon.rollout.dtype", "bf16").learner().weightDtype());
  }

  @Test
  void theQuickstartLetsTheHardwareChooseItsLearnersType() {
    Map<String, String> o = TestRuns.small();
    o.remove("nucleon.learner.dtype");
    RunSettings s = TestRuns.settings(o);
    assertEquals(CPU_AUTO, s.learner().dtype());
    assertEquals(DataType.FLOAT32, s.rollout().dtype());
  }

  @Test
  void rolloutWorkersReorderTheirWeightsUnlessToldNot() {
    assertTrue(with().rollout().reorderWeights());
    assertEquals(false, with("nucleon.rollout.reorder-weights", "false").rollout().reorderWeights());
    ConfigException e = assertThrows(ConfigException.class, () -> with("nucleon.rollout.reorder-weights", "maybe"));
    assertTrue(e.getMessage().contains("nucleon.rollout.reorder-weights"), e.getMessage());
  }

  @Test
  void anUnknownTypeIsRefusedWithItsKeyAndTheChoices() {
    ConfigException e = assertThrows(ConfigException.class, () -> with("nucleon.learner.dtype", "fp16"));
    assertTrue(e.getMessage().contains("nucleon.learner.dtype") && e.getMessage().contains("fp16")
        && e.getMessage().contains("f32 or bf16 (or auto)"), e.getMessage());
    e = assertThrows(ConfigException.class, () -> with("nucleon.rollout.dtype", "half"));
    assertTrue(e.getMessage().contains("nucleon.rollout.dtype"), e.getMessage());
  }

  @Test
  void weightDeltasNeedBfloat16OnTheWireEvenWhenTheRolloutTypeIsAuto() {
    ConfigException e = assertThrows(ConfigException.class,
        () -> with("nucleon.rollout.dtype", "auto", "nucleon.learner.weight-delta-every", "4"));
    assertTrue(e.getMessage().contains("nucleon.learner.weight-delta-every"), e.getMessage());
    assertEquals(DataType.BFLOAT16, with("nucleon.rollout.dtype", "auto", "nucleon.learner.weight-dtype", "bf16",
        "nucleon.learner.weight-delta-every", "4").learner().weightDtype());
  }
}
