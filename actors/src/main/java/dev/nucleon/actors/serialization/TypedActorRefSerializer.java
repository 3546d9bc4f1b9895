package dev.nucleon.actors.serialization;

import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.KryoException;
import com.esotericsoftware.kryo.Serializer;
import com.esotericsoftware.kryo.io.Input;
import com.esotericsoftware.kryo.io.Output;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorRefResolver;
import org.apache.pekko.actor.typed.ActorSystem;

/**
 * Writes a typed {@link ActorRef} as its serialization format (a path with the node's address, e.g.
 * {@code pekko://nucleon@10.0.0.1:25520/user/learner#123}) and resolves it on the receiving node with
 * {@link ActorRefResolver}, so a ref names the same actor on every node. Registered for the whole
 * {@code ActorRef} interface: whatever concrete class a ref has at runtime (local or remote adapter, test probe)
 * travels under the one registration id.
 */
final class TypedActorRefSerializer extends Serializer<ActorRef<?>> {
  private final ActorSystem<?> system;
  private volatile ActorRefResolver resolver;

  /** @param system the node's actor system; {@code null} for a Kryo without one (refs then fail clearly) */
  TypedActorRefSerializer(ActorSystem<?> system) {
    super(false, true);
    this.system = system;
  }

  private ActorRefResolver resolver() {
    ActorRefResolver r = resolver;
    if (r == null) {
      if (system == null) {
        throw new KryoException("an ActorRef can only be (de)serialized by a Kryo built for an actor system "
            + "(KryoRegistrations.newKryo(system, ...)), this one has none");
      }
      r = ActorRefResolver.get(system);
      resolver = r;
    }
    return r;
  }

  @Override
  public void write(Kryo kryo, Output output, ActorRef<?> ref) {
    output.writeString(resolver().toSerializationFormat(ref));
  }

  @Override
  public ActorRef<?> read(Kryo kryo, Input input, Class<? extends ActorRef<?>> type) {
    return resolver().resolveActorRef(input.readString());
  }
}
