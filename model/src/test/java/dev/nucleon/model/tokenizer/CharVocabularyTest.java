package dev.nucleon.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CharVocabularyTest {

  @Test
  void characterTokenizerRoundTripsThroughTheTokenizersLibrary(@TempDir Path dir) throws Exception {
    assertEquals(17, CharVocabulary.write(dir, "0123456789+=$ -", '$'));
    try (HfTokenizer tok = HfTokenizer.load(dir)) {
      assertEquals(1, tok.bosId());
      assertArrayEquals(new int[] {14}, tok.eosIds(), "'$' ends completions");
      assertArrayEquals(new int[] {1, 2, 9, 12, 6, 10, 13}, tok.encode("07+48=", true));
      assertArrayEquals(new int[] {7, 7, 14}, tok.encode("55$", false));
      assertEquals("07+48=55$", tok.decode(new int[] {1, 2, 9, 12, 6, 10, 13, 7, 7, 14}, true));
      assertEquals("1 - 2", tok.decode(tok.encode("1 - 2", false), false));
      assertEquals(17, tok.vocabSize());
    }
  }
}
