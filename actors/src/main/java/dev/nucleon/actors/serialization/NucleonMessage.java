package dev.nucleon.actors.serialization;

/**
 * Marks a message that may cross nodes. Pekko serializes every such message with Kryo (see the
 * {@code serialization-bindings} in reference.conf); its class must be registered in {@code KryoRegistrations}.
 */
public interface NucleonMessage {}
