package dev.nucleon.learner.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TrainerStateTest {

  @TempDir Path tmp;

  @Test
  void roundTripIncludingTheBlob() throws Exception {
    byte[] blob = new byte[4096];
    new SplittableRandom(7).nextBytes(blob);
    long[] rngState = {Long.MIN_VALUE, -1, 0, 42, Long.MAX_VALUE};
    Map<String, String> rng = new HashMap<>();
    rng.put("sampling", TrainerState.encodeLongs(rngState));
    rng.put("init", "1234");
    TrainerState state = new TrainerState(120, 7680, rng, blob);

    Path file = tmp.resolve("trainer-state.json");
    state.write(file);
    TrainerState back = TrainerState.read(file);

    assertEquals(state, back);
    assertArrayEquals(blob, back.blob());
    assertArrayEquals(rngState, TrainerState.decodeLongs(back.rng().get("sampling")));
    assertEquals(120, back.step());
    assertEquals(7680, back.samplesSeen());
    try (var s = Files.list(tmp)) {
      assertEquals(1, s.count(), "no temp file left next to the state");
    }
    String json = Files.readString(file);
    assertTrue(json.contains("\"format\" : 1"), json);

    // overwriting is atomic and replaces the content
    new TrainerState(121, 7744, Map.of(), null).write(file);
    TrainerState next = TrainerState.read(file);
    assertEquals(121, next.step());
    assertEquals(0, next.blob().length);
    assertEquals(Map.of(), next.rng());
  }

  @Test
  void blobIsCopiedNotShared() {
    byte[] blob = {1, 2, 3};
    TrainerState s = new TrainerState(0, 0, null, blob);
    blob[0] = 9;
    assertEquals(1, s.blob()[0]);
    assertNotSame(s.blob(), s.blob());
    assertEquals(s, new TrainerState(0, 0, Map.of(), new byte[] {1, 2, 3}));
    assertEquals(s.hashCode(), new TrainerState(0, 0, Map.of(), new byte[] {1, 2, 3}).hashCode());
    assertTrue(s.toString().contains("3 bytes"), s.toString());
  }

  @Test
  void badFilesAreRefusedNamingTheFileAndTheField() throws Exception {
    Path file = tmp.resolve("state.json");
    Files.writeString(file, "{\"format\":1,\"step\":3,\"rng\":{},\"blob\":\"\"}");
    IOException e = assertThrows(IOException.class, () -> TrainerState.read(file));
    assertTrue(e.getMessage().contains(file.toString()) && e.getMessage().contains("samplesSeen"), e.getMessage());

    Files.writeString(file, "{\"format\":2,\"step\":3,\"samplesSeen\":0,\"rng\":{},\"blob\":\"\"}");
    e = assertThrows(IOException.class, () -> TrainerState.read(file));
    assertTrue(e.getMessage().contains("format 2"), e.getMessage());

    Files.writeString(file, "{\"format\":1,\"step\":3,\"samplesSeen\":0,\"rng\":{},\"blob\":\"***\"}");
    e = assertThrows(IOException.class, () -> TrainerState.read(file));
    assertTrue(e.getMessage().contains("base64"), e.getMessage());

    Files.writeString(file, "{\"format\":1,");
    e = assertThrows(IOException.class, () -> TrainerState.read(file));
    assertTrue(e.getMessage().contains("unreadable"), e.getMessage());

    assertThrows(IllegalArgumentException.class, () -> new TrainerState(-1, 0, Map.of(), null));
    assertThrows(IllegalArgumentException.class, () -> TrainerState.decodeLongs("1,x"));
    assertArrayEquals(new long[0], TrainerState.decodeLongs(TrainerState.encodeLongs(new long[0])));
  }
}
