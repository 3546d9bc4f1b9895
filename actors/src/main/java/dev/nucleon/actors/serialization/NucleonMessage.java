package dev.nucleon.actors.serialization;

/**
 * Marks a message that may cross nodes. Pekko serializes every such message with Kryo ({@link KryoSerializer}, bound
 * by the {@code serialization-bindings} in reference.conf). Its class, and the classes of its fields, must be
 * registered in {@link KryoRegistrations} (append at the end of the list, never reorder), and the class needs a
 * sample in the tests' {@code KryoSamples}: {@code KryoRegistrationsTest} fails until it has one.
 *
 * <p>Deliberately not {@code java.io.Serializable}: Java serialization is off.
 */
public interface NucleonMessage {}
