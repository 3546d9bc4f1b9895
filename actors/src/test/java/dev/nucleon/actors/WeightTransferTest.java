package dev.nucleon.actors;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.nucleon.model.io.HostTensor;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class WeightTransferTest {

  static Map<String, HostTensor> tensors() {
    Map<String, HostTensor> t = new LinkedHashMap<>();
    float[] a = new float[1000];
    float[] b = new float[37];
    for (int i = 0; i < a.length; i++) {
      a[i] = i * 0.5f - 3;
    }
    for (int i = 0; i < b.length; i++) {
      b[i] = -i;
    }
    t.put("a", new HostTensor("a", new long[] {10, 100}, a));
    t.put("b", new HostTensor("b", new long[] {37}, b));
    return t;
  }

  @Test
  void chunksArrivingInAnyOrderRebuildTheTensors() {
    WeightTransfer.Packed packed = WeightTransfer.pack(7, tensors(), 512);
    assertEquals(4148, packed.manifest().totalBytes());
    assertEquals(9, packed.manifest().chunks());
    WeightTransfer.Assembler in = new WeightTransfer.Assembler(packed.manifest());
    List<Integer> order = new ArrayList<>();
    for (int i; (i = in.nextToRequest()) >= 0; ) {
      order.add(i);
    }
    assertEquals(9, order.size());
    Collections.reverse(order);
    for (int i : order) {
      assertFalse(in.complete());
      in.accept(i, packed.chunk(i));
      in.accept(i, packed.chunk(i)); // a repeated chunk changes nothing
    }
    assertTrue(in.complete());
    Map<String, HostTensor> back = in.result();
    assertEquals(tensors(), back);
  }

  @Test
  void aCorruptChunkFailsTheChecksum() {
    WeightTransfer.Packed packed = WeightTransfer.pack(3, tensors(), 1024);
    WeightTransfer.Assembler in = new WeightTransfer.Assembler(packed.manifest());
    for (int i = 0; i < packed.manifest().chunks(); i++) {
      byte[] c = packed.chunk(i);
      if (i == 1) {
        c[5] ^= 1;
      }
      in.accept(i, c);
    }
    var e = assertThrows(IllegalStateException.class, in::result);
    assertTrue(e.getMessage().contains("checksum"), e.getMessage());
    assertThrows(IllegalStateException.class, () -> in.accept(99, new byte[0]));
    assertArrayEquals(packed.chunk(0), WeightTransfer.pack(3, tensors(), 1024).chunk(0));
  }
}
