package dev.nucleon.rollout.data;

import java.beans.FeatureDescriptor;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import jinjava.javax.el.ELContext;
import jinjava.javax.el.ELResolver;

/**
 * The Python {@code str} and {@code dict} methods Hugging Face chat templates call ({@code content.strip()},
 * {@code role.startswith('a')}, {@code content.split('</think>')[-1]}, {@code message.get('x', '')}), which Jinjava
 * (a Java engine) would otherwise look up as Java methods. Placed before Jinjava's own resolver; anything it does not
 * know falls through.
 */
final class PythonMethods extends ELResolver {

  @Override
  public Object invoke(ELContext context, Object base, Object method, Class<?>[] paramTypes, Object[] params) {
    if (method == null) {
      return null;
    }
    Object[] args = params == null ? new Object[0] : params;
    String name = method.toString();
    if (base instanceof String s) {
      Object result = string(s, name, args);
      if (result != NOT_HANDLED) {
        context.setPropertyResolved(true);
        return result;
      }
    } else if (base instanceof Map<?, ?> map) {
      Object result = dict(map, name, args);
      if (result != NOT_HANDLED) {
        context.setPropertyResolved(true);
        return result;
      }
    }
    return null;
  }

  private static final Object NOT_HANDLED = new Object();

  private static Object string(String s, String name, Object[] a) {
    switch (name) {
      case "startswith":
        return a.length >= 1 ? anyMatch(a[0], p -> s.startsWith(p)) : NOT_HANDLED;
      case "endswith":
        return a.length >= 1 ? anyMatch(a[0], p -> s.endsWith(p)) : NOT_HANDLED;
      case "strip":
        return strip(s, a.length > 0 ? a[0] : null, true, true);
      case "lstrip":
        return strip(s, a.length > 0 ? a[0] : null, true, false);
      case "rstrip":
        return strip(s, a.length > 0 ? a[0] : null, false, true);
      case "split":
        return split(s, a.length > 0 && a[0] != null ? a[0].toString() : null,
            a.length > 1 ? ((Number) a[1]).intValue() : -1);
      case "lower":
        return a.length == 0 ? s.toLowerCase(Locale.ROOT) : NOT_HANDLED;
      case "upper":
        return a.length == 0 ? s.toUpperCase(Locale.ROOT) : NOT_HANDLED;
      case "title":
        return a.length == 0 ? title(s) : NOT_HANDLED;
      case "capitalize":
        return a.length == 0 ? (s.isEmpty() ? s
            : s.substring(0, 1).toUpperCase(Locale.ROOT) + s.substring(1).toLowerCase(Locale.ROOT)) : NOT_HANDLED;
      case "replace":
        return a.length == 2 ? s.replace(String.valueOf(a[0]), String.valueOf(a[1])) : NOT_HANDLED;
      case "find":
        return a.length == 1 ? (long) s.indexOf(String.valueOf(a[0])) : NOT_HANDLED;
      case "count":
        return a.length == 1 ? count(s, String.valueOf(a[0])) : NOT_HANDLED;
      case "join":
        if (a.length == 1 && a[0] instanceof Collection<?> items) {
          List<String> parts = new ArrayList<>();
          for (Object o : items) {
            parts.add(String.valueOf(o));
          }
          return String.join(s, parts);
        }
        return NOT_HANDLED;
      default:
        return NOT_HANDLED;
    }
  }

  private static Object dict(Map<?, ?> map, String name, Object[] a) {
    switch (name) {
      case "get":
        if (a.length == 2) {
          return map.containsKey(a[0]) ? map.get(a[0]) : a[1];
        }
        return NOT_HANDLED;
      case "keys":
        return a.length == 0 ? new ArrayList<>(map.keySet()) : NOT_HANDLED;
      case "values":
        return a.length == 0 ? new ArrayList<>(map.values()) : NOT_HANDLED;
      default:
        return NOT_HANDLED;
    }
  }

  private interface StringTest {
    boolean test(String s);
  }

  private static boolean anyMatch(Object arg, StringTest test) {
    if (arg instanceof Collection<?> options) {
      for (Object o : options) {
        if (test.test(String.valueOf(o))) {
          return true;
        }
      }
      return false;
    }
    return test.test(String.valueOf(arg));
  }

  private static String strip(String s, Object chars, boolean left, boolean right) {
    String set = chars == null ? null : chars.toString();
    int start = 0;
    int end = s.length();
    while (left && start < end && stripped(s.charAt(start), set)) {
      start++;
    }
    while (right && end > start && stripped(s.charAt(end - 1), set)) {
      end--;
    }
    return s.substring(start, end);
  }

  private static boolean stripped(char c, String set) {
    return set == null ? Character.isWhitespace(c) : set.indexOf(c) >= 0;
  }

  private static List<String> split(String s, String sep, int maxSplit) {
    List<String> out = new ArrayList<>();
    if (sep == null) {
      String rest = s.strip();
      while (!rest.isEmpty()) {
        if (maxSplit >= 0 && out.size() == maxSplit) {
          out.add(rest);
          return out;
        }
        int i = 0;
        while (i < rest.length() && !Character.isWhitespace(rest.charAt(i))) {
          i++;
        }
        out.add(rest.substring(0, i));
        rest = rest.substring(i).stripLeading();
      }
      return out;
    }
    if (sep.isEmpty()) {
      throw new IllegalArgumentException("split: empty separator");
    }
    int from = 0;
    while (maxSplit < 0 || out.size() < maxSplit) {
      int i = s.indexOf(sep, from);
      if (i < 0) {
        break;
      }
      out.add(s.substring(from, i));
      from = i + sep.length();
    }
    out.add(s.substring(from));
    return out;
  }

  private static String title(String s) {
    StringBuilder out = new StringBuilder(s.length());
    boolean previousLetter = false;
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      out.append(previousLetter ? Character.toLowerCase(c) : Character.toUpperCase(c));
      previousLetter = Character.isLetter(c);
    }
    return out.toString();
  }

  private static long count(String s, String sub) {
    if (sub.isEmpty()) {
      return s.length() + 1L;
    }
    long n = 0;
    for (int i = s.indexOf(sub); i >= 0; i = s.indexOf(sub, i + sub.length())) {
      n++;
    }
    return n;
  }

  @Override
  public Class<?> getCommonPropertyType(ELContext context, Object base) {
    return null;
  }

  @Override
  public Iterator<FeatureDescriptor> getFeatureDescriptors(ELContext context, Object base) {
    return null;
  }

  @Override
  public Class<?> getType(ELContext context, Object base, Object property) {
    return null;
  }

  @Override
  public Object getValue(ELContext context, Object base, Object property) {
    return null;
  }

  @Override
  public boolean isReadOnly(ELContext context, Object base, Object property) {
    return true;
  }

  @Override
  public void setValue(ELContext context, Object base, Object property, Object value) {}
}
