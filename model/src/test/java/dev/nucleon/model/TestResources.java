package dev.nucleon.model;

import java.net.URISyntaxException;
import java.nio.file.Path;

/** Paths of the files under {@code src/test/resources}. */
public final class TestResources {
  private TestResources() {}

  public static Path path(String resource) {
    try {
      var url = TestResources.class.getResource("/" + resource);
      if (url == null) {
        throw new IllegalStateException("test resource not found: " + resource);
      }
      return Path.of(url.toURI());
    } catch (URISyntaxException e) {
      throw new IllegalStateException(e);
    }
  }

  public static Path storiesModel() {
    return path("stories260k/model.bin");
  }

  public static Path storiesTokenizer() {
    return path("stories260k/tok512.bin");
  }
}
