package dev.nucleon.model.io;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.nucleon.model.ModelFormatException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads and writes the safetensors format: an 8-byte little-endian header length, a JSON header mapping each tensor
 * name to {@code {dtype, shape, data_offsets}}, then the raw little-endian bytes.
 *
 * <p>F32, F16 and BF16 (and F64) are read into float32 in Java: DJL's own decoder aborts the JVM on BF16, and
 * reading here lets every problem (a truncated file, offsets outside the data, a size that disagrees with the
 * shape) be reported with the file and tensor name instead of a native crash. Files are written as F32 or BF16
 * (rounded to nearest even, as PyTorch rounds).
 */
public final class Safetensors {

  private static final ObjectMapper JSON = new ObjectMapper();
  private static final long MAX_HEADER = 100L * 1024 * 1024;

  private Safetensors() {}

  /** Reads every tensor of a file, in header order. */
  public static Map<String, HostTensor> read(Path file) {
    return read(file, null);
  }

  /**
   * Reads every tensor of a file, in header order, and records each tensor's stored dtype as the header names it
   * ({@code F32}, {@code BF16}, ...) in {@code storedTypes} when given.
   */
  public static Map<String, HostTensor> read(Path file, Map<String, String> storedTypes) {
    try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
      long size = ch.size();
      if (size < 8) {
        throw new ModelFormatException(file + ": truncated safetensors file (" + size + " bytes, no header)");
      }
      ByteBuffer lenBuf = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
      readFully(ch, lenBuf, 0, file);
      long headerLen = lenBuf.flip().getLong();
      if (headerLen <= 0 || headerLen > MAX_HEADER || 8 + headerLen > size) {
        throw new ModelFormatException(file + ": invalid or truncated safetensors header (header length "
            + headerLen + ", file size " + size + ")");
      }
      ByteBuffer headerBuf = ByteBuffer.allocate((int) headerLen);
      readFully(ch, headerBuf, 8, file);
      JsonNode header;
      try {
        header = JSON.readTree(new String(headerBuf.array(), StandardCharsets.UTF_8));
      } catch (IOException e) {
        throw new ModelFormatException(file + ": safetensors header is not valid JSON: " + e.getMessage(), e);
      }
      if (header == null || !header.isObject()) {
        throw new ModelFormatException(file + ": safetensors header is not a JSON object");
      }
      long dataStart = 8 + headerLen;
      long dataLen = size - dataStart;
      Map<String, HostTensor> out = new LinkedHashMap<>();
      for (Iterator<Map.Entry<String, JsonNode>> it = header.fields(); it.hasNext(); ) {
        Map.Entry<String, JsonNode> e = it.next();
        if (e.getKey().equals("__metadata__")) {
          continue;
        }
        out.put(e.getKey(), readTensor(ch, file, e.getKey(), e.getValue(), dataStart, dataLen));
        if (storedTypes != null) {
          storedTypes.put(e.getKey(), e.getValue().path("dtype").asText());
        }
      }
      return out;
    } catch (NoSuchFileException e) {
      throw new ModelFormatException(file + ": file not found");
    } catch (IOException e) {
      throw new ModelFormatException(file + ": cannot read: " + e.getMessage(), e);
    }
  }

  private static HostTensor readTensor(FileChannel ch, Path file, String name, JsonNode info, long dataStart,
      long dataLen) throws IOException {
    String dtype = info.path("dtype").asText("");
    int width = switch (dtype) {
      case "F32" -> 4;
      case "F16", "BF16" -> 2;
      case "F64" -> 8;
      default -> throw new ModelFormatException(file + ": tensor '" + name + "' has dtype '" + dtype
          + "'; supported: F32, F16, BF16, F64");
    };
    JsonNode shapeNode = info.get("shape");
    JsonNode offsets = info.get("data_offsets");
    if (shapeNode == null || !shapeNode.isArray() || offsets == null || !offsets.isArray() || offsets.size() != 2) {
      throw new ModelFormatException(file + ": tensor '" + name + "' lacks a shape or data_offsets");
    }
    long[] shape = new long[shapeNode.size()];
    for (int i = 0; i < shape.length; i++) {
      shape[i] = shapeNode.get(i).asLong(-1);
      if (shape[i] < 0) {
        throw new ModelFormatException(file + ": tensor '" + name + "' has an invalid shape " + shapeNode);
      }
    }
    long begin = offsets.get(0).asLong(-1);
    long end = offsets.get(1).asLong(-1);
    long numel = HostTensor.numel(shape);
    if (begin < 0 || end < begin) {
      throw new ModelFormatException(file + ": tensor '" + name + "' has invalid data_offsets " + offsets);
    }
    if (end - begin != numel * width) {
      throw new ModelFormatException(file + ": tensor '" + name + "' has " + (end - begin) + " bytes but shape "
          + shapeNode + " of " + dtype + " needs " + numel * width);
    }
    if (end > dataLen) {
      throw new ModelFormatException(file + ": truncated: tensor '" + name + "' ends at byte " + end
          + " of the data section but the file holds only " + dataLen + " data bytes");
    }
    if (numel > Integer.MAX_VALUE - 8) {
      throw new ModelFormatException(file + ": tensor '" + name + "' is too large for one array (" + numel + ")");
    }
    ByteBuffer raw = ByteBuffer.allocate((int) (end - begin)).order(ByteOrder.LITTLE_ENDIAN);
    readFully(ch, raw, dataStart + begin, file);
    raw.flip();
    float[] data = new float[(int) numel];
    switch (dtype) {
      case "F32" -> raw.asFloatBuffer().get(data);
      case "F64" -> {
        for (int i = 0; i < data.length; i++) {
          data[i] = (float) raw.getDouble();
        }
      }
      case "F16" -> {
        for (int i = 0; i < data.length; i++) {
          data[i] = halfToFloat(raw.getShort());
        }
      }
      default -> {
        for (int i = 0; i < data.length; i++) {
          data[i] = Float.intBitsToFloat((raw.getShort() & 0xffff) << 16);
        }
      }
    }
    return new HostTensor(name, shape, data);
  }

  /** float32 to bfloat16 bits, rounded to nearest, ties to even; NaN stays NaN. */
  public static short toBf16(float x) {
    int bits = Float.floatToRawIntBits(x);
    if (Float.isNaN(x)) {
      return (short) ((bits >>> 16) | 0x40); // keep it a (quiet) NaN after truncation
    }
    return (short) ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16);
  }

  /** IEEE 754 binary16 to float32 (Java 17 has no Float.float16ToFloat). */
  static float halfToFloat(short bits) {
    int h = bits & 0xffff;
    int sign = (h & 0x8000) << 16;
    int exp = (h >>> 10) & 0x1f;
    int mant = h & 0x3ff;
    if (exp == 0x1f) {
      return Float.intBitsToFloat(sign | 0x7f800000 | (mant << 13));
    }
    if (exp == 0) {
      float v = mant * 0x1p-24f;
      return sign == 0 ? v : -v;
    }
    return Float.intBitsToFloat(sign | ((exp + 112) << 23) | (mant << 13));
  }

  private static void readFully(FileChannel ch, ByteBuffer buf, long position, Path file) throws IOException {
    long pos = position;
    while (buf.hasRemaining()) {
      int n = ch.read(buf, pos);
      if (n < 0) {
        throw new ModelFormatException(file + ": truncated safetensors file (unexpected end at byte " + pos + ")");
      }
      pos += n;
    }
  }

  /**
   * Writes tensors as F32 into {@code file}, through a temporary file renamed into place so a crash never leaves a
   * half-written checkpoint under the final name.
   */
  public static void write(Path file, Collection<HostTensor> tensors, Map<String, String> metadata)
      throws IOException {
    write(file, tensors, metadata, false);
  }

  /** Writes tensors as F32, or as BF16 when {@code bf16}, into {@code file} (atomically, as above). */
  public static void write(Path file, Collection<HostTensor> tensors, Map<String, String> metadata, boolean bf16)
      throws IOException {
    write(file, tensors, metadata, bf16, name -> false);
  }

  /**
   * Writes tensors as F32, or as BF16 when {@code bf16} except those {@code keepF32} names (a bfloat16 checkpoint
   * of a mixture of experts keeps its routers in float32), into {@code file} (atomically, as above).
   */
  public static void write(Path file, Collection<HostTensor> tensors, Map<String, String> metadata, boolean bf16,
      java.util.function.Predicate<String> keepF32) throws IOException {
    ObjectNode header = JSON.createObjectNode();
    ObjectNode meta = header.putObject("__metadata__");
    meta.put("format", "pt");
    metadata.forEach(meta::put);
    long offset = 0;
    List<HostTensor> ordered = new ArrayList<>(tensors);
    for (HostTensor t : ordered) {
      ObjectNode n = header.putObject(t.name());
      int width = bf16 && !keepF32.test(t.name()) ? 2 : 4;
      n.put("dtype", width == 2 ? "BF16" : "F32");
      var shape = n.putArray("shape");
      for (long s : t.shape()) {
        shape.add(s);
      }
      var off = n.putArray("data_offsets");
      off.add(offset);
      offset += (long) width * t.data().length;
      off.add(offset);
    }
    byte[] headerBytes = JSON.writeValueAsString(header).getBytes(StandardCharsets.UTF_8);
    int pad = (8 - headerBytes.length % 8) % 8;
    Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
    try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
        StandardOpenOption.WRITE)) {
      ByteBuffer head = ByteBuffer.allocate(8 + headerBytes.length + pad).order(ByteOrder.LITTLE_ENDIAN);
      head.putLong(headerBytes.length + pad).put(headerBytes);
      for (int i = 0; i < pad; i++) {
        head.put((byte) ' ');
      }
      writeFully(ch, head.flip());
      ByteBuffer buf = ByteBuffer.allocate(1 << 20).order(ByteOrder.LITTLE_ENDIAN);
      for (HostTensor t : ordered) {
        float[] d = t.data();
        boolean half = bf16 && !keepF32.test(t.name());
        int width = half ? 2 : 4;
        int i = 0;
        while (i < d.length) {
          int n = Math.min(buf.remaining() / width, d.length - i);
          if (half) {
            for (int k = 0; k < n; k++) {
              buf.putShort(toBf16(d[i + k]));
            }
          } else {
            buf.asFloatBuffer().put(d, i, n);
            buf.position(buf.position() + 4 * n);
          }
          i += n;
          if (!buf.hasRemaining() || i == d.length) {
            writeFully(ch, buf.flip());
            buf.clear();
          }
        }
      }
      ch.force(true);
    }
    Files.move(tmp, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING,
        java.nio.file.StandardCopyOption.ATOMIC_MOVE);
  }

  private static void writeFully(FileChannel ch, ByteBuffer buf) throws IOException {
    while (buf.hasRemaining()) {
      ch.write(buf);
    }
  }
}
