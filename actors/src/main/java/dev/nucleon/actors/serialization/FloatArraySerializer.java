package dev.nucleon.actors.serialization;

import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.Serializer;
import com.esotericsoftware.kryo.io.ByteBufferInput;
import com.esotericsoftware.kryo.io.ByteBufferOutput;
import com.esotericsoftware.kryo.io.Input;
import com.esotericsoftware.kryo.io.KryoBufferOverflowException;
import com.esotericsoftware.kryo.io.Output;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * {@code float[]} in Kryo's own format (length + 1 as a varint, 0 for null, then the floats as little-endian IEEE
 * bits), but copied in bulk when the output or input is a ByteBuffer (Artery's path), where Kryo's serializer would
 * put the floats one byte at a time. The bytes are identical either way, so either side may use either path.
 */
final class FloatArraySerializer extends Serializer<float[]> {
  /** Below this the per-float path is as fast. */
  private static final int BULK_MIN = 64;

  FloatArraySerializer() {
    super(true);
  }

  @Override
  public void write(Kryo kryo, Output output, float[] array) {
    if (array == null) {
      output.writeByte(Kryo.NULL);
      return;
    }
    output.writeVarInt(array.length + 1, true);
    if (output instanceof ByteBufferOutput bo && array.length >= BULK_MIN) {
      ByteBuffer buffer = bo.getByteBuffer();
      int position = bo.position();
      long bytes = 4L * array.length;
      if (buffer.limit() - position < bytes) {
        throw new KryoBufferOverflowException("Buffer overflow. Available: " + (buffer.limit() - position)
            + ", required: " + bytes);
      }
      ByteBuffer view = buffer.duplicate().order(ByteOrder.LITTLE_ENDIAN);
      view.position(position);
      view.asFloatBuffer().put(array);
      bo.setPosition(position + (int) bytes);
    } else {
      output.writeFloats(array, 0, array.length);
    }
  }

  @Override
  public float[] read(Kryo kryo, Input input, Class<? extends float[]> type) {
    int length = input.readVarInt(true);
    if (length == Kryo.NULL) {
      return null;
    }
    length--;
    if (input instanceof ByteBufferInput bi && length >= BULK_MIN
        && (long) bi.limit() - bi.position() >= 4L * length) {
      float[] array = new float[length];
      ByteBuffer view = bi.getByteBuffer().duplicate().order(ByteOrder.LITTLE_ENDIAN);
      int position = bi.position();
      view.position(position);
      view.asFloatBuffer().get(array);
      bi.setPosition(position + 4 * length);
      return array;
    }
    return input.readFloats(length);
  }

  @Override
  public float[] copy(Kryo kryo, float[] original) {
    return original.clone();
  }
}
