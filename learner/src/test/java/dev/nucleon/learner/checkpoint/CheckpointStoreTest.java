package dev.nucleon.learner.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.LoggerFactory;

class CheckpointStoreTest {

  private static final String MODEL = "model/model.safetensors";
  private static final String OPTIM = "optimizer/adamw.bin";
  private static final String STATE = "trainer-state.json";

  @TempDir Path tmp;

  private Path root;
  private ListAppender<ILoggingEvent> logs;
  private Logger storeLogger;

  @BeforeEach
  void setUp() {
    root = tmp.resolve("ckpt");
    storeLogger = (Logger) LoggerFactory.getLogger(CheckpointStore.class);
    logs = new ListAppender<>();
    logs.start();
    storeLogger.addAppender(logs);
  }

  @AfterEach
  void tearDown() {
    storeLogger.detachAppender(logs);
  }

  /** Deterministic content per (step, salt), so tests can compare bytes. */
  private static byte[] content(long step, int salt, int size) {
    byte[] b = new byte[size];
    new Random(step * 31 + salt).nextBytes(b);
    return b;
  }

  /** A writer like the learner's: model, optimizer state and a trainer state, in sub-directories. */
  private static CheckpointStore.Writer writer(long step) {
    return dir -> {
      Files.createDirectories(dir.resolve("model"));
      Files.createDirectories(dir.resolve("optimizer"));
      Files.write(dir.resolve(MODEL), content(step, 1, 70_000));
      Files.write(dir.resolve(OPTIM), content(step, 2, 3_000));
      new TrainerState(step, step * 64, Map.of("sampling", "1,2,3"), content(step, 3, 50)).write(dir.resolve(STATE));
    };
  }

  private static String sha256(byte[] bytes) throws Exception {
    return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
  }

  private Set<String> rootEntries() throws IOException {
    try (Stream<Path> s = Files.list(root)) {
      return s.map(p -> p.getFileName().toString()).collect(Collectors.toCollection(TreeSet::new));
    }
  }

  private List<String> warnings() {
    return logs.list.stream()
        .filter(e -> e.getLevel() == Level.WARN)
        .map(ILoggingEvent::getFormattedMessage)
        .toList();
  }

  private static void flipByte(Path file, long at) throws IOException {
    try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw")) {
      raf.seek(at);
      int b = raf.read();
      raf.seek(at);
      raf.write(b ^ 0x01);
    }
  }

  @Test
  void roundTripGivesBackTheWrittenFilesAndAManifestListingThem() throws Exception {
    CheckpointStore store = new CheckpointStore(root, 3);
    Path dir = store.save(123, writer(123));

    assertEquals(root.resolve("step-000000123"), dir);
    assertEquals(Set.of("step-000000123"), rootEntries(), "no temp directory left behind");
    assertArrayEquals(content(123, 1, 70_000), Files.readAllBytes(dir.resolve(MODEL)));
    assertArrayEquals(content(123, 2, 3_000), Files.readAllBytes(dir.resolve(OPTIM)));
    assertEquals(new TrainerState(123, 123 * 64, Map.of("sampling", "1,2,3"), content(123, 3, 50)),
        TrainerState.read(dir.resolve(STATE)));

    JsonNode manifest = new ObjectMapper().readTree(dir.resolve(CheckpointStore.MANIFEST).toFile());
    assertEquals(1, manifest.get("format").asInt());
    assertEquals(123, manifest.get("step").asLong());
    assertTrue(manifest.get("created").asText().endsWith("Z"), manifest.toString());
    Set<String> listed = new TreeSet<>();
    manifest.get("files").fieldNames().forEachRemaining(listed::add);
    assertEquals(Set.of(MODEL, OPTIM, STATE), listed);
    assertEquals(sha256(content(123, 1, 70_000)), manifest.get("files").get(MODEL).get("sha256").asText());
    assertEquals(70_000, manifest.get("files").get(MODEL).get("bytes").asLong());

    Checkpoint c = store.latestValid().orElseThrow();
    assertEquals(123, c.step());
    assertEquals(dir, c.dir());
    assertEquals(Set.of(MODEL, OPTIM, STATE), c.files().keySet());
    assertEquals(sha256(content(123, 2, 3_000)), c.sha256().get(OPTIM));
    assertEquals(dir.resolve(MODEL), c.resolve(MODEL));
    assertEquals(List.of(123L), store.steps());
    assertTrue(warnings().isEmpty(), warnings().toString());
  }

  @Test
  void keepsOnlyTheLastN() throws Exception {
    CheckpointStore store = new CheckpointStore(root, 3);
    for (long step = 1; step <= 6; step++) {
      store.save(step * 10, writer(step * 10));
    }
    assertEquals(List.of(40L, 50L, 60L), store.steps());
    assertEquals(Set.of("step-000000040", "step-000000050", "step-000000060"), rootEntries());
    assertEquals(60, store.latestValid().orElseThrow().step());
  }

  @Test
  void pruningNeverDeletesTheCheckpointJustWritten() throws Exception {
    CheckpointStore store = new CheckpointStore(root, 2);
    store.save(10, writer(10));
    store.save(20, writer(20));
    store.save(5, writer(5)); // lower than the others, e.g. a run restarted from an older checkpoint
    assertEquals(List.of(5L, 20L), store.steps());
    CheckpointStore.verify(store.dirOf(5));

    CheckpointStore one = new CheckpointStore(tmp.resolve("one"), 1);
    one.save(7, writer(7));
    one.save(3, writer(3));
    assertEquals(List.of(3L), one.steps());
  }

  @Test
  void flippedByteIsRefusedNamingTheFileAndTheStoreFallsBack() throws Exception {
    CheckpointStore store = new CheckpointStore(root, 5);
    store.save(1, writer(1));
    Path bad = store.save(2, writer(2));
    flipByte(bad.resolve(MODEL), 12_345);

    CorruptCheckpointException e =
        assertThrows(CorruptCheckpointException.class, () -> CheckpointStore.verify(bad));
    assertTrue(e.getMessage().contains(bad.toString()), e.getMessage());
    assertTrue(e.getMessage().contains(MODEL), e.getMessage());
    assertTrue(e.getMessage().contains("checksum mismatch"), e.getMessage());
    assertEquals(MODEL, e.file());
    assertEquals(bad, e.dir());

    Checkpoint c = store.latestValid().orElseThrow();
    assertEquals(1, c.step());
    List<String> w = warnings();
    assertEquals(1, w.size(), w.toString());
    assertTrue(w.get(0).contains(bad.toString()) && w.get(0).contains(MODEL) && w.get(0).contains("checksum"),
        w.get(0));
    assertEquals(List.of(1L, 2L), store.steps(), "steps() lists invalid checkpoints too");
  }

  @Test
  void directoryWithoutManifestIsAPartialWriteAndIgnored() throws Exception {
    CheckpointStore store = new CheckpointStore(root, 5);
    store.save(1, writer(1));
    // a crash mid-save by some other means: files there, manifest never written
    Path partial = root.resolve("step-000000002");
    writer(2).write(Files.createDirectories(partial));

    Checkpoint c = store.latestValid().orElseThrow();
    assertEquals(1, c.step());
    CorruptCheckpointException e =
        assertThrows(CorruptCheckpointException.class, () -> CheckpointStore.verify(partial));
    assertEquals(CheckpointStore.MANIFEST, e.file());
    assertTrue(e.getMessage().contains("partial write"), e.getMessage());
    assertTrue(warnings().get(0).contains(partial.toString()), warnings().toString());
  }

  @Test
  void truncatedFileIsRefused() throws Exception {
    CheckpointStore store = new CheckpointStore(root, 5);
    store.save(1, writer(1));
    Path dir = store.save(2, writer(2));
    try (RandomAccessFile raf = new RandomAccessFile(dir.resolve(OPTIM).toFile(), "rw")) {
      raf.setLength(1_000);
    }
    CorruptCheckpointException e =
        assertThrows(CorruptCheckpointException.class, () -> CheckpointStore.verify(dir));
    assertEquals(OPTIM, e.file());
    assertTrue(e.getMessage().contains("truncated: 1000 bytes, the manifest says 3000"), e.getMessage());
    assertEquals(1, store.latestValid().orElseThrow().step());
  }

  @Test
  void missingFileAndGrownFileAreRefused() throws Exception {
    CheckpointStore store = new CheckpointStore(root, 5);
    Path dir = store.save(1, writer(1));
    Files.write(dir.resolve(OPTIM), new byte[] {1}, java.nio.file.StandardOpenOption.APPEND);
    CorruptCheckpointException grown =
        assertThrows(CorruptCheckpointException.class, () -> CheckpointStore.verify(dir));
    assertTrue(grown.getMessage().contains("size mismatch"), grown.getMessage());

    Files.delete(dir.resolve(MODEL));
    CorruptCheckpointException missing =
        assertThrows(CorruptCheckpointException.class, () -> CheckpointStore.verify(dir));
    assertEquals(MODEL, missing.file());
    assertTrue(missing.getMessage().contains("missing"), missing.getMessage());
    assertTrue(store.latestValid().isEmpty());
  }

  @Test
  void failingWriterLeavesNothingBehindAndThePreviousCheckpointIntact() throws Exception {
    CheckpointStore store = new CheckpointStore(root, 5);
    Path good = store.save(1, writer(1));
    Set<String> before = rootEntries();

    IOException io =
        assertThrows(
            IOException.class,
            () ->
                store.save(
                    2,
                    dir -> {
                      writer(2).write(dir);
                      throw new IOException("disk full");
                    }));
    assertEquals("disk full", io.getMessage());
    assertThrows(
        IllegalStateException.class,
        () ->
            store.save(
                1, // even when re-saving the existing step
                dir -> {
                  Files.write(dir.resolve("half"), new byte[10]);
                  throw new IllegalStateException("boom");
                }));

    assertEquals(before, rootEntries(), "no step-2, no temp dir");
    assertEquals(List.of(1L), store.steps());
    Checkpoint c = CheckpointStore.verify(good);
    assertEquals(1, c.step());
    assertArrayEquals(content(1, 1, 70_000), Files.readAllBytes(good.resolve(MODEL)));
    assertFalse(Files.exists(good.resolve("half")));
  }

  @Test
  void writerMayNotWriteTheManifestOrLinks() throws Exception {
    CheckpointStore store = new CheckpointStore(root, 5);
    IOException e =
        assertThrows(
            IOException.class,
            () -> store.save(1, dir -> Files.writeString(dir.resolve(CheckpointStore.MANIFEST), "{}")));
    assertTrue(e.getMessage().contains("reserved"), e.getMessage());

    Path outside = Files.writeString(tmp.resolve("outside.bin"), "x");
    IOException link =
        assertThrows(
            IOException.class, () -> store.save(2, dir -> Files.createSymbolicLink(dir.resolve("l"), outside)));
    assertTrue(link.getMessage().contains("not a regular file"), link.getMessage());
    assertTrue(rootEntries().isEmpty(), rootEntries().toString());
  }

  @Test
  void resavingTheSameStepReplacesItSafely() throws Exception {
    CheckpointStore store = new CheckpointStore(root, 2);
    store.save(3, writer(3));
    store.save(4, writer(4));
    Path again =
        store.save(
            4,
            dir -> {
              Files.write(dir.resolve("only.bin"), content(99, 9, 500));
            });
    assertEquals(List.of(3L, 4L), store.steps(), "a re-save does not count twice against keep-last");
    assertEquals(Set.of("step-000000003", "step-000000004"), rootEntries());
    Checkpoint c = CheckpointStore.verify(again);
    assertEquals(Set.of("only.bin"), c.files().keySet());
    assertFalse(Files.exists(again.resolve(MODEL)), "nothing of the old copy remains");
    assertArrayEquals(content(99, 9, 500), Files.readAllBytes(again.resolve("only.bin")));
  }

  @Test
  void staleTempDirectoriesAreRemovedAndNeverLoaded() throws Exception {
    CheckpointStore first = new CheckpointStore(root, 5);
    first.save(1, writer(1));
    // a crashed save of step 9 that got as far as its manifest, and a crashed prune
    Path staleTmp = root.resolve(".tmp-step-000000009-abc123");
    writer(9).write(Files.createDirectories(staleTmp));
    Files.writeString(staleTmp.resolve(CheckpointStore.MANIFEST), "{\"format\":1}");
    Path staleDel = Files.createDirectories(root.resolve(".del-step-000000000-ff"));
    Files.writeString(staleDel.resolve("x"), "x");
    assertEquals(1, first.latestValid().orElseThrow().step(), "temp directories are not candidates");

    CheckpointStore reopened = new CheckpointStore(root, 5);
    assertEquals(Set.of("step-000000001"), rootEntries());
    assertEquals(List.of(1L), reopened.steps());

    // ...and at the next save of a running store
    writer(9).write(Files.createDirectories(staleTmp));
    reopened.save(2, writer(2));
    assertEquals(Set.of("step-000000001", "step-000000002"), rootEntries());
  }

  @Test
  void interruptedResaveIsRolledBackToTheOldCopy() throws Exception {
    CheckpointStore store = new CheckpointStore(root, 5);
    Path dir = store.save(3, writer(3));
    // crash between "step-3 -> .old" and ".tmp -> step-3"
    Files.move(dir, root.resolve(".old-step-000000003-1a"));
    writer(3).write(Files.createDirectories(root.resolve(".tmp-step-000000003-2b")));

    CheckpointStore reopened = new CheckpointStore(root, 5);
    assertEquals(Set.of("step-000000003"), rootEntries());
    assertEquals(3, reopened.latestValid().orElseThrow().step());
  }

  @Test
  void unlistedExtraFilesAreToleratedAndIgnored() throws Exception {
    CheckpointStore store = new CheckpointStore(root, 5);
    Path dir = store.save(1, writer(1));
    Files.writeString(dir.resolve("NOTES.txt"), "eval: 0.42");
    Checkpoint c = CheckpointStore.verify(dir);
    assertFalse(c.has("NOTES.txt"));
    assertEquals(3, c.files().size());
  }

  @Test
  void manifestThatDisagreesWithTheDirectoryOrEscapesItIsRefused() throws Exception {
    CheckpointStore store = new CheckpointStore(root, 5);
    Path one = store.save(1, writer(1));
    // copied under another step's name
    Path two = Files.createDirectories(root.resolve("step-000000002"));
    try (Stream<Path> s = Files.walk(one)) {
      for (Path p : s.toList()) {
        Path q = two.resolve(one.relativize(p).toString());
        if (Files.isDirectory(p)) {
          Files.createDirectories(q);
        } else {
          Files.copy(p, q);
        }
      }
    }
    CorruptCheckpointException e =
        assertThrows(CorruptCheckpointException.class, () -> CheckpointStore.verify(two));
    assertTrue(e.getMessage().contains("says step 1 but the directory is step 2"), e.getMessage());

    // an explicit path with any other name is fine
    Path elsewhere = tmp.resolve("best-model");
    Files.move(two, elsewhere);
    assertEquals(1, CheckpointStore.verify(elsewhere).step());

    // path traversal and unparsable manifests
    ObjectMapper json = new ObjectMapper();
    ObjectNode m = (ObjectNode) json.readTree(one.resolve(CheckpointStore.MANIFEST).toFile());
    ((ObjectNode) m.get("files")).set("../outside.bin", m.get("files").get(MODEL));
    Files.write(one.resolve(CheckpointStore.MANIFEST), json.writeValueAsBytes(m));
    CorruptCheckpointException unsafe =
        assertThrows(CorruptCheckpointException.class, () -> CheckpointStore.verify(one));
    assertTrue(unsafe.getMessage().contains("unsafe path"), unsafe.getMessage());

    Files.writeString(one.resolve(CheckpointStore.MANIFEST), "{\"format\":1,\"st");
    CorruptCheckpointException garbled =
        assertThrows(CorruptCheckpointException.class, () -> CheckpointStore.verify(one));
    assertEquals(CheckpointStore.MANIFEST, garbled.file());
    assertTrue(garbled.getMessage().contains("not valid JSON"), garbled.getMessage());
    assertTrue(store.latestValid().isEmpty());
    assertEquals(1, warnings().size(), warnings().toString());
    assertTrue(warnings().get(0).contains(one.toString()) && warnings().get(0).contains("manifest.json"));
  }

  @Test
  void emptyStoreAndArguments() throws Exception {
    CheckpointStore store = new CheckpointStore(root, 1);
    assertTrue(store.latestValid().isEmpty());
    assertEquals(List.of(), store.steps());
    assertThrows(IllegalArgumentException.class, () -> new CheckpointStore(root, 0));
    assertThrows(IllegalArgumentException.class, () -> store.save(-1, writer(0)));
    assertEquals("step-000000042", CheckpointStore.dirName(42));
    assertEquals("step-12345678901", CheckpointStore.dirName(12_345_678_901L));
    assertEquals(-1, CheckpointStore.parseStepDir("step-42"), "only the canonical spelling counts");
    assertEquals(42, CheckpointStore.parseStepDir("step-000000042"));
    CorruptCheckpointException e =
        assertThrows(CorruptCheckpointException.class, () -> CheckpointStore.verify(root.resolve("nope")));
    assertNull(e.file());
    // an empty checkpoint (writer wrote nothing) is still a valid checkpoint
    Path empty = store.save(0, dir -> {});
    assertEquals(Map.of(), CheckpointStore.verify(empty).files());
  }
}
