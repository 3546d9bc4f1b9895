package dev.nucleon.reward.remote;

import com.typesafe.config.Config;
import dev.nucleon.core.http.JsonPoster;
import dev.nucleon.reward.ConfigValues;
import java.net.URI;
import java.net.URISyntaxException;
import java.util.LinkedHashMap;
import java.util.Map;

/** A remote reward's block read into its server's URL and call policy ({@link JsonPoster}). */
public final class RemoteSettings {

  private RemoteSettings() {}

  /**
   * The call policy of a reward's block: {@code connect-timeout}, {@code read-timeout}, {@code retries},
   * {@code backoff}, {@code max-backoff}, {@code max-concurrent}, {@code headers}, plus {@code extraHeaders}.
   */
  public static JsonPoster poster(Config c, Map<String, String> extraHeaders) {
    Map<String, String> headers = new LinkedHashMap<>(extraHeaders);
    if (c.hasPath("headers")) {
      Config h = c.getConfig("headers");
      for (String key : h.root().keySet()) {
        headers.put(key, h.getString("\"" + key + "\""));
      }
    }
    try {
      return new JsonPoster(ConfigValues.positiveDuration(c, "connect-timeout"),
          ConfigValues.positiveDuration(c, "read-timeout"), ConfigValues.intAtLeast(c, "retries", 0),
          ConfigValues.duration(c, "backoff"), ConfigValues.duration(c, "max-backoff"),
          ConfigValues.intAtLeast(c, "max-concurrent", 1), headers);
    } catch (IllegalArgumentException e) {
      throw ConfigValues.bad(c, "headers", e.getMessage());
    }
  }

  /** The http(s) URL at {@code key}; empty or malformed throws naming the key, with {@code example}. */
  public static URI url(Config c, String key, String example) {
    String raw = ConfigValues.string(c, key).trim();
    if (raw.isEmpty()) {
      throw ConfigValues.bad(c, key, "is empty: set the server's URL (e.g. " + example + ")");
    }
    URI url;
    try {
      url = new URI(raw);
    } catch (URISyntaxException e) {
      throw ConfigValues.bad(c, key, "not a valid URL: " + e.getMessage());
    }
    if (!"http".equals(url.getScheme()) && !"https".equals(url.getScheme()) || url.getHost() == null) {
      throw ConfigValues.bad(c, key, "must be an http:// or https:// URL with a host, got '" + raw + "'");
    }
    return url;
  }
}
