package dev.nucleon.rollout.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

class ArithmeticTaskTest {

  @Test
  void quickstartDefaults() {
    Dataset d = Dataset.load(DatasetSettings.parse("nucleon.dataset.format = arithmetic"));
    assertEquals(500, d.eval().size());
    assertEquals(100 * 100 - 500, d.train().size());
    Set<String> prompts = new HashSet<>();
    for (DatasetRow r : d.train()) {
      assertTrue(r.prompt().matches("\\d\\d\\+\\d\\d="), r.prompt());
      int a = Integer.parseInt(r.prompt().substring(0, 2));
      int b = Integer.parseInt(r.prompt().substring(3, 5));
      assertEquals(Integer.toString(a + b), r.groundTruth());
      assertEquals(Map.of("a", Integer.toString(a), "op", "+", "b", Integer.toString(b), "stop", "$"), r.metadata());
      prompts.add(r.prompt());
    }
    for (DatasetRow r : d.eval()) {
      assertTrue(!prompts.contains(r.prompt()), "held out " + r.prompt() + " is also a training prompt");
    }
    // the held-out set is fixed: the same on every load
    assertEquals(d.eval(), Dataset.load(DatasetSettings.parse("nucleon.dataset.format = arithmetic")).eval());
  }

  @Test
  void promptsAnswersAndVocabulary() {
    ArithmeticTask task = new ArithmeticTask(new DatasetSettings.Arithmetic(99, List.of("+"), "$"));
    assertEquals("07+48=", task.prompt(7, "+", 48));
    ArithmeticTask.Problem p = task.problem(7 * 100 + 48);
    assertEquals("07+48=", p.prompt());
    assertEquals("55", p.answer());
    assertEquals("55$", task.completion(p));
    assertEquals("0123456789+=$", task.vocabulary());
    assertEquals(10_000, task.size());
    assertEquals("00+00=", task.problem(0).prompt());
    assertEquals("99+99=", task.problem(9999).prompt());
    assertEquals("198", task.problem(9999).answer());

    ArithmeticTask mixed = new ArithmeticTask(new DatasetSettings.Arithmetic(999, List.of("+", "-", "*"), "$"));
    assertEquals(3_000_000L, mixed.size());
    ArithmeticTask.Problem minus = mixed.problem(1_000_000L + 5 * 1000 + 46);
    assertEquals("005-046=", minus.prompt());
    assertEquals("-41", minus.answer());
    ArithmeticTask.Problem times = mixed.problem(2_000_000L + 999 * 1000 + 999);
    assertEquals("999*999=", times.prompt());
    assertEquals("998001", times.answer());
    assertEquals("0123456789+-*=$", mixed.vocabulary());
    for (long id = 0; id < mixed.size(); id += 7919) {
      ArithmeticTask.Problem q = mixed.problem(id);
      for (char c : (q.prompt() + q.answer() + "$").toCharArray()) {
        assertTrue(mixed.vocabulary().indexOf(c) >= 0, q.prompt());
      }
    }
  }

  @Test
  void templateFieldsAndSettings() {
    Dataset d = Dataset.load(DatasetSettings.parse("nucleon.dataset { format = arithmetic, eval.size = 5, "
        + "arithmetic { max-operand = 9, ops = [\"*\"], stop = \"#\" }, template = \"What is {a} {op} {b}? \" }"));
    assertEquals(95, d.train().size());
    DatasetRow r = d.train().get(0);
    assertTrue(r.prompt().matches("What is \\d \\* \\d\\? "), r.prompt());
    assertEquals("#", r.metadata().get("stop"));
  }
}
