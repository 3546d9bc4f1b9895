package dev.nucleon.actors.serialization;

import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.Registration;
import com.esotericsoftware.kryo.Serializer;
import com.esotericsoftware.kryo.serializers.DefaultSerializers;
import com.esotericsoftware.kryo.util.DefaultClassResolver;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.core.rollout.FinishReason;
import dev.nucleon.core.rollout.PromptGroup;
import dev.nucleon.core.rollout.ScoredTrajectory;
import dev.nucleon.core.rollout.Trajectory;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.LinkedList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.UUID;
import java.util.function.Function;
import java.util.function.Supplier;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;

/**
 * The one place where every class that crosses nodes is registered with Kryo, in a fixed order. A class's Kryo id
 * is {@link #FIRST_ID} plus its position in {@link #entries()}, so two JVMs running the same build agree on every
 * id, and the registration list's {@link #fingerprint(List) fingerprint} travels as the Pekko manifest of every
 * message so that two builds that disagree fail loudly instead of decoding garbage.
 *
 * <p>Registration is required: serializing a class that is not listed here fails with a message naming the class
 * (never a fallback to Java serialization, which is switched off in reference.conf).
 */
public final class KryoRegistrations {
  /** The Kryo id of the first entry. Kryo's own built-in registrations (primitives, String, ...) use 0..9. */
  public static final int FIRST_ID = 32;

  /**
   * One registration.
   *
   * @param type the class, or for a family the supertype (interface or abstract class) whose every subclass travels
   *     under this one id and is written and read by this entry's serializer
   * @param family whether subclasses of {@code type} use this registration
   * @param serializer builds the entry's serializer for a given actor system (which may be {@code null} outside an
   *     actor system); {@code null} means Kryo's default serializer for the class (records: Kryo's
   *     RecordSerializer, enums: by ordinal, arrays, ArrayList/HashMap, Optional, java.time)
   */
  public record Entry(Class<?> type, boolean family, Function<ActorSystem<?>, Serializer<?>> serializer) {
    public Entry {
      Objects.requireNonNull(type, "type");
    }

    /** A class written by Kryo's default serializer for it (records, enums, arrays, ...). */
    public static Entry of(Class<?> type) {
      return new Entry(type, false, null);
    }

    /** A class written by the given serializer. */
    public static Entry of(Class<?> type, Supplier<Serializer<?>> serializer) {
      return new Entry(type, false, system -> serializer.get());
    }

    /** Every subclass of {@code supertype} written by one serializer under one id. */
    public static Entry family(Class<?> supertype, Function<ActorSystem<?>, Serializer<?>> serializer) {
      return new Entry(supertype, true, Objects.requireNonNull(serializer, "serializer"));
    }
  }

  private static final List<Entry> ENTRIES = build();

  private KryoRegistrations() {}

  /*
   * THE REGISTRATION LIST. Ids are positions: NEVER reorder, remove or insert in the middle; only append at the
   * end (in the last section). Every entry needs a sample instance in KryoSamples
   * (actors/src/test/java/dev/nucleon/actors/serialization/KryoSamples.java): KryoRegistrationsTest fails for any
   * registered class without one, and round-trips every sample through the real Pekko serialization.
   *
   * A record is written component by component (Kryo's RecordSerializer through its canonical constructor), so the
   * classes of its components must be registered too: nested records, enums, arrays, and the runtime classes of
   * List/Map/Set fields (List.of, Map.copyOf, ArrayList, ... are all here already). A typed ActorRef field needs
   * nothing more: every ActorRef class travels under the one ActorRef entry.
   */
  private static List<Entry> build() {
    List<Entry> e = new ArrayList<>();

    // --- JDK arrays
    e.add(Entry.of(byte[].class));
    e.add(Entry.of(int[].class));
    e.add(Entry.of(long[].class));
    e.add(Entry.of(float[].class, FloatArraySerializer::new)); // Kryo's format, bulk copies on ByteBuffers
    e.add(Entry.of(double[].class));
    e.add(Entry.of(boolean[].class));
    e.add(Entry.of(String[].class));

    // --- JDK mutable collections (Kryo's collection and map serializers)
    e.add(Entry.of(ArrayList.class));
    e.add(Entry.of(HashMap.class));
    e.add(Entry.of(LinkedHashMap.class));
    e.add(Entry.of(HashSet.class));
    e.add(Entry.of(LinkedHashSet.class));
    e.add(Entry.of(LinkedList.class));
    e.add(Entry.of(TreeMap.class)); // natural order only: a comparator would have to be registered too
    e.add(Entry.of(TreeSet.class));
    e.add(Entry.of(new ArrayList<>().subList(0, 0).getClass(), JdkCollectionSerializers::arrayListSubList));

    // --- JDK immutable collections: written as plain elements, read back as List.of / Set.of / Map.copyOf
    e.add(Entry.of(List.of().getClass(), JdkCollectionSerializers::immutableList)); // ImmutableCollections$ListN
    e.add(Entry.of(List.of(1).getClass(), JdkCollectionSerializers::immutableList)); // ImmutableCollections$List12
    e.add(Entry.of(Set.of().getClass(), JdkCollectionSerializers::immutableSet)); // ImmutableCollections$SetN
    e.add(Entry.of(Set.of(1).getClass(), JdkCollectionSerializers::immutableSet)); // ImmutableCollections$Set12
    e.add(Entry.of(Map.of().getClass(), JdkCollectionSerializers::immutableMap)); // ImmutableCollections$MapN
    e.add(Entry.of(Map.of(1, 1).getClass(), JdkCollectionSerializers::immutableMap)); // ImmutableCollections$Map1
    e.add(Entry.of(List.of().subList(0, 0).getClass(), JdkCollectionSerializers::immutableSubList)); // $SubList

    // --- JDK unmodifiable views (Collections.unmodifiableX), empty and singleton collections, Arrays.asList
    e.add(Entry.of(Collections.unmodifiableList(new ArrayList<>()).getClass(),
        JdkCollectionSerializers::unmodifiableRandomAccessList));
    e.add(Entry.of(Collections.unmodifiableList(new LinkedList<>()).getClass(),
        JdkCollectionSerializers::unmodifiableSequentialList));
    e.add(Entry.of(Collections.unmodifiableSet(new HashSet<>()).getClass(), JdkCollectionSerializers::unmodifiableSet));
    e.add(Entry.of(Collections.unmodifiableMap(new HashMap<>()).getClass(), JdkCollectionSerializers::unmodifiableMap));
    e.add(Entry.of(Collections.unmodifiableCollection(new ArrayList<>()).getClass(),
        JdkCollectionSerializers::unmodifiableCollection));
    e.add(Entry.of(Collections.emptyList().getClass()));
    e.add(Entry.of(Collections.emptySet().getClass()));
    e.add(Entry.of(Collections.emptyMap().getClass()));
    e.add(Entry.of(Collections.singletonList(1).getClass()));
    e.add(Entry.of(Collections.singleton(1).getClass()));
    e.add(Entry.of(Collections.singletonMap(1, 1).getClass()));
    e.add(Entry.of(Arrays.asList(1, 2).getClass()));

    // --- JDK values
    e.add(Entry.of(Optional.class));
    e.add(Entry.of(Instant.class));
    e.add(Entry.of(Duration.class));
    e.add(Entry.of(UUID.class, DefaultSerializers.UUIDSerializer::new));

    // --- Pekko: every typed ActorRef class (local, remote, adapters, probes) under one id, as its path
    e.add(Entry.family(ActorRef.class, TypedActorRefSerializer::new));

    // --- core records that cross nodes
    e.add(Entry.of(FinishReason.class));
    e.add(Entry.of(Trajectory.class));
    e.add(Entry.of(PromptGroup.class));
    e.add(Entry.of(RewardResult.Outcome.class));
    e.add(Entry.of(RewardResult.class));
    e.add(Entry.of(RewardRequest.class));
    e.add(Entry.of(ScoredTrajectory.class));

    // --- actors' messages: append here, never reorder (and add a sample to KryoSamples)
    e.add(Entry.of(dev.nucleon.actors.coordinator.Coordinator.RequestWork.class));
    e.add(Entry.of(dev.nucleon.actors.coordinator.Coordinator.Work.class));
    e.add(Entry.of(dev.nucleon.actors.coordinator.Coordinator.NoWork.class));
    e.add(Entry.of(dev.nucleon.actors.coordinator.Coordinator.Evaluate.class));
    e.add(Entry.of(dev.nucleon.actors.coordinator.Coordinator.GroupReady.class));
    e.add(Entry.of(dev.nucleon.actors.coordinator.Coordinator.Admission.class));
    e.add(Entry.of(dev.nucleon.actors.coordinator.Coordinator.GroupsFiltered.class));
    e.add(Entry.of(dev.nucleon.actors.coordinator.Coordinator.PolicyUpdated.class));
    e.add(Entry.of(dev.nucleon.actors.coordinator.Coordinator.EvalScored.class));
    e.add(Entry.of(dev.nucleon.actors.coordinator.Coordinator.CheckpointSaved.class));
    e.add(Entry.of(dev.nucleon.actors.coordinator.Coordinator.SnapshotRequest.class));
    e.add(Entry.of(dev.nucleon.actors.coordinator.Coordinator.Snapshot.class));
    e.add(Entry.of(dev.nucleon.actors.RolloutWorker.WeightsAvailable.class));
    e.add(Entry.of(dev.nucleon.actors.LearnerActor.RelayAt.class));
    e.add(Entry.of(dev.nucleon.actors.LearnerActor.Holds.class));
    e.add(Entry.of(dev.nucleon.actors.RewardScorer.ScoreGroup.class));
    e.add(Entry.of(dev.nucleon.actors.RewardScorer.ScoreEval.class));
    e.add(Entry.of(dev.nucleon.actors.ReplayActor.Scored.class));
    e.add(Entry.of(dev.nucleon.actors.RunReporter.StepDone.class));
    e.add(Entry.of(dev.nucleon.actors.RunReporter.EvalDone.class));
    e.add(Entry.of(dev.nucleon.actors.RunReporter.Finished.class));
    e.add(Entry.of(dev.nucleon.actors.RunReporter.Failed.class));
    e.add(Entry.of(dev.nucleon.actors.monitor.NodeSnapshot.class));
    e.add(Entry.of(dev.nucleon.actors.monitor.NodeSnapshot.Actor.class));
    e.add(Entry.of(dev.nucleon.actors.monitor.NodeSnapshot.Reward.class));
    e.add(Entry.of(dev.nucleon.actors.monitor.NodeSnapshot.Learner.class));
    e.add(Entry.of(dev.nucleon.actors.coordinator.Coordinator.NodeReport.class));
    e.add(Entry.of(dev.nucleon.actors.LearnerActor.FinishEarly.class));
    e.add(Entry.of(dev.nucleon.actors.RewardScorer.Delivered.class));
    e.add(Entry.of(dev.nucleon.actors.coordinator.Coordinator.GroupsRejected.class));
    e.add(Entry.of(dev.nucleon.actors.coordinator.Coordinator.GenerationFailed.class));
    e.add(Entry.of(dev.nucleon.actors.coordinator.Coordinator.EvalFailed.class));
    e.add(Entry.of(dev.nucleon.actors.ReplayActor.Flush.class));
    e.add(Entry.of(dev.nucleon.core.rollout.RoutedExperts.class)); // a core record, appended (ids never move)
    e.add(Entry.of(dev.nucleon.actors.RunReporter.EvalSample.class));
    e.add(Entry.of(dev.nucleon.core.rollout.EpisodeOutcome.class));

    return List.copyOf(e);
  }

  /** The registration list, in id order (entry i has id {@link #FIRST_ID} + i). */
  public static List<Entry> entries() {
    return ENTRIES;
  }

  /** The registered classes (for families, the supertype), in id order. */
  public static List<Class<?>> classes() {
    return classesOf(ENTRIES);
  }

  /** The classes of the given entries, in order. */
  public static List<Class<?>> classesOf(List<Entry> entries) {
    return entries.stream().<Class<?>>map(Entry::type).toList();
  }

  /**
   * The standard list followed by more classes (each with Kryo's default serializer): for tests and tools that
   * send classes of their own. Every node must use the same list.
   */
  public static List<Entry> withExtra(Class<?>... extra) {
    List<Entry> all = new ArrayList<>(ENTRIES);
    for (Class<?> c : extra) {
      all.add(Entry.of(c));
    }
    return List.copyOf(all);
  }

  /**
   * A short hash of the list (class names, family flags, order, and each record's components with their types):
   * equal on two nodes exactly when they register the same classes under the same ids and the same shapes, so a
   * node built from another version of a message refuses it instead of misreading it.
   */
  public static String fingerprint(List<Entry> entries) {
    try {
      MessageDigest sha = MessageDigest.getInstance("SHA-256");
      sha.update(("kryo-registrations/" + FIRST_ID).getBytes(StandardCharsets.UTF_8));
      for (Entry e : entries) {
        sha.update(((e.family() ? "\nfamily " : "\nclass ") + e.type().getName()).getBytes(StandardCharsets.UTF_8));
        if (e.type().isRecord()) {
          for (java.lang.reflect.RecordComponent c : e.type().getRecordComponents()) {
            sha.update((" " + c.getName() + ":" + c.getGenericType().getTypeName()).getBytes(StandardCharsets.UTF_8));
          }
        }
      }
      byte[] digest = sha.digest();
      StringBuilder hex = new StringBuilder();
      for (int i = 0; i < 6; i++) {
        hex.append(String.format("%02x", digest[i]));
      }
      return hex.toString();
    } catch (NoSuchAlgorithmException ex) {
      throw new IllegalStateException(ex);
    }
  }

  /** A Kryo with the standard list, for the given actor system ({@code null}: ActorRefs cannot be written). */
  public static Kryo newKryo(ActorSystem<?> system) {
    return newKryo(system, ENTRIES);
  }

  /**
   * A Kryo with registration required, no reference tracking, and the given entries registered with ids
   * {@link #FIRST_ID}, {@link #FIRST_ID} + 1, ... in order.
   *
   * @throws IllegalStateException if a class is listed twice
   */
  public static Kryo newKryo(ActorSystem<?> system, List<Entry> entries) {
    FamilyClassResolver resolver = new FamilyClassResolver();
    NucleonKryo kryo = new NucleonKryo(resolver);
    kryo.setRegistrationRequired(true);
    kryo.setReferences(false);
    Map<Class<?>, Integer> seen = new IdentityHashMap<>();
    int id = FIRST_ID;
    for (Entry e : entries) {
      Integer before = seen.put(e.type(), id);
      if (before != null) {
        throw new IllegalStateException("Kryo registration list names " + e.type().getName() + " twice (ids " + before
            + " and " + id + ")");
      }
      Serializer<?> serializer = e.serializer() == null ? kryo.getDefaultSerializer(e.type()) : e.serializer().apply(system);
      kryo.register(e.type(), serializer, id);
      if (e.family()) {
        resolver.addFamily(e.type());
      }
      id++;
    }
    return kryo;
  }

  /** Kryo whose "not registered" error says where to register. */
  private static final class NucleonKryo extends Kryo {
    NucleonKryo(FamilyClassResolver resolver) {
      super(resolver, null);
    }

    @Override
    protected String unregisteredClassMessage(Class type) {
      return "Class is not registered for Kryo: " + type.getName() + ". Every class that crosses nodes (messages "
          + "and the classes of their fields) must be registered in " + KryoRegistrations.class.getName()
          + ": append it at the end of the list (never reorder) and add a sample to KryoSamples in the tests.";
    }
  }

  /** Resolves a class that is not registered itself to the registration of a family it belongs to. */
  private static final class FamilyClassResolver extends DefaultClassResolver {
    private final List<Class<?>> families = new ArrayList<>();

    void addFamily(Class<?> supertype) {
      families.add(supertype);
    }

    @Override
    public Registration getRegistration(Class type) {
      Registration registration = super.getRegistration(type);
      if (registration != null || type == null) {
        return registration;
      }
      for (Class<?> family : families) {
        if (family.isAssignableFrom(type)) {
          registration = super.getRegistration(family);
          classToRegistration.put(type, registration); // remember: the next lookup is a map hit
          return registration;
        }
      }
      return null;
    }
  }
}
