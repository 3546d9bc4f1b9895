package dev.nucleon.actors.monitor;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/** Finds the external programs the end-to-end tests drive (installed by .ci/run: Debian's prometheus, chromium). */
final class ExternalTools {

  private ExternalTools() {}

  /** The first of {@code names} found on the PATH. */
  static Optional<Path> find(String... names) {
    String path = System.getenv().getOrDefault("PATH", "");
    for (String name : names) {
      for (String dir : path.split(java.io.File.pathSeparator)) {
        Path p = Path.of(dir.isEmpty() ? "." : dir, name);
        if (Files.isRegularFile(p) && Files.isExecutable(p)) {
          return Optional.of(p);
        }
      }
    }
    return Optional.empty();
  }

  /** A free TCP port on 127.0.0.1 (for programs that cannot be told to pick one). */
  static int freePort() {
    return dev.nucleon.actors.TestPorts.free();
  }
}
