package dev.nucleon.actors.serialization;

import java.lang.reflect.Array;
import java.lang.reflect.RecordComponent;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;

/**
 * Structural equality for test round trips: records component by component, arrays by content (floats and doubles
 * bit for bit, so NaN equals NaN), lists in order, maps and sets by content, everything else by {@code equals}.
 */
final class DeepEquals {
  private DeepEquals() {}

  /** Throws an AssertionError naming the first difference (its path) when {@code a} and {@code b} differ. */
  static void assertDeepEquals(Object expected, Object actual) {
    String diff = difference("value", expected, actual);
    if (diff != null) {
      throw new AssertionError(diff);
    }
  }

  /** The path and values of the first difference, or {@code null} when equal. */
  static String difference(String path, Object a, Object b) {
    if (a == b) {
      return null;
    }
    if (a == null || b == null) {
      return path + ": " + show(a) + " vs " + show(b);
    }
    if (a.getClass().isArray()) {
      if (!b.getClass().isArray() || a.getClass().getComponentType() != b.getClass().getComponentType()) {
        return path + ": " + a.getClass().getTypeName() + " vs " + b.getClass().getTypeName();
      }
      int n = Array.getLength(a);
      if (n != Array.getLength(b)) {
        return path + ": length " + n + " vs " + Array.getLength(b);
      }
      for (int i = 0; i < n; i++) {
        String d = difference(path + "[" + i + "]", Array.get(a, i), Array.get(b, i));
        if (d != null) {
          return d;
        }
      }
      return null;
    }
    if (a instanceof Record) {
      if (a.getClass() != b.getClass()) {
        return path + ": " + a.getClass().getName() + " vs " + b.getClass().getName();
      }
      for (RecordComponent c : a.getClass().getRecordComponents()) {
        try {
          c.getAccessor().setAccessible(true);
          String d = difference(path + "." + c.getName(), c.getAccessor().invoke(a), c.getAccessor().invoke(b));
          if (d != null) {
            return d;
          }
        } catch (ReflectiveOperationException ex) {
          throw new IllegalStateException(ex);
        }
      }
      return null;
    }
    if (a instanceof List<?> la && b instanceof List<?> lb) {
      if (la.size() != lb.size()) {
        return path + ": size " + la.size() + " vs " + lb.size();
      }
      Iterator<?> ia = la.iterator();
      Iterator<?> ib = lb.iterator();
      for (int i = 0; ia.hasNext(); i++) {
        String d = difference(path + "[" + i + "]", ia.next(), ib.next());
        if (d != null) {
          return d;
        }
      }
      return null;
    }
    if (a instanceof Map<?, ?> ma && b instanceof Map<?, ?> mb) {
      if (!ma.keySet().equals(mb.keySet())) {
        return path + ": keys " + ma.keySet() + " vs " + mb.keySet();
      }
      for (Map.Entry<?, ?> e : ma.entrySet()) {
        String d = difference(path + "[" + e.getKey() + "]", e.getValue(), mb.get(e.getKey()));
        if (d != null) {
          return d;
        }
      }
      return null;
    }
    if (a instanceof Set<?> && b instanceof Set<?>) {
      return a.equals(b) ? null : path + ": " + a + " vs " + b;
    }
    if (a instanceof Optional<?> oa && b instanceof Optional<?> ob) {
      return difference(path + ".get", oa.orElse(null), ob.orElse(null));
    }
    if (a instanceof java.util.Collection<?> ca && b instanceof java.util.Collection<?> cb) {
      return difference(path, List.copyOf(ca), List.copyOf(cb));
    }
    return Objects.equals(a, b) ? null : path + ": " + show(a) + " vs " + show(b);
  }

  private static String show(Object o) {
    return o == null ? "null" : o + " (" + o.getClass().getName() + ")";
  }
}
