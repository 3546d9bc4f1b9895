package dev.nucleon.actors;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Ports for tests that must name a port before something binds it (cluster nodes, external programs).
 *
 * <p>A port from {@code new ServerSocket(0)} lies in the kernel's ephemeral range, from which every outgoing
 * connection and every other {@code bind(0)} of the test JVM (a started node's weight server, Pekko's connections)
 * also draws: between picking it and binding it, another socket can take it ("Address already in use", seen in
 * CI). A port below that range is never handed out by the kernel, so only an explicit bind can collide with it.
 */
public final class TestPorts {

  private static final int LOWEST = 10_000;

  private TestPorts() {}

  /** A port free on 127.0.0.1 now, below the kernel's ephemeral range where the range leaves room. */
  public static int free() {
    int ephemeralLow = ephemeralLow();
    InetAddress loopback = InetAddress.getLoopbackAddress();
    if (ephemeralLow > LOWEST + 1000) {
      for (int attempt = 0; attempt < 200; attempt++) {
        int port = ThreadLocalRandom.current().nextInt(LOWEST, ephemeralLow);
        try (ServerSocket s = new ServerSocket(port, 1, loopback)) {
          return port;
        } catch (IOException taken) {
          // try another
        }
      }
    }
    try (ServerSocket s = new ServerSocket(0, 1, loopback)) {
      return s.getLocalPort();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** The first port of the kernel's ephemeral range (Linux), or 49152 (IANA's) where it cannot be read. */
  static int ephemeralLow() {
    try {
      // one buffered read: a sysctl file answers a read at a non-zero offset with end of file, and Files.readString
      // of a file whose size reads 0 (procfs) takes its first byte alone, so it got "3" of "32768 60999"
      String range = Files.readAllLines(Path.of("/proc/sys/net/ipv4/ip_local_port_range")).get(0).trim();
      return Integer.parseInt(range.split("\\s+")[0]);
    } catch (IOException | RuntimeException e) {
      return 49152;
    }
  }
}
