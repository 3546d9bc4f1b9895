package dev.nucleon.reward.math;

import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A number with an SI unit ({@code 0.42 \mathrm{km^{2}}}, {@code 981 \text{cm/s}^2}, {@code 1000 m}): its number,
 * the factor to the unit's coherent SI form and that form, so {@code 1 km} and {@code 1000 m} compare equal. Units are
 * products and quotients of prefixed SI units with integer powers; anything else is not a quantity.
 *
 * @param number the number as written (LaTeX)
 * @param scale what one of the unit is in the coherent SI unit ({@code km^2}: 10^6)
 * @param dimension the coherent SI unit, base symbol to power ({@code {m=1, s=-2}})
 */
record Quantity(String number, double scale, Map<String, Integer> dimension) {

  /** Units a prefix may precede, as coherent units: symbol to (factor, base symbol). */
  private static final Map<String, Object[]> UNITS = Map.ofEntries(
      Map.entry("m", new Object[] {1.0, "m"}), Map.entry("g", new Object[] {1e-3, "kg"}),
      Map.entry("s", new Object[] {1.0, "s"}), Map.entry("L", new Object[] {1e-3, "m3"}),
      Map.entry("l", new Object[] {1e-3, "m3"}), Map.entry("N", new Object[] {1.0, "N"}),
      Map.entry("J", new Object[] {1.0, "J"}), Map.entry("W", new Object[] {1.0, "W"}),
      Map.entry("Pa", new Object[] {1.0, "Pa"}), Map.entry("Hz", new Object[] {1.0, "Hz"}),
      Map.entry("V", new Object[] {1.0, "V"}), Map.entry("A", new Object[] {1.0, "A"}),
      Map.entry("K", new Object[] {1.0, "K"}), Map.entry("mol", new Object[] {1.0, "mol"}),
      Map.entry("eV", new Object[] {1.602176634e-19, "J"}), Map.entry("C", new Object[] {1.0, "C"}),
      Map.entry("\\Omega", new Object[] {1.0, "Ohm"}));
  private static final Map<String, Double> PREFIXES = Map.ofEntries(Map.entry("T", 1e12), Map.entry("G", 1e9),
      Map.entry("M", 1e6), Map.entry("k", 1e3), Map.entry("h", 1e2), Map.entry("d", 1e-1), Map.entry("c", 1e-2),
      Map.entry("m", 1e-3), Map.entry("\\mu", 1e-6), Map.entry("μ", 1e-6), Map.entry("u", 1e-6),
      Map.entry("n", 1e-9), Map.entry("p", 1e-12));

  /** A number (digits, a decimal point, {@code \times 10^{n}}, {@code e-n}) followed by a unit. */
  private static final Pattern QUANTITY = Pattern.compile(
      "^\\s*(-?[\\d.,]+(?:\\s*(?:\\\\times|\\\\cdot|\\*|x)\\s*10\\s*\\^\\s*\\{?\\s*[-+]?\\d+\\s*\\}?|[eE][-+]?\\d+)?)"
          + "\\s*(?:\\\\,|\\\\;|\\\\ |~)*\\s*(.+?)\\s*\\.?\\s*$");
  /** {@code \mathrm{...}} and its kin around a unit (one level of braces inside: {@code \mathrm{km^{2}}}). */
  private static final Pattern WRAPPER = Pattern.compile(
      "\\\\(?:mathrm|text|textrm|mbox|operatorname)\\s*\\{([^{}]*(?:\\{[^{}]*\\}[^{}]*)*)\\}");
  /** One unit symbol with its power: {@code km}, {@code s^-2}, {@code \Omega}, {@code \mu m}. */
  private static final Pattern FACTOR = Pattern.compile(
      "(\\\\Omega|\\\\mu[A-Za-z]+|[A-Za-zμ]+)(?:\\^\\{?(-?\\d+)\\}?)?");

  /** The quantity {@code text} writes, if it is one. */
  static Optional<Quantity> parse(String text) {
    Matcher q = QUANTITY.matcher(text);
    if (!q.matches()) {
      return Optional.empty();
    }
    String unit = q.group(2);
    Matcher w;
    while ((w = WRAPPER.matcher(unit)).find()) { // \mathrm{km^{2}}, \text{cm}/\text{s}^2
      unit = w.replaceFirst(Matcher.quoteReplacement(w.group(1)));
    }
    unit = unit.replace(" ", "").replace("{", "").replace("}", "").replace("\\cdot", "*");
    double scale = 1;
    Map<String, Integer> dimension = new TreeMap<>();
    int sign = 1;
    int at = 0;
    while (at < unit.length()) {
      char c = unit.charAt(at);
      if (c == '/' || c == '*') {
        sign = c == '/' ? -1 : 1;
        at++;
        continue;
      }
      Matcher f = FACTOR.matcher(unit).region(at, unit.length());
      if (!f.lookingAt()) {
        return Optional.empty();
      }
      Object[] u = unit(f.group(1));
      if (u == null) {
        return Optional.empty();
      }
      int power = sign * (f.group(2) == null ? 1 : Integer.parseInt(f.group(2)));
      scale *= Math.pow((double) u[0], power);
      dimension.merge((String) u[1], power, Integer::sum);
      at = f.end();
      sign = 1;
    }
    dimension.values().removeIf(p -> p == 0);
    return dimension.isEmpty() ? Optional.empty() : Optional.of(new Quantity(q.group(1), scale, dimension));
  }

  /** A unit symbol, with or without a prefix: its factor and coherent unit; null when it is none. */
  private static Object[] unit(String symbol) {
    Object[] plain = UNITS.get(symbol);
    if (plain != null) {
      return plain;
    }
    for (Map.Entry<String, Double> p : PREFIXES.entrySet()) {
      if (symbol.startsWith(p.getKey())) {
        Object[] base = UNITS.get(symbol.substring(p.getKey().length()));
        if (base != null) {
          return new Object[] {p.getValue() * (double) base[0], base[1]};
        }
      }
    }
    return null;
  }
}
