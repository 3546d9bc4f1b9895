package dev.nucleon.rollout.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class PromptTemplateTest {

  @Test
  void placeholdersAndLiteralBraces() {
    PromptTemplate t = PromptTemplate.parse("Q: {question}\nPut it in \\boxed{} or {{x}} {not a field} {a-b.c}");
    assertEquals(List.of("question", "a-b.c"), List.copyOf(t.fields()));
    assertEquals("Q: 1+1?\nPut it in \\boxed{} or {x} {not a field} ok",
        t.render(Map.of("question", "1+1?", "a-b.c", "ok")));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> t.render(Map.of("question", "q")));
    assertEquals(true, e.getMessage().contains("{a-b.c}"));
    assertThrows(IllegalArgumentException.class, () -> PromptTemplate.parse("Q: {question"));
    assertEquals("{prompt}", PromptTemplate.parse("{{prompt}}").render(Map.of()));
  }
}
