package dev.nucleon.reward.math;

import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A number with an SI unit ({@code 0.42 \mathrm{km^{2}}}, {@code 981 \text{cm/s}^2}, {@code 1000 m},
 * {@code 3 m s^{-1}}): its number, the factor to the unit's coherent SI form and that form as powers of base units,
 * so {@code 1 km} and {@code 1000 m}, or {@code 1 L} and {@code 0.001 m^3}, compare equal. Units are products
 * (a space, {@code \cdot}, {@code *}) and quotients of prefixed SI units with integer powers; anything else is not a
 * quantity.
 *
 * @param number the number as written (LaTeX)
 * @param scale what one of the unit is in coherent SI units ({@code km^2}: 10^6)
 * @param dimension the coherent unit, base unit to power ({@code {m=1, s=-2}})
 * @param exact whether the number is an integer as written (no decimal point or exponent) and the unit's scale a
 *     power of ten, so the value is exact
 */
record Quantity(String number, double scale, Map<String, Integer> dimension, boolean exact) {

  /** A quantity is short: longer text is prose, and is not scanned (the patterns stay cheap on hostile input). */
  static final int MAX_CHARS = 80;

  /**
   * A unit: its factor to coherent SI units and its dimension in base units; {@code exact}: the factor is a power of
   * ten or an integer (a minute), so integer amounts convert exactly.
   */
  private record Unit(double factor, Map<String, Integer> dimension, boolean exact) {
    static Unit of(double factor, String... basePowers) {
      Map<String, Integer> d = new TreeMap<>();
      for (int i = 0; i < basePowers.length; i += 2) {
        d.put(basePowers[i], Integer.parseInt(basePowers[i + 1]));
      }
      double exponent = Math.log10(factor);
      boolean exact = Math.abs(exponent - Math.rint(exponent)) < 1e-12 || factor == Math.rint(factor);
      return new Unit(factor, d, exact);
    }
  }

  /** Units (minutes and hours beside SI's, as speeds use them); a prefix may precede any. */
  private static final Map<String, Unit> UNITS = Map.ofEntries(
      Map.entry("m", Unit.of(1, "m", "1")), Map.entry("g", Unit.of(1e-3, "kg", "1")),
      Map.entry("s", Unit.of(1, "s", "1")), Map.entry("min", Unit.of(60, "s", "1")),
      Map.entry("h", Unit.of(3600, "s", "1")), Map.entry("L", Unit.of(1e-3, "m", "3")),
      Map.entry("l", Unit.of(1e-3, "m", "3")), Map.entry("N", Unit.of(1, "kg", "1", "m", "1", "s", "-2")),
      Map.entry("J", Unit.of(1, "kg", "1", "m", "2", "s", "-2")),
      Map.entry("W", Unit.of(1, "kg", "1", "m", "2", "s", "-3")),
      Map.entry("Pa", Unit.of(1, "kg", "1", "m", "-1", "s", "-2")), Map.entry("Hz", Unit.of(1, "s", "-1")),
      Map.entry("A", Unit.of(1, "A", "1")), Map.entry("C", Unit.of(1, "A", "1", "s", "1")),
      Map.entry("V", Unit.of(1, "kg", "1", "m", "2", "s", "-3", "A", "-1")),
      Map.entry("\\Omega", Unit.of(1, "kg", "1", "m", "2", "s", "-3", "A", "-2")),
      Map.entry("K", Unit.of(1, "K", "1")), Map.entry("mol", Unit.of(1, "mol", "1")),
      Map.entry("eV", Unit.of(1.602176634e-19, "kg", "1", "m", "2", "s", "-2")));
  private static final Map<String, Double> PREFIXES = Map.ofEntries(Map.entry("T", 1e12), Map.entry("G", 1e9),
      Map.entry("M", 1e6), Map.entry("k", 1e3), Map.entry("h", 1e2), Map.entry("d", 1e-1), Map.entry("c", 1e-2),
      Map.entry("m", 1e-3), Map.entry("\\mu", 1e-6), Map.entry("μ", 1e-6), Map.entry("u", 1e-6),
      Map.entry("n", 1e-9), Map.entry("p", 1e-12));

  /**
   * A number (digits, a decimal point, {@code \times 10^{n}}, {@code e-n}) and the rest, the unit. Possessive: no
   * backtracking into the number or the spaces.
   */
  private static final Pattern QUANTITY = Pattern.compile(
      "((-?[\\d.,]++)(?:\\s*+(?:\\\\times|\\\\cdot|\\*|x)\\s*+10\\s*+\\^\\s*+\\{?\\s*+[-+]?\\d{1,3}+\\s*+\\}?"
          + "|[eE][-+]?\\d{1,3}+)?+)\\s*+(?:(?:\\\\,|\\\\;|\\\\ |~)\\s*+)*+(\\S.*+)");
  /** {@code \mathrm{...}} and its kin around a unit (one level of braces inside: {@code \mathrm{km^{2}}}). */
  private static final Pattern WRAPPER = Pattern.compile(
      "\\\\(?:mathrm|text|textrm|mbox|operatorname)\\s*+\\{([^{}]*+(?:\\{[^{}]*+\\}[^{}]*+)*+)\\}");
  /** One unit symbol with its power: {@code km}, {@code s^-2}, {@code \Omega}, {@code k\Omega}, {@code \mu m}. */
  private static final Pattern FACTOR = Pattern.compile(
      "([A-Za-zμ]?\\\\Omega|\\\\mu[A-Za-z]++|[A-Za-zμ]++)(?:\\^\\{?(-?\\d{1,2})\\}?)?+");

  /** The quantity {@code text} writes, if it is one. */
  static Optional<Quantity> parse(String text) {
    String t = text.strip();
    while (t.endsWith(".")) {
      t = t.substring(0, t.length() - 1).strip();
    }
    if (t.isEmpty() || t.length() > MAX_CHARS) {
      return Optional.empty();
    }
    Matcher q = QUANTITY.matcher(t);
    if (!q.matches()) {
      return Optional.empty();
    }
    String unit = q.group(3);
    Matcher w;
    while ((w = WRAPPER.matcher(unit)).find()) { // \mathrm{km^{2}}, \text{cm}/\text{s}^2
      unit = w.replaceFirst(Matcher.quoteReplacement(w.group(1)));
    }
    // between symbols a space or a thin space is a product: "m s^{-1}" is metres per second, not per millisecond
    unit = unit.replace("\\,", " ").replace("\\;", " ").replaceAll("(\\\\mu)\\s++(?=[A-Za-z])", "$1")
        .replace("\\cdot", "*").replace("{", "").replace("}", "")
        .strip().replaceAll("\\s*+([*/])\\s*+", "$1").replaceAll("\\s++", "*");
    double scale = 1;
    boolean exactUnit = true;
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
      Unit u = unit(f.group(1));
      if (u == null) {
        return Optional.empty();
      }
      int power = sign * (f.group(2) == null ? 1 : Integer.parseInt(f.group(2)));
      scale *= Math.pow(u.factor(), power);
      exactUnit &= u.exact();
      for (Map.Entry<String, Integer> d : u.dimension().entrySet()) {
        dimension.merge(d.getKey(), d.getValue() * power, Integer::sum);
      }
      at = f.end();
      sign = 1;
    }
    dimension.values().removeIf(p -> p == 0);
    // an integer as written: no decimal point in the digits and no e-notation (a "\\times 10^{n}" is exact)
    String number = q.group(1);
    boolean integer = !q.group(2).contains(".") && !number.matches("(?s).*\\d[eE][-+]?\\d.*");
    return dimension.isEmpty() ? Optional.empty()
        : Optional.of(new Quantity(number, scale, dimension, integer && exactUnit));
  }

  /** A unit symbol, with or without a prefix; null when it is none. */
  private static Unit unit(String symbol) {
    Unit plain = UNITS.get(symbol);
    if (plain != null) {
      return plain;
    }
    for (Map.Entry<String, Double> p : PREFIXES.entrySet()) {
      if (symbol.startsWith(p.getKey())) {
        Unit base = UNITS.get(symbol.substring(p.getKey().length()));
        if (base != null) {
          return new Unit(p.getValue() * base.factor(), base.dimension(), base.exact());
        }
      }
    }
    return null;
  }
}
