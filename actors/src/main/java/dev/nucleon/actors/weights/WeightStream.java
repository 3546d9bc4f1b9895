package dev.nucleon.actors.weights;

import dev.nucleon.model.io.HostTensor;
import dev.nucleon.model.io.Safetensors;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.zip.CRC32C;
import org.apache.pekko.util.ByteString;

/**
 * The wire format of one policy version on a weight stream, and its encoder and decoder. Everything is little
 * endian:
 * <pre>
 *   "NWS2"  version:int32  dtype:int8 (0 = float32, 1 = bfloat16)  tensors:int32  base:int32 (-1: none)
 *   per tensor:  nameLength:int16 name:UTF-8  rank:int8 shape:int64[rank]  mode:int8
 *     mode 0 (whole):  values (elements x 4 or 2 bytes)  CRC-32C of those bytes:int32
 *     mode 1 (delta against version base, bfloat16 only): per block of 8192 elements, a bit mask of the elements
 *                      that changed (1024 bytes), their count:int32 and their new values (count x 2 bytes);
 *                      then the CRC-32C of the whole new tensor's bfloat16 bytes:int32
 *   "NEND"
 * </pre>
 * A receiver asks with {@code "NWQ1" base:int32}: the version whose values it holds (-1: none), against which
 * the server may send deltas.
 * The encoder produces the bytes a chunk at a time from {@link TensorSource}s, so no array of the whole version
 * exists and its size is limited only by the tensors themselves; the decoder checks every tensor's checksum as it
 * ends and hands the values to a {@link TensorSink} as they arrive.
 */
public final class WeightStream {

  static final int MAGIC = 0x3253574e; // "NWS2" read as a little-endian int
  static final int REQUEST = 0x3151574e; // "NWQ1"
  /** Elements per delta block (its mask is 1024 bytes). */
  static final int BLOCK = 8192;
  static final int END = 0x444e454e; // "NEND"
  static final int MAX_RANK = 8;
  static final int MAX_NAME_BYTES = 4096;

  private WeightStream() {}

  /** Where decoded values go. Calls come in stream order from one thread at a time. */
  public interface TensorSink {
    /** A tensor starts. */
    void begin(String name, long[] shape);

    /**
     * The next values of the current tensor, widened to float32: all of {@code values}' remaining ones. The buffer
     * is valid only during the call (it views the received bytes or a reused array): copy what must be kept.
     */
    void values(FloatBuffer values);

    /** The current tensor ended and its checksum matched. */
    void end();

    /**
     * A tensor arrives as a delta: the array holding its previous values (the base version's), which the decoder
     * updates in place before {@link #end()}. A sink that keeps no previous values refuses.
     */
    default float[] deltaBase(String name, long[] shape) {
      throw new WeightStreamException("tensor '" + name + "' came as a delta, but this receiver keeps no "
          + "previous values");
    }
  }

  /** A receiver's request: the version whose values it holds (-1: none). */
  public static ByteString request(int base) {
    return ByteString.fromArrayUnsafe(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putInt(REQUEST)
        .putInt(base).array());
  }

  /** The base version a request names, or -1 for anything that is not a request. */
  public static int requestedBase(ByteString request) {
    if (request.length() != 8) {
      return -1;
    }
    ByteBuffer b = request.toByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
    return b.getInt() == REQUEST ? b.getInt() : -1;
  }

  /** The bfloat16 bits of every tensor (nearest even), as a delta's base on the sending side. */
  public static Map<String, short[]> bf16Bits(List<? extends TensorSource> tensors) {
    Map<String, short[]> out = new LinkedHashMap<>();
    for (TensorSource t : tensors) {
      long n = t.elements();
      if (n > Integer.MAX_VALUE - 8) {
        throw new IllegalArgumentException("tensor '" + t.name() + "' is too large for a delta base");
      }
      short[] bits = new short[(int) n];
      float[] window = new float[BLOCK];
      for (long at = 0; at < n; at += BLOCK) {
        int k = (int) Math.min(BLOCK, n - at);
        t.read(at, k, FloatBuffer.wrap(window));
        for (int i = 0; i < k; i++) {
          bits[(int) at + i] = Safetensors.toBf16(window[i]);
        }
      }
      out.put(t.name(), bits);
    }
    return out;
  }

  /** A version as it arrived: its number, wire type and tensors (in stream order). */
  public record Received(int version, boolean bf16, Map<String, HostTensor> tensors, long bytes) {}

  /**
   * Bytes a version takes on the wire; refuses (naming the tensor) what a receiver would refuse: an empty name or
   * one over 4096 bytes, a rank above 8.
   */
  public static long wireBytes(List<? extends TensorSource> tensors, boolean bf16) {
    long n = 17 + 4; // stream header and end marker
    for (TensorSource t : tensors) {
      int name = t.name().getBytes(StandardCharsets.UTF_8).length;
      if (name == 0 || name > MAX_NAME_BYTES || t.shape().length > MAX_RANK) {
        throw new IllegalArgumentException("tensor '" + t.name() + "' cannot be streamed: names of 1 to "
            + MAX_NAME_BYTES + " bytes and ranks up to " + MAX_RANK + " only");
      }
      n += 2 + name + 1 + 8L * t.shape().length + 1 + t.elements() * (bf16 ? 2 : 4) + 4;
    }
    return n;
  }

  /**
   * The most bytes a version can take on the wire with deltas (each bfloat16 block may carry its mask besides all
   * its values): the bound receivers are given.
   */
  public static long maxWireBytes(List<? extends TensorSource> tensors, boolean bf16) {
    long n = wireBytes(tensors, bf16);
    if (bf16) {
      for (TensorSource t : tensors) {
        n += (t.elements() + BLOCK - 1) / BLOCK * (BLOCK / 8 + 4);
      }
    }
    return n;
  }

  /**
   * The bytes of one version, {@code chunkBytes} at a time (values are converted from float32 as they are
   * produced; bfloat16 rounds to nearest even).
   */
  public static Iterator<ByteString> encode(int version, List<? extends TensorSource> tensors, boolean bf16,
      int chunkBytes) {
    return new Encoder(version, tensors, bf16, chunkBytes, -1, Map.of());
  }

  /**
   * As {@link #encode}, sending each tensor whose bfloat16 bits under {@code base} are in {@code baseBits} as a delta
   * against them (bfloat16 only).
   */
  public static Iterator<ByteString> encodeDelta(int version, List<? extends TensorSource> tensors, int chunkBytes,
      int base, Map<String, short[]> baseBits) {
    return new Encoder(version, tensors, true, chunkBytes, base, baseBits);
  }

  private static final class Encoder implements Iterator<ByteString> {
    private final int version;
    private final List<? extends TensorSource> tensors;
    private final boolean bf16;
    private final int width;
    private final int chunkElements;
    private final float[] window;
    private final short[] halves;
    private int tensor = -1; // -1: stream header not yet sent
    private long next; // next element of the current tensor
    private boolean headerSent; // the current tensor's header
    private boolean done;
    private final CRC32C crc = new CRC32C();
    private final int base;
    private final Map<String, short[]> baseBits;
    private short[] deltaBase; // the current tensor's base bits when it goes as a delta

    Encoder(int version, List<? extends TensorSource> tensors, boolean bf16, int chunkBytes, int base,
        Map<String, short[]> baseBits) {
      this.base = base;
      this.baseBits = baseBits;
      this.version = version;
      this.tensors = tensors;
      this.bf16 = bf16;
      this.width = bf16 ? 2 : 4;
      this.chunkElements = Math.max(1, chunkBytes / width);
      this.window = new float[Math.max(chunkElements, BLOCK)];
      this.halves = new short[bf16 ? Math.max(chunkElements, BLOCK) : 0];
    }

    @Override
    public boolean hasNext() {
      return !done;
    }

    @Override
    public ByteString next() {
      if (done) {
        throw new NoSuchElementException();
      }
      if (tensor < 0) {
        tensor = 0;
        ByteBuffer b = le(17);
        b.putInt(MAGIC).putInt(version).put((byte) (bf16 ? 1 : 0)).putInt(tensors.size()).putInt(base);
        return bytes(b);
      }
      if (tensor == tensors.size()) {
        done = true;
        return bytes(le(4).putInt(END));
      }
      TensorSource t = tensors.get(tensor);
      if (!headerSent) {
        headerSent = true;
        next = 0;
        crc.reset();
        byte[] name = t.name().getBytes(StandardCharsets.UTF_8);
        long[] shape = t.shape();
        short[] bits = bf16 && base >= 0 ? baseBits.get(t.name()) : null;
        deltaBase = bits != null && bits.length == t.elements() ? bits : null;
        ByteBuffer b = le(2 + name.length + 1 + 8 * shape.length + 1);
        b.putShort((short) name.length).put(name).put((byte) shape.length);
        for (long s : shape) {
          b.putLong(s);
        }
        b.put((byte) (deltaBase != null ? 1 : 0));
        return bytes(b);
      }
      long total = t.elements();
      if (deltaBase != null && next < total) {
        return deltaBlock(t, total);
      }
      if (next < total) {
        int n = (int) Math.min(chunkElements, total - next);
        byte[] out = new byte[n * width];
        ByteBuffer b = ByteBuffer.wrap(out).order(ByteOrder.LITTLE_ENDIAN);
        if (bf16) {
          t.read(next, n, FloatBuffer.wrap(window));
          for (int i = 0; i < n; i++) {
            halves[i] = Safetensors.toBf16(window[i]);
          }
          b.asShortBuffer().put(halves, 0, n);
        } else {
          t.read(next, n, b.asFloatBuffer()); // straight into the outgoing bytes
        }
        next += n;
        crc.update(out);
        return ByteString.fromArrayUnsafe(out);
      }
      tensor++;
      headerSent = false;
      return bytes(le(4).putInt((int) crc.getValue()));
    }

    /** One delta block: the mask of changed elements, their count and their new bfloat16 values. */
    private ByteString deltaBlock(TensorSource t, long total) {
      int n = (int) Math.min(BLOCK, total - next);
      t.read(next, n, FloatBuffer.wrap(window, 0, n));
      byte[] mask = new byte[BLOCK / 8];
      short[] changed = new short[n];
      int count = 0;
      for (int i = 0; i < n; i++) {
        short now = Safetensors.toBf16(window[i]);
        halves[i] = now;
        if (now != deltaBase[(int) next + i]) {
          mask[i >>> 3] |= (byte) (1 << (i & 7));
          changed[count++] = now;
        }
      }
      ByteBuffer whole = le(2 * n);
      whole.asShortBuffer().put(halves, 0, n);
      crc.update(whole.array()); // the checksum covers the whole new tensor, which the receiver rebuilds
      next += n;
      ByteBuffer b = le(BLOCK / 8 + 4 + 2 * count);
      b.put(mask).putInt(count);
      b.asShortBuffer().put(changed, 0, count);
      return bytes(b);
    }

    private static ByteBuffer le(int n) {
      return ByteBuffer.allocate(n).order(ByteOrder.LITTLE_ENDIAN);
    }

    private static ByteString bytes(ByteBuffer b) {
      return ByteString.fromArrayUnsafe(b.array());
    }
  }

  /**
   * Parses a version's bytes as they arrive, in pieces of any size. Errors ({@link WeightStreamException}) name the
   * tensor and what was wrong: a bad header, a checksum mismatch, a stream that ends early or runs on.
   */
  public static final class Decoder {
    private final TensorSink sink;
    private final long maxBytes;
    private ByteString pending = ByteString.emptyByteString();
    private int version = -1;
    private boolean bf16;
    private int tensorCount = -1;
    private int tensorsDone;
    private String name;
    private long[] shape;
    private long remaining = -1; // value bytes left in the current tensor; -1: no tensor open
    private boolean ended;
    private long bytes;
    private final CRC32C crc = new CRC32C();
    private float[] values = new float[0];
    private short[] halves = new short[0];
    private int base = -1;
    private float[] delta; // the current tensor's array, updated in place, when it comes as a delta
    private long deltaNext; // its next element

    /**
     * @param sink where values go
     * @param maxBytes the most bytes this version may take (from its announcement); more is an error
     */
    public Decoder(TensorSink sink, long maxBytes) {
      this.sink = sink;
      this.maxBytes = maxBytes;
    }

    public int version() {
      return version;
    }

    public boolean bf16() {
      return bf16;
    }

    /** The version deltas in this stream are against (-1: none). */
    public int base() {
      return base;
    }

    public long bytes() {
      return bytes;
    }

    /**
     * Consumes the next piece of the stream. Values are read straight from the piece's bytes where a tensor's data
     * runs on (no copy of the piece); headers and element boundaries that straddle pieces go through a small
     * pending buffer.
     */
    public void feed(ByteString piece) {
      bytes += piece.length();
      if (bytes > maxBytes) {
        throw new WeightStreamException("version " + version + ": the stream runs past the " + maxBytes
            + " bytes announced");
      }
      if (ended && piece.nonEmpty()) {
        throw new WeightStreamException("version " + version + ": bytes after the end marker");
      }
      byte[] a = piece.toArrayUnsafe(); // the piece's own array when it is one (what TCP delivers)
      int off = 0;
      int width = bf16 ? 2 : 4;
      while (off < a.length && !ended) {
        if (remaining > 0 && pending.nonEmpty() && pending.length() < width) {
          // an element split across pieces: complete it from this piece, then go on without copying the piece
          int take = Math.min(width - pending.length(), a.length - off);
          pending = pending.concat(ByteString.fromArray(a, off, take));
          off += take;
          if (pending.length() == width) {
            values(take(width), width);
          }
          continue;
        }
        if (remaining > 0 && pending.isEmpty()) {
          long available = Math.min(remaining, a.length - off);
          int whole = (int) (available - available % width);
          if (whole > 0) {
            values(ByteBuffer.wrap(a, off, whole).order(ByteOrder.LITTLE_ENDIAN), whole);
            off += whole;
            continue;
          }
        }
        pending = pending.concat(ByteString.fromArray(a, off, a.length - off));
        off = a.length;
        boolean progress = true;
        while (progress && !ended) {
          progress = step();
        }
        width = bf16 ? 2 : 4;
      }
    }

    /** {@code n} bytes of the current tensor's values (whole elements), checksummed and handed to the sink. */
    private void values(ByteBuffer b, int n) {
      crc.update(b.duplicate());
      if (bf16) {
        int count = n / 2;
        if (values.length < count) {
          values = new float[count];
          halves = new short[count];
        }
        b.asShortBuffer().get(halves, 0, count);
        for (int i = 0; i < count; i++) {
          values[i] = Float.intBitsToFloat((halves[i] & 0xffff) << 16);
        }
        sink.values(FloatBuffer.wrap(values, 0, count));
      } else {
        sink.values(b.asFloatBuffer());
      }
      remaining -= n;
    }

    /** Checks that the whole version arrived. */
    public void finish() {
      if (!ended) {
        throw new WeightStreamException("version " + version + ": the stream ended after " + tensorsDone + " of "
            + tensorCount + " tensors" + (name == null ? "" : " (inside '" + name + "')"));
      }
    }

    /** Parses one element of the format if its bytes are there; false when more bytes are needed. */
    private boolean step() {
      if (version < 0) {
        if (pending.length() < 17) {
          return false;
        }
        ByteBuffer b = take(17);
        int magic = b.getInt();
        if (magic != MAGIC) {
          throw new WeightStreamException("not a weight stream (magic " + Integer.toHexString(magic) + ")");
        }
        version = b.getInt();
        byte dtype = b.get();
        if (dtype != 0 && dtype != 1) {
          throw new WeightStreamException("version " + version + ": unknown dtype code " + dtype);
        }
        bf16 = dtype == 1;
        tensorCount = b.getInt();
        if (tensorCount < 0) {
          throw new WeightStreamException("version " + version + ": negative tensor count " + tensorCount);
        }
        base = b.getInt();
        return true;
      }
      if (delta != null) {
        return deltaStep();
      }
      if (remaining < 0) {
        if (tensorsDone == tensorCount) {
          if (pending.length() < 4) {
            return false;
          }
          if (take(4).getInt() != END) {
            throw new WeightStreamException("version " + version + ": no end marker after " + tensorCount
                + " tensors");
          }
          ended = true;
          if (pending.nonEmpty()) {
            throw new WeightStreamException("version " + version + ": bytes after the end marker");
          }
          return false;
        }
        return header();
      }
      if (remaining == 0) {
        if (pending.length() < 4) {
          return false;
        }
        int sent = take(4).getInt();
        if (sent != (int) crc.getValue()) {
          throw new WeightStreamException("version " + version + ": tensor '" + name + "' fails its checksum (sent "
              + Integer.toHexString(sent) + ", received " + Long.toHexString(crc.getValue()) + ")");
        }
        sink.end();
        tensorsDone++;
        remaining = -1;
        name = null;
        return true;
      }
      int width = bf16 ? 2 : 4;
      long usable = Math.min(remaining, pending.length() - pending.length() % width);
      if (usable == 0) {
        return false;
      }
      values(take((int) usable), (int) usable);
      return true;
    }

    private boolean header() {
      if (pending.length() < 2) {
        return false;
      }
      int nameLength = pending.iterator().getShort(ByteOrder.LITTLE_ENDIAN) & 0xffff;
      if (nameLength == 0 || nameLength > MAX_NAME_BYTES) {
        throw new WeightStreamException("version " + version + ": tensor " + tensorsDone + " has a name of "
            + nameLength + " bytes");
      }
      if (pending.length() < 2 + nameLength + 1) {
        return false;
      }
      int rank = pending.apply(2 + nameLength);
      if (rank < 0 || rank > MAX_RANK) {
        throw new WeightStreamException("version " + version + ": tensor " + tensorsDone + " has rank " + rank);
      }
      int size = 2 + nameLength + 1 + 8 * rank + 1;
      if (pending.length() < size) {
        return false;
      }
      ByteBuffer b = take(size);
      b.getShort();
      byte[] nameBytes = new byte[nameLength];
      b.get(nameBytes);
      name = new String(nameBytes, StandardCharsets.UTF_8);
      b.get();
      shape = new long[rank];
      for (int i = 0; i < rank; i++) {
        shape[i] = b.getLong();
        if (shape[i] < 0) {
          throw new WeightStreamException("version " + version + ": tensor '" + name + "' has a negative dimension");
        }
      }
      long elements;
      try {
        elements = HostTensor.numel(shape);
        remaining = Math.multiplyExact(elements, bf16 ? 2 : 4);
      } catch (ArithmeticException e) {
        throw new WeightStreamException("version " + version + ": tensor '" + name + "' is too large");
      }
      crc.reset();
      byte mode = b.get();
      if (mode == 1) {
        if (!bf16 || base < 0) {
          throw new WeightStreamException("version " + version + ": tensor '" + name + "' is a delta in a stream "
              + "that has no base (" + (bf16 ? "base " + base : "float32") + ")");
        }
        delta = sink.deltaBase(name, shape);
        if (delta == null || delta.length != elements) {
          throw new WeightStreamException("version " + version + ": tensor '" + name + "' is a delta against "
              + "version " + base + ", whose values this receiver does not hold");
        }
        deltaNext = 0;
        remaining = 0; // no whole-values section: the blocks follow
        return true;
      }
      if (mode != 0) {
        throw new WeightStreamException("version " + version + ": tensor '" + name + "' has mode " + mode);
      }
      if (remaining > maxBytes) {
        throw new WeightStreamException("version " + version + ": tensor '" + name + "' of " + remaining
            + " bytes exceeds the " + maxBytes + " bytes announced");
      }
      sink.begin(name, shape);
      return true;
    }

    /**
     * The next part of a delta tensor: a block (mask, count, changed values), applied in place, or after the last
     * block the checksum of the whole rebuilt tensor.
     */
    private boolean deltaStep() {
      long n = delta.length;
      if (deltaNext >= n) {
        if (pending.length() < 4) {
          return false;
        }
        int sent = take(4).getInt();
        CRC32C whole = new CRC32C();
        ByteBuffer bits = ByteBuffer.allocate(2 * BLOCK).order(ByteOrder.LITTLE_ENDIAN);
        for (int at = 0; at < n; at += BLOCK) {
          int k = (int) Math.min(BLOCK, n - at);
          bits.clear();
          for (int i = 0; i < k; i++) {
            bits.putShort((short) (Float.floatToRawIntBits(delta[at + i]) >>> 16));
          }
          bits.flip();
          whole.update(bits);
        }
        if (sent != (int) whole.getValue()) {
          throw new WeightStreamException("version " + version + ": tensor '" + name + "' rebuilt from version "
              + base + " fails its checksum (the receiver's base differs from the sender's)");
        }
        sink.end();
        tensorsDone++;
        remaining = -1;
        delta = null;
        name = null;
        return true;
      }
      if (pending.length() < BLOCK / 8 + 4) {
        return false;
      }
      int count = pending.drop(BLOCK / 8).iterator().getInt(ByteOrder.LITTLE_ENDIAN);
      int k = (int) Math.min(BLOCK, n - deltaNext);
      if (count < 0 || count > k) {
        throw new WeightStreamException("version " + version + ": tensor '" + name + "' has a delta block of "
            + count + " values for " + k + " elements");
      }
      if (pending.length() < BLOCK / 8 + 4 + 2 * count) {
        return false;
      }
      ByteBuffer b = take(BLOCK / 8 + 4 + 2 * count);
      byte[] mask = new byte[BLOCK / 8];
      b.get(mask);
      b.getInt();
      int marked = 0;
      for (int i = 0; i < k; i++) {
        marked += (mask[i >>> 3] >>> (i & 7)) & 1;
      }
      if (marked != count) {
        throw new WeightStreamException("version " + version + ": tensor '" + name + "' has a delta block whose "
            + "mask marks " + marked + " elements but carries " + count + " values");
      }
      for (int i = 0; i < k; i++) {
        if (((mask[i >>> 3] >>> (i & 7)) & 1) != 0) {
          delta[(int) deltaNext + i] = Float.intBitsToFloat((b.getShort() & 0xffff) << 16);
        }
      }
      deltaNext += k;
      return true;
    }

    private ByteBuffer take(int n) {
      ByteBuffer b = pending.slice(0, n).toByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
      pending = pending.drop(n);
      return b;
    }
  }

  /**
   * Collects the tensors as host arrays (float32). Given spare arrays (by tensor name, e.g. the previous version's
   * once the model has copied them), it fills those instead of allocating: a version of gigabytes then costs no
   * fresh memory and no zeroing.
   */
  public static final class Collect implements TensorSink {
    private final Map<String, HostTensor> out = new LinkedHashMap<>();
    private final Map<String, float[]> spare;

    public Collect() {
      this(null);
    }

    /** @param spare arrays to reuse, taken out (atomically, when it is a concurrent map) as tensors arrive */
    public Collect(Map<String, float[]> spare) {
      this.spare = spare;
    }
    private float[] data;
    private int filled;
    private String name;
    private long[] shape;

    @Override
    public void begin(String name, long[] shape) {
      long n = HostTensor.numel(shape);
      if (n > Integer.MAX_VALUE - 8) {
        throw new WeightStreamException("tensor '" + name + "' of " + n + " elements is too large for one array");
      }
      if (out.containsKey(name)) {
        throw new WeightStreamException("tensor '" + name + "' arrived twice");
      }
      this.name = name;
      this.shape = shape;
      float[] reused = spare == null ? null : spare.remove(name);
      this.data = reused != null && reused.length == n ? reused : new float[(int) n]; // every element is overwritten
      this.filled = 0;
    }

    @Override
    public void values(FloatBuffer values) {
      int n = values.remaining();
      values.get(data, filled, n);
      filled += n;
    }

    /** The previous version's array for this tensor, from the spare arrays (null when there is none). */
    @Override
    public float[] deltaBase(String name, long[] shape) {
      if (out.containsKey(name)) {
        throw new WeightStreamException("tensor '" + name + "' arrived twice");
      }
      float[] previous = spare == null ? null : spare.remove(name);
      this.name = name;
      this.shape = shape;
      this.data = previous;
      this.filled = previous == null ? 0 : previous.length;
      return previous;
    }

    @Override
    public void end() {
      out.put(name, new HostTensor(name, shape, data));
      data = null;
    }

    public Map<String, HostTensor> tensors() {
      return out;
    }
  }

  /** A weight stream that is malformed or corrupt. */
  public static final class WeightStreamException extends RuntimeException {
    public WeightStreamException(String message) {
      super(message);
    }
  }
}
