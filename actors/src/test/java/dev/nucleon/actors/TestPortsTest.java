package dev.nucleon.actors;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** {@link TestPorts} hands out ports below the kernel's ephemeral range, where no bind(0) of the JVM can land. */
class TestPortsTest {

  @Test
  void portsLieBelowTheEphemeralRange() {
    assumeTrue(Files.isReadable(Path.of("/proc/sys/net/ipv4/ip_local_port_range")), "Linux only");
    int low = TestPorts.ephemeralLow();
    assertTrue(low >= 1024, "the range's first port read as " + low);
    assumeTrue(low > 11_000, "the range leaves no room below it: " + low);
    for (int i = 0; i < 20; i++) {
      int port = TestPorts.free();
      assertTrue(port >= 10_000 && port < low, "port " + port + " with the ephemeral range from " + low);
    }
  }
}
