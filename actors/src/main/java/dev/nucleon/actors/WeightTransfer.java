package dev.nucleon.actors;

import dev.nucleon.actors.serialization.NucleonMessage;
import dev.nucleon.model.io.HostTensor;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32;

/**
 * Moves a policy version between JVMs as numbered chunks: the learner announces a {@link Manifest} (tensor names,
 * shapes, total bytes, checksum), each worker pulls the chunks with a small window of requests outstanding (so a
 * slow worker applies its own back-pressure, the link stays busy, and no message exceeds the chunk size), then
 * checks the checksum before using the weights.
 */
public final class WeightTransfer {

  private WeightTransfer() {}

  /**
   * What a version holds.
   *
   * @param version the policy version
   * @param names tensor names, in byte order
   * @param shapes their shapes
   * @param totalBytes float32 bytes of all tensors
   * @param chunkBytes bytes per chunk (the last one may be shorter)
   * @param crc32 checksum of all bytes
   */
  public record Manifest(int version, List<String> names, List<long[]> shapes, long totalBytes, int chunkBytes,
      long crc32) implements NucleonMessage {

    public int chunks() {
      return (int) ((totalBytes + chunkBytes - 1) / chunkBytes);
    }
  }

  /** A version's tensors laid out as one little-endian float32 byte array, with its manifest. */
  public record Packed(Manifest manifest, byte[] bytes) {

    /** Bytes of chunk {@code index}. */
    public byte[] chunk(int index) {
      int from = index * manifest.chunkBytes();
      int to = (int) Math.min(manifest.totalBytes(), (long) from + manifest.chunkBytes());
      if (index < 0 || from >= to) {
        throw new IllegalArgumentException("chunk " + index + " outside 0.." + (manifest.chunks() - 1));
      }
      return java.util.Arrays.copyOfRange(bytes, from, to);
    }
  }

  public static Packed pack(int version, Map<String, HostTensor> tensors, int chunkBytes) {
    long total = 0;
    for (HostTensor t : tensors.values()) {
      total += t.byteSize();
    }
    if (total > Integer.MAX_VALUE - 8) {
      throw new IllegalArgumentException("weights of " + total + " bytes exceed one transfer (2 GiB)");
    }
    ByteBuffer buf = ByteBuffer.allocate((int) total).order(ByteOrder.LITTLE_ENDIAN);
    List<String> names = new ArrayList<>();
    List<long[]> shapes = new ArrayList<>();
    for (HostTensor t : tensors.values()) {
      names.add(t.name());
      shapes.add(t.shape().clone());
      buf.asFloatBuffer().put(t.data());
      buf.position(buf.position() + 4 * t.data().length);
    }
    CRC32 crc = new CRC32();
    crc.update(buf.array());
    return new Packed(new Manifest(version, names, shapes, total, chunkBytes, crc.getValue()), buf.array());
  }

  /** Collects the chunks of one version, in any order. */
  public static final class Assembler {
    private final Manifest manifest;
    private final byte[] bytes;
    private final java.util.BitSet received = new java.util.BitSet();
    private int requested;

    public Assembler(Manifest manifest) {
      this.manifest = manifest;
      this.bytes = new byte[(int) manifest.totalBytes()];
    }

    public Manifest manifest() {
      return manifest;
    }

    /** The next chunk not yet asked for, or -1 when every chunk was asked for. */
    public int nextToRequest() {
      return requested < manifest.chunks() ? requested++ : -1;
    }

    public boolean complete() {
      return received.cardinality() == manifest.chunks();
    }

    /** Stores chunk {@code index} (a repeated chunk is ignored). */
    public void accept(int index, byte[] data) {
      if (index < 0 || index >= manifest.chunks()) {
        throw new IllegalStateException("version " + manifest.version() + ": chunk " + index + " outside 0.."
            + (manifest.chunks() - 1));
      }
      if (received.get(index)) {
        return;
      }
      int from = index * manifest.chunkBytes();
      int expected = (int) Math.min(manifest.chunkBytes(), manifest.totalBytes() - from);
      if (data.length != expected) {
        throw new IllegalStateException("version " + manifest.version() + " chunk " + index + ": " + data.length
            + " bytes, expected " + expected);
      }
      System.arraycopy(data, 0, bytes, from, data.length);
      received.set(index);
    }

    /** The tensors, after checking the checksum. */
    public Map<String, HostTensor> result() {
      if (!complete()) {
        throw new IllegalStateException("version " + manifest.version() + " is incomplete");
      }
      CRC32 crc = new CRC32();
      crc.update(bytes);
      if (crc.getValue() != manifest.crc32()) {
        throw new IllegalStateException("version " + manifest.version() + ": checksum mismatch");
      }
      ByteBuffer buf = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
      Map<String, HostTensor> out = new LinkedHashMap<>();
      for (int i = 0; i < manifest.names().size(); i++) {
        long[] shape = manifest.shapes().get(i);
        float[] data = new float[(int) HostTensor.numel(shape)];
        buf.asFloatBuffer().get(data);
        buf.position(buf.position() + 4 * data.length);
        out.put(manifest.names().get(i), new HostTensor(manifest.names().get(i), shape, data));
      }
      return out;
    }
  }
}
