package dev.nucleon.model.tokenizer;

import dev.nucleon.model.ModelFormatException;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The SentencePiece-style BPE of llama2.c's {@code tokenizer.bin} files ({@code tok512.bin} and friends).
 *
 * <p>File layout: int32 max token length, then for each id a float32 merge score, an int32 byte length and the
 * bytes. Id 0 is {@code <unk>}, 1 BOS, 2 EOS, 3..258 the byte fallbacks {@code <0x00>..<0xFF>}.
 *
 * <p>Encoding follows llama2.c's {@code encode}: optional BOS, a leading space (SentencePiece's dummy prefix) when
 * the text is not empty, one piece per UTF-8 code point (unknown code points fall back to their bytes), then
 * repeatedly merge the adjacent pair whose concatenation is in the vocabulary with the highest score.
 */
public final class Llama2cTokenizer implements TextTokenizer {

  private static final int BOS = 1;
  private static final int EOS = 2;
  private static final int BYTE_OFFSET = 3;

  private final String[] pieces;
  private final byte[][] pieceBytes;
  private final float[] scores;
  private final Map<String, Integer> ids = new HashMap<>();

  private Llama2cTokenizer(String[] pieces, byte[][] pieceBytes, float[] scores) {
    this.pieces = pieces;
    this.pieceBytes = pieceBytes;
    this.scores = scores;
    for (int i = 0; i < pieces.length; i++) {
      ids.putIfAbsent(pieces[i], i);
    }
  }

  /**
   * Reads a llama2.c tokenizer file.
   *
   * @param vocabSize the number of entries (the model's vocabulary size)
   */
  public static Llama2cTokenizer load(Path file, int vocabSize) {
    byte[] bytes;
    try {
      bytes = Files.readAllBytes(file);
    } catch (NoSuchFileException e) {
      throw new ModelFormatException(file + ": tokenizer file not found");
    } catch (IOException e) {
      throw new ModelFormatException(file + ": cannot read: " + e.getMessage(), e);
    }
    ByteBuffer buf = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
    String[] pieces = new String[vocabSize];
    byte[][] raw = new byte[vocabSize][];
    float[] scores = new float[vocabSize];
    try {
      buf.getInt(); // max token length: not needed in Java
      for (int i = 0; i < vocabSize; i++) {
        scores[i] = buf.getFloat();
        int len = buf.getInt();
        if (len < 0 || len > buf.remaining()) {
          throw new ModelFormatException(file + ": token " + i + " has invalid length " + len);
        }
        raw[i] = new byte[len];
        buf.get(raw[i]);
        pieces[i] = new String(raw[i], StandardCharsets.UTF_8);
      }
    } catch (java.nio.BufferUnderflowException e) {
      throw new ModelFormatException(file + ": truncated llama2.c tokenizer (expected " + vocabSize + " tokens)");
    }
    return new Llama2cTokenizer(pieces, raw, scores);
  }

  @Override
  public int[] encode(String text, boolean addSpecialTokens) {
    List<Integer> tokens = new ArrayList<>();
    if (!text.isEmpty()) {
      tokens.add(id(" "));
    }
    text.codePoints().forEach(cp -> {
      String s = new String(Character.toChars(cp));
      Integer id = ids.get(s);
      if (id != null) {
        tokens.add(id);
      } else {
        for (byte b : s.getBytes(StandardCharsets.UTF_8)) {
          tokens.add((b & 0xff) + BYTE_OFFSET);
        }
      }
    });
    while (true) {
      float best = Float.NEGATIVE_INFINITY;
      int bestId = -1;
      int bestIdx = -1;
      for (int i = 0; i + 1 < tokens.size(); i++) {
        Integer merged = ids.get(pieces[tokens.get(i)] + pieces[tokens.get(i + 1)]);
        if (merged != null && scores[merged] > best) {
          best = scores[merged];
          bestId = merged;
          bestIdx = i;
        }
      }
      if (bestIdx < 0) {
        break;
      }
      tokens.set(bestIdx, bestId);
      tokens.remove(bestIdx + 1);
    }
    int offset = addSpecialTokens ? 1 : 0;
    int[] out = new int[tokens.size() + offset];
    if (addSpecialTokens) {
      out[0] = BOS;
    }
    for (int i = 0; i < tokens.size(); i++) {
      out[i + offset] = tokens.get(i);
    }
    return out;
  }

  private int id(String piece) {
    Integer id = ids.get(piece);
    if (id == null) {
      throw new IllegalStateException("tokenizer has no piece for '" + piece + "'");
    }
    return id;
  }

  /**
   * Decodes like llama2.c: byte-fallback pieces become their byte, and the space after BOS (the dummy prefix) is
   * dropped (as in llama2.c, a completion decoded alone keeps its leading space).
   */
  @Override
  public String decode(int[] tokenIds, boolean skipSpecialTokens) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    int prev = -1;
    for (int id : tokenIds) {
      if (id < 0 || id >= pieces.length) {
        throw new IllegalArgumentException("token id " + id + " outside vocabulary of " + pieces.length);
      }
      boolean special = id == BOS || id == EOS || id == 0;
      if (special && skipSpecialTokens) {
        prev = id;
        continue;
      }
      byte[] piece = pieceBytes[id];
      if (id >= BYTE_OFFSET && id < BYTE_OFFSET + 256) {
        out.write(id - BYTE_OFFSET);
      } else {
        int start = prev == BOS && piece.length > 0 && piece[0] == ' ' ? 1 : 0;
        out.write(piece, start, piece.length - start);
      }
      prev = id;
    }
    return out.toString(StandardCharsets.UTF_8);
  }

  @Override
  public int vocabSize() {
    return pieces.length;
  }

  @Override
  public int bosId() {
    return BOS;
  }

  @Override
  public int[] eosIds() {
    return new int[] {EOS};
  }
}
