package dev.nucleon.reward;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.typesafe.config.ConfigFactory;
import dev.nucleon.core.reward.RewardFunction;
import dev.nucleon.core.reward.RewardRequest;
import dev.nucleon.core.reward.RewardResult;
import dev.nucleon.core.reward.RewardRegistry;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * Rewards per second of gsm8k, math and countdown on 10,000 responses built from the test data (half right, half
 * wrong), scored directly on one thread and through the guard with 1 and 2 threads.
 *
 * <p>Run: {@code ./mvnw -o -q -pl reward -am test-compile} then
 * {@code java -cp reward/target/test-classes:reward/target/classes:$(cat cp.txt) dev.nucleon.reward.RewardBench}
 * where {@code cp.txt} comes from {@code ./mvnw -o -q -pl reward dependency:build-classpath -Dmdep.outputFile=cp.txt}.
 */
public final class RewardBench {

  private static final int N = 10_000;

  public static void main(String[] args) throws Exception {
    Random random = new Random(1);
    RewardRegistry registry = RewardRegistry.load();
    bench("gsm8k", registry.create("gsm8k", ConfigFactory.empty()), gsm8k(random));
    bench("math", registry.create("math", ConfigFactory.empty()), math(random));
    bench("countdown", registry.create("countdown", ConfigFactory.empty()), countdown(random));
  }

  private static List<RewardRequest> gsm8k(Random random) {
    List<JsonNode> rows = TestData.jsonl("gsm8k/test.jsonl");
    List<RewardRequest> out = new ArrayList<>();
    for (int i = 0; i < N; i++) {
      String solution = rows.get(i % rows.size()).get("answer").asText();
      String response = random.nextBoolean() ? solution : solution.replaceAll("#### .*$", "#### 12345");
      out.add(RewardRequest.of(response, solution));
    }
    return out;
  }

  private static List<RewardRequest> math(Random random) throws Exception {
    JsonNode rows = new ObjectMapper().readTree(TestData.text("math500/math500_test.json"));
    List<RewardRequest> out = new ArrayList<>();
    for (int i = 0; i < N; i++) {
      JsonNode row = rows.get(i % rows.size());
      String answer = random.nextBoolean() ? row.get("answer").asText()
          : rows.get((i + 7) % rows.size()).get("answer").asText();
      String response = "We simplify step by step: $x^2 + 2x + 1 = (x+1)^2$, so the value follows.\n"
          + "Therefore the final answer is $\\boxed{" + answer + "}$.";
      out.add(RewardRequest.of(response, row.get("answer").asText()));
    }
    return out;
  }

  private static List<RewardRequest> countdown(Random random) {
    List<JsonNode> rows = TestData.jsonl("countdown/countdown_cd3_test.jsonl");
    List<RewardRequest> out = new ArrayList<>();
    String[] shapes = {"(%s + %s) - %s", "%s * %s / %s", "%s - (%s - %s)", "(%s - %s) * %s"};
    for (int i = 0; i < N; i++) {
      JsonNode row = rows.get(i % rows.size());
      String[] n = row.get("input").asText().split(",");
      String equation = String.format(shapes[random.nextInt(shapes.length)], n[0], n[1], n[2]);
      String response = "<think>Let me try a few combinations.</think>\n<answer>" + equation + "</answer>";
      out.add(new RewardRequest("", response, null, row.get("output").asText(),
          Map.of("numbers", row.get("input").asText())));
    }
    return out;
  }

  private static void bench(String name, RewardFunction reward, List<RewardRequest> requests) {
    reward.score(requests); // warm-up
    long start = System.nanoTime();
    List<RewardResult> results = reward.score(requests);
    double direct = N / ((System.nanoTime() - start) / 1e9);
    long correct = results.stream().filter(r -> r.isOk() && r.reward() == 1.0).count();
    String line = String.format("%-10s direct (1 thread): %,10.0f rewards/s", name, direct);
    for (int threads : new int[] {1, 2}) {
      try (GuardedReward guard = new GuardedReward(reward, name, Duration.ofSeconds(10), threads)) {
        guard.score(requests);
        long t = System.nanoTime();
        guard.score(requests);
        line += String.format(" | guarded, %d thread%s: %,10.0f rewards/s", threads, threads == 1 ? "" : "s",
            N / ((System.nanoTime() - t) / 1e9));
      }
    }
    System.out.println(line + String.format(" | %d of %d scored 1", correct, N));
  }
}
