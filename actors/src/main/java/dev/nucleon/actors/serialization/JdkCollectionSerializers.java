package dev.nucleon.actors.serialization;

import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.Serializer;
import com.esotericsoftware.kryo.io.Input;
import com.esotericsoftware.kryo.io.Output;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.LinkedList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;

/**
 * Kryo serializers for the JDK's hidden immutable and unmodifiable collection classes (what {@code List.of},
 * {@code Map.copyOf}, {@code Stream.toList}, {@code Collections.unmodifiableMap} return). Kryo's field serializer
 * cannot rebuild them on Java 17 (their fields are closed to reflection), so they are written as a plain size and
 * elements and read back through the public factory that makes an equal, equally unmodifiable collection.
 */
final class JdkCollectionSerializers {
  private JdkCollectionSerializers() {}

  /** Writes a collection as size + elements (each with its class), rebuilds it with {@code rebuild}. */
  static final class CollectionAsElements<C extends Collection<?>> extends Serializer<C> {
    private final Function<Object[], C> rebuild;

    CollectionAsElements(Function<Object[], C> rebuild) {
      super(false, true);
      this.rebuild = rebuild;
    }

    @Override
    public void write(Kryo kryo, Output output, C collection) {
      output.writeVarInt(collection.size(), true);
      for (Object element : collection) {
        kryo.writeClassAndObject(output, element);
      }
    }

    @Override
    public C read(Kryo kryo, Input input, Class<? extends C> type) {
      int size = input.readVarInt(true);
      Object[] elements = new Object[size];
      for (int i = 0; i < size; i++) {
        elements[i] = kryo.readClassAndObject(input);
      }
      return rebuild.apply(elements);
    }
  }

  /** Writes a map as size + key/value pairs (each with its class) in iteration order, rebuilds it. */
  static final class MapAsEntries<M extends Map<?, ?>> extends Serializer<M> {
    private final Function<LinkedHashMap<Object, Object>, M> rebuild;

    MapAsEntries(Function<LinkedHashMap<Object, Object>, M> rebuild) {
      super(false, true);
      this.rebuild = rebuild;
    }

    @Override
    public void write(Kryo kryo, Output output, M map) {
      output.writeVarInt(map.size(), true);
      for (Map.Entry<?, ?> e : map.entrySet()) {
        kryo.writeClassAndObject(output, e.getKey());
        kryo.writeClassAndObject(output, e.getValue());
      }
    }

    @Override
    public M read(Kryo kryo, Input input, Class<? extends M> type) {
      int size = input.readVarInt(true);
      LinkedHashMap<Object, Object> entries = new LinkedHashMap<>(Math.max(16, (int) (size / 0.75f) + 1));
      for (int i = 0; i < size; i++) {
        Object key = kryo.readClassAndObject(input);
        entries.put(key, kryo.readClassAndObject(input));
      }
      return rebuild.apply(entries);
    }
  }

  /** {@code List.of} / {@code List.copyOf} / {@code Stream.toList} (the last may hold nulls, List.of may not). */
  static Serializer<List<Object>> immutableList() {
    return new CollectionAsElements<>(elements -> hasNull(elements)
        ? Collections.unmodifiableList(Arrays.asList(elements))
        : List.of(elements));
  }

  /** {@code List.of(...).subList(...)}: comes back as a sub-list of an immutable list. */
  static Serializer<List<Object>> immutableSubList() {
    return new CollectionAsElements<>(elements -> hasNull(elements)
        ? Collections.unmodifiableList(Arrays.asList(elements))
        : List.of(elements).subList(0, elements.length));
  }

  /** {@code ArrayList.subList(...)}: comes back as a (modifiable) sub-list of a fresh ArrayList. */
  static Serializer<List<Object>> arrayListSubList() {
    return new CollectionAsElements<>(elements -> new ArrayList<>(Arrays.asList(elements)).subList(0, elements.length));
  }

  /** {@code Set.of} / {@code Set.copyOf}. */
  static Serializer<Set<Object>> immutableSet() {
    return new CollectionAsElements<>(Set::of);
  }

  /** {@code Map.of} / {@code Map.copyOf} / {@code Map.ofEntries}. */
  static Serializer<Map<Object, Object>> immutableMap() {
    return new MapAsEntries<>(Map::copyOf);
  }

  /** {@code Collections.unmodifiableList} over a random-access list. */
  static Serializer<List<Object>> unmodifiableRandomAccessList() {
    return new CollectionAsElements<>(elements -> Collections.unmodifiableList(new ArrayList<>(Arrays.asList(elements))));
  }

  /** {@code Collections.unmodifiableList} over a sequential list. */
  static Serializer<List<Object>> unmodifiableSequentialList() {
    return new CollectionAsElements<>(elements -> Collections.unmodifiableList(new LinkedList<>(Arrays.asList(elements))));
  }

  /** {@code Collections.unmodifiableSet}; iteration order is kept. */
  static Serializer<Set<Object>> unmodifiableSet() {
    return new CollectionAsElements<>(elements -> Collections.unmodifiableSet(new LinkedHashSet<>(Arrays.asList(elements))));
  }

  /** {@code Collections.unmodifiableCollection}; comes back as an unmodifiable list view. */
  static Serializer<Collection<Object>> unmodifiableCollection() {
    return new CollectionAsElements<>(elements -> Collections.unmodifiableCollection(new ArrayList<>(Arrays.asList(elements))));
  }

  /** {@code Collections.unmodifiableMap}; iteration order is kept (a LinkedHashMap underneath). */
  static Serializer<Map<Object, Object>> unmodifiableMap() {
    return new MapAsEntries<>(Collections::unmodifiableMap);
  }

  private static boolean hasNull(Object[] elements) {
    for (Object e : elements) {
      if (e == null) {
        return true;
      }
    }
    return false;
  }
}
