package dev.nucleon.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

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

  /** Two processors' entries as Linux writes them (abridged); only the flags decide. */
  private static String cpuinfo(String flags) {
    String entry = "processor\t: %d\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: %s\n"
        + "bugs\t\t: sysret_ss_attrs\n\n";
    return String.format(entry, 0, flags) + String.format(entry, 1, flags);
  }

  @Test
  void aCpuHasBfloat16UnitsOnlyWithAvx512Bf16OrAmx() {
    String base = "fpu vme sse sse2 avx avx2 fma avx512f avx512bw avx512_vnni";
    assertFalse(Engines.cpuHasBf16Units(cpuinfo(base)), "AVX-512 without its bfloat16 extension");
    assertTrue(Engines.cpuHasBf16Units(cpuinfo(base + " avx512_bf16 avx512_vp2intersect")), "Zen 4/5, Cooper Lake");
    assertTrue(Engines.cpuHasBf16Units(cpuinfo(base + " amx_bf16 amx_tile amx_int8")), "Sapphire Rapids");
    assertFalse(Engines.cpuHasBf16Units(cpuinfo(base + " avx512_bf16x")), "a flag is matched whole");
    assertFalse(Engines.cpuHasBf16Units("processor\t: 0\nFeatures\t: fp asimd bf16\n"),
        "an Arm CPU's bfloat16 feature is not looked for (not measured)");
    assertFalse(Engines.cpuHasBf16Units(""));
  }

  @Test
  void bfloat16UnitsAreAskedOfWellFormedDevicesOnly() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Engines.hasBf16Units("tpu"));
    assertEquals("device 'tpu': expected cpu, gpu or gpu:N", e.getMessage());
    assertThrows(IllegalArgumentException.class, () -> Engines.hasBf16Units("gpu:x"));
    assertThrows(IllegalArgumentException.class, () -> Engines.hasBf16Units("gpu:-1"), "not the CPU");
    // a GPU this machine lacks has none (no CUDA on CPU-only machines)
    assertFalse(Engines.hasBf16Units("gpu:64"));
  }
}
