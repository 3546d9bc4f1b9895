package dev.nucleon.actors.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import dev.nucleon.actors.weights.TensorSource;
import dev.nucleon.actors.weights.WeightFetcher;
import dev.nucleon.actors.weights.WeightServer;
import dev.nucleon.actors.weights.WeightStream;
import dev.nucleon.model.io.HostTensor;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorRefResolver;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code nucleon bench weights}: pushes versions of a model of a given size from a weight server in this JVM to R
 * receivers, each a JVM of its own on 127.0.0.1 that decodes into host arrays as a rollout worker does, and measures
 * the round trip of small actor messages over Artery while the bytes flow. Receivers are started with this JVM's
 * class path ({@code weights-receiver}, not meant to be called by hand).
 */
@Command(name = "weights", mixinStandardHelpOptions = true,
    description = "Weight streaming to R receiver JVMs: GB/s per receiver, seconds per version, control p99.")
final class WeightsBenchCommand implements Callable<Integer> {

  private static final ObjectMapper JSON = new ObjectMapper();

  @Spec
  picocli.CommandLine.Model.CommandSpec spec;

  @Option(names = "--size-mb", defaultValue = "2048", description = "model size in MB of float32 (default: ${DEFAULT-VALUE})")
  int sizeMb;

  @Option(names = "--receivers", defaultValue = "1", description = "receiver JVMs (default: ${DEFAULT-VALUE})")
  int receivers;

  @Option(names = "--dtype", defaultValue = "f32", paramLabel = "f32|bf16", description = "wire type (default: ${DEFAULT-VALUE})")
  String dtype;

  @Option(names = "--versions", defaultValue = "3", description = "versions measured, after the warm-up (default: ${DEFAULT-VALUE})")
  int versions;

  @Option(names = "--warmup", defaultValue = "1", description = "versions pushed first and left out of the figures "
      + "(a receiver's first versions also pay for touching its heap's pages; default: ${DEFAULT-VALUE})")
  int warmup;

  @Option(names = "--chunk-kb", defaultValue = "1024", description = "stream piece size (default: ${DEFAULT-VALUE})")
  int chunkKb;

  @Option(names = "--discard", description = "receivers check every checksum but keep no arrays (the transport "
      + "alone, without a rollout worker's allocation)")
  boolean discard;

  /** A small remote actor system on 127.0.0.1 (Artery, any free port). */
  static Config remote(String name) {
    return ConfigFactory.parseString("pekko.actor.provider = remote\n"
        + "pekko.remote.artery.canonical.hostname = \"127.0.0.1\"\n"
        + "pekko.remote.artery.canonical.port = 0\n"
        + "pekko.loglevel = WARNING\n"
        + "pekko.log-dead-letters = off\n"
        + "pekko.io.tcp.direct-buffer-size = " + System.getProperty("nucleon.bench.tcp-buffer", "1MiB") + "\n")
        .withFallback(ConfigFactory.load());
  }

  @Override
  public Integer call() throws Exception {
    if (receivers < 1 || versions < 1 || sizeMb < 1 || warmup < 0) {
      throw new IllegalArgumentException("--receivers, --versions and --size-mb must be at least 1, --warmup at least 0");
    }
    boolean bf16 = dev.nucleon.model.Precision.parseType(dtype) == ai.djl.ndarray.types.DataType.BFLOAT16;
    List<TensorSource> tensors = model(sizeMb);
    long wire = WeightStream.wireBytes(tensors, bf16);
    CompletableFuture<ObjectNode> done = new CompletableFuture<>();
    ActorSystem<String> system = ActorSystem.create(Behaviors.setup(ctx -> {
      WeightServer server = WeightServer.start(ctx.getSystem(), "127.0.0.1", 0, chunkKb * 1024);
      return new Pusher(ctx.getSystem(), server, tensors, bf16, wire, done).behavior();
    }), "bench-weights", remote("bench-weights"));
    List<Process> children = new ArrayList<>();
    try {
      String self = ActorRefResolver.get(system).toSerializationFormat(system);
      String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
      long heapMb = (long) (sizeMb * Double.parseDouble(System.getProperty("nucleon.bench.heap-factor", "3"))) + 512;
      for (int i = 0; i < receivers; i++) {
        children.add(new ProcessBuilder(java, "-Xmx" + heapMb + "m",
            "-Dnucleon.bench.tcp-buffer=" + System.getProperty("nucleon.bench.tcp-buffer", "1MiB"),
            "-cp", System.getProperty("java.class.path"),
            NucleonCli.class.getName(), "bench", "weights-receiver", "--learner", self, "--discard=" + discard)
            .redirectOutput(ProcessBuilder.Redirect.DISCARD).redirectError(ProcessBuilder.Redirect.INHERIT).start());
      }
      ObjectNode o = done.get(30, TimeUnit.MINUTES);
      spec.commandLine().getOut().println(JSON.writeValueAsString(o));
    } finally {
      system.terminate();
      for (Process p : children) {
        if (!p.waitFor(30, TimeUnit.SECONDS)) {
          p.destroyForcibly();
        }
      }
    }
    return 0;
  }

  /** Float32 tensors of about {@code mb} MB in all, shaped like a decoder's matrices (random values). */
  static List<TensorSource> model(int mb) {
    long total = (long) mb * 1_000_000L / 4;
    int count = Math.max(1, (int) Math.min(64, total / 16_000_000L));
    List<TensorSource> out = new ArrayList<>();
    SplittableRandom rng = new SplittableRandom(1);
    for (int i = 0; i < count; i++) {
      long n = total / count;
      float[] d = new float[(int) n];
      for (int j = 0; j < d.length; j++) {
        d[j] = (float) (rng.nextDouble() - 0.5);
      }
      out.add(TensorSource.of(new HostTensor("model.layers." + i + ".weight", new long[] {n}, d)));
    }
    return out;
  }

  /** The learner side: publishes versions, waits for every receiver, pings them all the while. */
  private final class Pusher {
    private final ActorSystem<?> system;
    private final WeightServer server;
    private final List<TensorSource> tensors;
    private final boolean bf16;
    private final long wire;
    private final CompletableFuture<ObjectNode> done;
    private final List<ActorRef<String>> receiverRefs = new ArrayList<>();
    private final List<Double> rtts = new ArrayList<>();
    private final double[] seconds;
    private final List<Double> versionSeconds = new ArrayList<>();
    private int version;
    private int pending;
    private long pushStart;
    private double pushSeconds;

    Pusher(ActorSystem<?> system, WeightServer server, List<TensorSource> tensors, boolean bf16, long wire,
        CompletableFuture<ObjectNode> done) {
      this.system = system;
      this.server = server;
      this.tensors = tensors;
      this.bf16 = bf16;
      this.wire = wire;
      this.done = done;
      this.seconds = new double[receivers];
    }

    Behavior<String> behavior() {
      return Behaviors.withTimers(timers -> Behaviors.receive(String.class).onMessage(String.class, m -> {
        String[] p = m.split(" ");
        switch (p[0]) {
          case "hello" -> {
            receiverRefs.add(ActorRefResolver.get(system).resolveActorRef(p[1]));
            if (receiverRefs.size() == receivers) {
              timers.startTimerAtFixedRate("ping", "tick", Duration.ofMillis(5));
              push();
            }
          }
          case "tick" -> {
            if (pending > 0) {
              for (ActorRef<String> r : receiverRefs) {
                r.tell("ping " + System.nanoTime());
              }
            }
          }
          case "pong" -> {
            if (pending > 0 && version > warmup) {
              rtts.add((System.nanoTime() - Long.parseLong(p[1])) / 1e6);
            }
          }
          case "got" -> {
            int index = Integer.parseInt(p[2]);
            if (version > warmup) {
              seconds[index] += Double.parseDouble(p[3]);
            }
            if (--pending == 0) {
              double s = (System.nanoTime() - pushStart) / 1e9;
              versionSeconds.add(Math.round(s * 1000) / 1000.0);
              if (version > warmup) {
                pushSeconds += s;
              }
              if (version == warmup + versions) {
                receiverRefs.forEach(r -> r.tell("stop"));
                done.complete(report());
              } else {
                push();
              }
            }
          }
          case "failed" -> done.completeExceptionally(new IllegalStateException("receiver " + p[1] + ": "
              + String.join(" ", Arrays.copyOfRange(p, 2, p.length))));
          default -> { }
        }
        return Behaviors.same();
      }).build());
    }

    private void push() {
      version++;
      server.publish(new WeightServer.Version(version, tensors, bf16, wire));
      pending = receivers;
      pushStart = System.nanoTime();
      for (int i = 0; i < receiverRefs.size(); i++) {
        receiverRefs.get(i).tell("fetch " + i + " " + server.port() + " " + wire);
      }
    }

    private ObjectNode report() {
      ObjectNode o = JSON.createObjectNode();
      o.put("bench", "weights");
      o.put("size_mb", sizeMb);
      o.put("wire_bytes", wire);
      o.put("dtype", bf16 ? "bf16" : "f32");
      o.put("receivers", receivers);
      o.put("versions", versions);
      o.put("warmup_versions", warmup);
      o.put("receivers_keep_arrays", !discard);
      var per = o.putArray("gb_per_s");
      for (double s : seconds) {
        per.add(Math.round(wire * versions / s / 1e9 * 1000) / 1000.0);
      }
      o.put("seconds_per_version", Math.round(pushSeconds / versions * 1000) / 1000.0);
      var each = o.putArray("seconds_each_version");
      versionSeconds.forEach(each::add);
      double[] sorted = rtts.stream().mapToDouble(Double::doubleValue).sorted().toArray();
      o.put("control_samples", sorted.length);
      o.put("control_p50_ms", sorted.length == 0 ? Double.NaN
          : Math.round(sorted[sorted.length / 2] * 100) / 100.0);
      o.put("control_p99_ms", sorted.length == 0 ? Double.NaN
          : Math.round(sorted[(int) Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)] * 100) / 100.0);
      return o;
    }
  }

  /** Keeps nothing (the decoder still checks every tensor's checksum). */
  private static final class Discard implements WeightStream.TensorSink {
    @Override
    public void begin(String name, long[] shape) {}

    @Override
    public void values(java.nio.FloatBuffer values) {
      values.position(values.limit());
    }

    @Override
    public void end() {}
  }

  /** A receiver JVM: answers pings, fetches each announced version into host arrays, reports its time. */
  @Command(name = "weights-receiver", hidden = true)
  static final class Receiver implements Callable<Integer> {

    @Option(names = "--learner", required = true)
    String learner;

    @Option(names = "--discard", arity = "1")
    boolean discard;

    private final java.util.Map<String, float[]> spare = new java.util.concurrent.ConcurrentHashMap<>();

    @Override
    public Integer call() throws Exception {
      ActorSystem<String> system = ActorSystem.create(Behaviors.setup(ctx -> {
        ActorRef<String> bench = ActorRefResolver.get(ctx.getSystem()).resolveActorRef(learner);
        bench.tell("hello " + ActorRefResolver.get(ctx.getSystem()).toSerializationFormat(ctx.getSelf()));
        return Behaviors.receive(String.class).onMessage(String.class, m -> {
          String[] p = m.split(" ");
          switch (p[0]) {
            case "ping" -> bench.tell("pong " + p[1]);
            case "fetch" -> {
              long start = System.nanoTime();
              // as a rollout worker does: the previous version's arrays are filled again (once the model copied them)
              WeightStream.Collect collect = new WeightStream.Collect(spare);
              WeightStream.TensorSink sink = discard ? new Discard() : collect;
              WeightFetcher.fetch(ctx.getSystem(), "127.0.0.1", Integer.parseInt(p[2]), sink, Long.parseLong(p[3]),
                  Duration.ofSeconds(60), -1).whenComplete((d, error) -> {
                    collect.tensors().values().forEach(t -> spare.put(t.name(), t.data()));
                    bench.tell(error != null ? "failed " + p[1] + " " + error
                        : "got " + d.version() + " " + p[1] + " " + (System.nanoTime() - start) / 1e9);
                  });
            }
            case "stop" -> ctx.getSystem().terminate();
            default -> { }
          }
          return Behaviors.same();
        }).build();
      }), "bench-weights-receiver", remote("bench-weights-receiver"));
      system.getWhenTerminated().toCompletableFuture().get(1, TimeUnit.HOURS);
      return 0;
    }
  }
}
