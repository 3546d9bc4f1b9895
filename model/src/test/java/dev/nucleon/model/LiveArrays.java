package dev.nucleon.model;

import ai.djl.ndarray.BaseNDManager;
import ai.djl.ndarray.NDArray;
import ai.djl.ndarray.NDManager;
import java.util.Map;
import java.util.TreeMap;

/**
 * The arrays alive in every manager of the engine, from its root down, counted by shape and type: what a test of a
 * long-running loop compares before and after more of its steps. An array nobody closed is libtorch memory that
 * grows with the run, which nothing in the JVM sees.
 */
public final class LiveArrays {

  private LiveArrays() {}

  /** Live arrays by {@code "shape type"}. */
  public static Map<String, Integer> byShape() {
    BaseNDManager root;
    try (NDManager probe = NDManager.newBaseManager()) {
      root = (BaseNDManager) probe.getParentManager();
    }
    Map<String, Integer> out = new TreeMap<>();
    for (NDArray a : root.getManagedArrays()) {
      out.merge(a.getShape() + " " + a.getDataType(), 1, Integer::sum);
    }
    return out;
  }
}
