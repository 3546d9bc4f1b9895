package dev.nucleon.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import ai.djl.ndarray.types.Shape;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Decoding token by token through the KV cache computes what a full forward pass computes. */
class KvCacheTest {

  @ParameterizedTest
  @ValueSource(strings = {"qwenLike", "llamaTied", "qwen3Like", "olmo2Like", "olmo3Like", "qwen3MoeLike",
      "ernieMoeLike", "deepseekLike"})
  void cachedDecodingMatchesFullForward(String shape) {
    Engines.start();
    LlamaConfig c = TinyModels.named(shape);
    int b = 3;
    int prompt = 5;
    int total = 12;
    SplittableRandom rng = new SplittableRandom(7);
    long[] seq = new long[b * total];
    for (int i = 0; i < seq.length; i++) {
      seq[i] = rng.nextInt(c.vocabSize());
    }
    try (NDManager m = NDManager.newBaseManager(); LlamaModel model = LlamaModel.random(c, m, 3)) {
      float[] full = model.logits(m.create(seq, new Shape(b, total))).toFloatArray();
      int v = c.vocabSize();
      double maxErr = 0;
      try (KvCache cache = new KvCache(m, c, b, total, ai.djl.ndarray.types.DataType.FLOAT32)) {
        long[] first = new long[b * prompt];
        long[] pos = new long[b * prompt];
        for (int i = 0; i < b; i++) {
          for (int t = 0; t < prompt; t++) {
            first[i * prompt + t] = seq[i * total + t];
            pos[i * prompt + t] = t;
          }
        }
        float[] pre = model.forward(m.create(first, new Shape(b, prompt)), m.create(pos, new Shape(b, prompt)),
            LlamaModel.causalMask(m, prompt), cache, false).toFloatArray();
        for (int i = 0; i < b; i++) {
          for (int t = 0; t < prompt; t++) {
            for (int k = 0; k < v; k++) {
              maxErr = Math.max(maxErr, Math.abs(pre[(i * prompt + t) * v + k] - full[(i * total + t) * v + k]));
            }
          }
        }
        for (int t = prompt; t < total; t++) {
          long[] tok = new long[b];
          long[] p = new long[b];
          for (int i = 0; i < b; i++) {
            tok[i] = seq[i * total + t];
            p[i] = t;
          }
          NDArray zeros = m.zeros(new Shape(1, 1, 1, t + 1));
          float[] step = model.forward(m.create(tok, new Shape(b, 1)), m.create(p, new Shape(b, 1)), zeros, cache,
              true).toFloatArray();
          for (int i = 0; i < b; i++) {
            for (int k = 0; k < v; k++) {
              maxErr = Math.max(maxErr, Math.abs(step[i * v + k] - full[(i * total + t) * v + k]));
            }
          }
        }
      }
      System.out.printf("%s: KV-cache vs full forward max abs error %.2e%n", shape, maxErr);
      assertTrue(maxErr < 1e-5, "max abs error " + maxErr);
    }
  }

  /**
   * A continuous batch's row and column moves happen in place: rows move up in order (a newcomer takes a row after
   * them), the batch shrinks to its first rows, and dropped front columns leave the rest where they were read from.
   */
  @Test
  void rowsAndColumnsMoveInPlace() {
    Engines.start();
    LlamaConfig c = TinyModels.qwenLike();
    int b = 4;
    int capacity = 8;
    try (NDManager m = NDManager.newBaseManager();
        KvCache cache = new KvCache(m, c, b, capacity, ai.djl.ndarray.types.DataType.FLOAT32)) {
      for (int l = 0; l < c.numLayers(); l++) {
        for (NDArray a : new NDArray[] {cache.keys(l), cache.values(l)}) {
          Ops.writeAlong(a, m.arange((float) a.size()).reshape(a.getShape()), 0, 0);
        }
      }
      float[][] keys = new float[b][];
      float[][] values = new float[b][];
      for (int r = 0; r < b; r++) {
        keys[r] = cache.keys(0).get(r).toFloatArray();
        values[r] = cache.values(0).get(r).toFloatArray();
      }
      float[] lastLayerRow3 = cache.values(c.numLayers() - 1).get(3).toFloatArray();
      cache.advance(capacity);
      cache.compactRows(new int[] {1, 3}, new int[] {0, 0});
      assertArrayEquals(lastLayerRow3, cache.values(c.numLayers() - 1).get(1).toFloatArray(), "every layer moves");
      assertArrayEquals(keys[1], cache.keys(0).get(0).toFloatArray());
      assertArrayEquals(keys[3], cache.keys(0).get(1).toFloatArray());
      assertArrayEquals(values[3], cache.values(0).get(1).toFloatArray());
      assertArrayEquals(keys[2], cache.keys(0).get(2).toFloatArray(), "a row not moved onto stays as it was");
      assertThrows(IllegalArgumentException.class, () -> cache.compactRows(new int[] {2, 1}, new int[] {0, 0}));
      assertThrows(IllegalArgumentException.class, () -> cache.compactRows(new int[] {4}, new int[] {0}));

      cache.keepRows(new int[] {1, 2}, new int[] {0, 0});
      assertEquals(new Shape(2, c.numKvHeads(), c.headDim(), capacity), cache.keys(0).getShape());
      assertArrayEquals(keys[3], cache.keys(0).get(0).toFloatArray());
      assertArrayEquals(keys[2], cache.keys(0).get(1).toFloatArray());

      // keys are [B, K, D, capacity] (columns last), values [B, K, capacity, D]
      float[] k = cache.keys(0).get(0).toFloatArray();
      float[] v = cache.values(0).get(0).toFloatArray();
      cache.dropFront(3);
      assertEquals(5, cache.length());
      float[] k2 = cache.keys(0).get(0).toFloatArray();
      float[] v2 = cache.values(0).get(0).toFloatArray();
      assertShifted(k, k2, v, v2, c, capacity, 3, 5);
      // a full cache dropping one column: moved through a copy instead of seven one-column moves
      cache.advance(3);
      k = cache.keys(0).get(1).toFloatArray();
      v = cache.values(0).get(1).toFloatArray();
      cache.dropFront(1);
      assertShifted(k, cache.keys(0).get(1).toFloatArray(), v, cache.values(0).get(1).toFloatArray(), c, capacity, 1,
          7);
    }
  }

  @Test
  void rowMovesAndDropsCopyOnlyTheColumnsTheRowsRead() {
    Engines.start();
    LlamaConfig c = TinyModels.qwenLike();
    int capacity = 10;
    try (NDManager m = NDManager.newBaseManager();
        KvCache cache = new KvCache(m, c, 4, capacity, ai.djl.ndarray.types.DataType.FLOAT32)) {
      for (int l = 0; l < c.numLayers(); l++) {
        for (NDArray a : new NDArray[] {cache.keys(l), cache.values(l)}) {
          Ops.writeAlong(a, m.arange((float) a.size()).reshape(a.getShape()), 0, 0);
        }
      }
      cache.advance(8);
      float[][] before = new float[4][];
      float[][] keysBefore = new float[4][];
      for (int r = 0; r < 4; r++) {
        before[r] = cache.values(0).get(r).toFloatArray(); // [K, capacity, D]
        keysBefore[r] = cache.keys(0).get(r).toFloatArray(); // [K, D, capacity]
      }
      // rows 2 and 3 move to 0 and 1, reading from columns 5 and 6: only those columns are copied
      cache.compactRows(new int[] {2, 3}, new int[] {5, 6});
      float[] row0 = cache.values(0).get(0).toFloatArray();
      float[] row1 = cache.values(0).get(1).toFloatArray();
      float[] keys0 = cache.keys(0).get(0).toFloatArray();
      int d = c.headDim();
      for (int row = 0; row < c.numKvHeads() * d; row++) {
        for (int col = 0; col < capacity; col++) {
          int at = row * capacity + col;
          assertEquals(col >= 5 && col < 8 ? keysBefore[2][at] : keysBefore[0][at], keys0[at], "key column " + col);
        }
      }
      for (int h = 0; h < c.numKvHeads(); h++) {
        for (int col = 0; col < capacity; col++) {
          for (int e = 0; e < d; e++) {
            int at = (h * capacity + col) * d + e;
            assertEquals(col >= 5 && col < 8 ? before[2][at] : before[0][at], row0[at], "row 0 column " + col);
            assertEquals(col >= 6 && col < 8 ? before[3][at] : before[1][at], row1[at], "row 1 column " + col);
          }
        }
      }
      // drop the first 4 columns; row 0 reads from column 5 on, row 1 from 6, rows 2 and 3 are idle (no block)
      float[] k0 = cache.keys(0).get(0).toFloatArray();
      float[] v0 = cache.values(0).get(0).toFloatArray();
      float[] k2 = cache.keys(0).get(2).toFloatArray();
      cache.dropFront(4, new int[] {0}, new int[] {2}, new int[] {5});
      assertEquals(4, cache.length());
      // columns [5, 8) of row 0 are now [1, 4)
      float[] k0After = cache.keys(0).get(0).toFloatArray();
      float[] v0After = cache.values(0).get(0).toFloatArray();
      for (int row = 0; row < c.numKvHeads() * d; row++) {
        for (int col = 1; col < 4; col++) {
          assertEquals(k0[row * capacity + col + 4], k0After[row * capacity + col], "key row " + row + " col " + col);
        }
      }
      for (int h = 0; h < c.numKvHeads(); h++) {
        for (int e = 0; e < d; e++) {
          assertEquals(v0[(h * capacity + 7) * d + e], v0After[(h * capacity + 3) * d + e]);
        }
      }
      assertArrayEquals(k2, cache.keys(0).get(2).toFloatArray(), "a row in no block is not moved");
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> cache.dropFront(2, new int[] {0}, new int[] {4}, new int[] {1}));
      assertTrue(e.getMessage().contains("from column 1 cannot drop the first 2"), e.getMessage());
    }
  }

  /** Columns [n, n + kept) of one row's keys and values before are columns [0, kept) after. */
  private static void assertShifted(float[] k, float[] k2, float[] v, float[] v2, LlamaConfig c, int capacity, int n,
      int kept) {
    int d = c.headDim();
    for (int row = 0; row < c.numKvHeads() * d; row++) {
      for (int col = 0; col < kept; col++) {
        assertEquals(k[row * capacity + col + n], k2[row * capacity + col], "key row " + row + " column " + col);
      }
    }
    for (int h = 0; h < c.numKvHeads(); h++) {
      for (int col = 0; col < kept; col++) {
        for (int e = 0; e < d; e++) {
          assertEquals(v[(h * capacity + col + n) * d + e], v2[(h * capacity + col) * d + e]);
        }
      }
    }
  }

  @Test
  void blocksOfRowsMustCoverTheBatchWithinTheFilledColumns() {
    Engines.start();
    LlamaConfig c = TinyModels.qwenLike();
    try (NDManager m = NDManager.newBaseManager();
        KvCache cache = new KvCache(m, c, 4, 8, ai.djl.ndarray.types.DataType.FLOAT32)) {
      cache.advance(5);
      cache.readInBlocks(new int[] {0, 3}, new int[] {3, 4}, new int[] {0, 5});
      assertArrayEquals(new long[] {0, 3}, cache.blockRows());
      assertEquals(4, cache.decodedRows());
      assertEquals(0, cache.decodedRowIndices().length, "every row decoded: written as a whole");
      cache.advance(1);
      assertEquals(0, cache.blockRows().length, "blocks apply to one forward pass");
      // rows 1 and 2 left out: the forward has the two others, in order
      cache.readInBlocks(new int[] {0, 3}, new int[] {1, 4}, new int[] {0, 2});
      assertEquals(2, cache.decodedRows());
      assertArrayEquals(new long[] {0, 3}, cache.decodedRowIndices());
      cache.advance(1);
      assertEquals(4, cache.decodedRows());
      assertThrows(IllegalArgumentException.class, () -> cache.readInBlocks(new int[] {0}, new int[] {3},
          new int[] {0, 1}));
      assertThrows(IllegalArgumentException.class, () -> cache.readInBlocks(new int[] {0, 2}, new int[] {3, 4},
          new int[] {0, 1}), "overlapping blocks");
      assertThrows(IllegalArgumentException.class, () -> cache.readInBlocks(new int[] {0}, new int[] {5},
          new int[] {0}), "past the batch");
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
          () -> cache.readInBlocks(new int[] {0}, new int[] {4}, new int[] {8}));
      assertTrue(e.getMessage().contains("from column 8") && e.getMessage().contains("length 7"), e.getMessage());
    }
  }
}
