package dev.nucleon.rollout.env;

import dev.nucleon.core.env.EnvMessage;
import dev.nucleon.rollout.data.ChatTemplate;
import dev.nucleon.rollout.data.PromptTemplate;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The text fed into an episode after a model turn: whatever closes the model's turn, the environment's messages,
 * and what opens the model's next turn. Its tokens carry no loss.
 */
public interface TurnFormat {

  /**
   * @param prompt the episode's prompt text
   * @param observation the environment's messages after the turn
   * @param stopText the text of the stop token that ended the model's turn, or null when the turn was cut at its
   *     limit (the format then closes it)
   */
  String after(String prompt, List<EnvMessage> observation, String stopText);

  /**
   * The text appended to the prompt for an episode's opening messages (before the model's first turn); throws
   * {@link UnsupportedOperationException} with the reason when the format cannot place them.
   */
  String opening(String prompt, List<EnvMessage> opening);

  /**
   * The model's chat template, turn by turn: the environment's messages are rendered as the template renders them
   * after an assistant message, followed by the template's generation prompt. The text is what the template writes
   * after the assistant's content, less the stop token the model wrote when the template writes that token first
   * (a model that stopped with another of its stop tokens keeps it, and the template's end marker follows).
   * Templates that render earlier turns differently once later ones follow (dropping a previous turn's reasoning,
   * say) are rendered as if they did not: the tokens already in the cache are never rewritten.
   *
   * <p>A template that refuses a tool result after a plain assistant message (gpt-oss's renders a {@code tool}
   * message only after an assistant message carrying {@code tool_calls}, whose name it takes) gets the turn as the
   * call it made: an assistant message calling the tool that answered, and the text is what the template writes after
   * that call's arguments. Which of the two a template needs is found at its first tool result and kept.
   */
  static TurnFormat chat(ChatTemplate template) {
    return new TurnFormat() {
      private static final String TURN = "\u27e6nucleon-turn\u27e7";
      // ASCII: a template renders the arguments as JSON, which may escape anything else
      private static final String ARGUMENTS = "nucleon-turn-arguments";

      /** Whether tool results follow the turn as a call (null until the first tool result). */
      private volatile Boolean asCall;

      @Override
      public String opening(String prompt, List<EnvMessage> opening) {
        throw new UnsupportedOperationException("an environment's opening messages cannot follow a prompt rendered "
            + "through the chat template (they would belong before its generation prompt)");
      }

      @Override
      public String after(String prompt, List<EnvMessage> observation, String stopText) {
        String tool = observation.stream().filter(m -> m.role().equals("tool")).findFirst()
            .map(m -> m.name() == null ? "tool" : m.name()).orElse(null);
        if (tool == null || Boolean.FALSE.equals(asCall)) {
          return after(ChatTemplate.Message.assistant(TURN), TURN, observation, stopText);
        }
        ChatTemplate.Message call = ChatTemplate.Message.assistantCalling("",
            List.of(new ChatTemplate.ToolCall(tool, ARGUMENTS)));
        if (Boolean.TRUE.equals(asCall)) {
          return after(call, ARGUMENTS, observation, stopText);
        }
        try {
          String text = after(ChatTemplate.Message.assistant(TURN), TURN, observation, stopText);
          asCall = false;
          return text;
        } catch (ChatTemplate.ChatTemplateException refused) {
          String raw;
          try {
            raw = afterMarker(call, ARGUMENTS, observation);
          } catch (ChatTemplate.ChatTemplateException e) {
            throw new ChatTemplate.ChatTemplateException("a tool result follows neither a plain assistant turn ("
                + refused.getMessage() + ") nor the turn as a tool call (" + e.getMessage() + ")", e);
          }
          // the call form fits a template that closes the call with the token the model stopped at (harmony's
          // <|call|>); after a call written into the model's own text (Hermes) it would write the call's end again
          boolean stopped = stopText != null && !stopText.isEmpty();
          if (stopped && !raw.startsWith(stopText)) {
            throw new ChatTemplate.ChatTemplateException(template.source() + ": the chat template refuses a tool "
                + "result after a plain assistant turn (" + refused.getMessage() + "), and renders the turn as a call "
                + "that does not end with the model's stop token " + stopText + "; tool results cannot follow it");
          }
          asCall = true;
          return stopped ? raw.substring(stopText.length()) : raw;
        }
      }

      /** The text the template writes after {@code marker} (the turn's content or its call's arguments). */
      private String after(ChatTemplate.Message turn, String marker, List<EnvMessage> observation, String stopText) {
        String after = afterMarker(turn, marker, observation);
        return stopText != null && !stopText.isEmpty() && after.startsWith(stopText)
            ? after.substring(stopText.length()) : after;
      }

      /** What the template writes after {@code marker}, the model's stop token included. */
      private String afterMarker(ChatTemplate.Message turn, String marker, List<EnvMessage> observation) {
        List<ChatTemplate.Message> messages = new ArrayList<>();
        messages.add(ChatTemplate.Message.user("\u27e6nucleon-prompt\u27e7"));
        messages.add(turn);
        for (EnvMessage m : observation) {
          messages.add(new ChatTemplate.Message(m.role(), m.content()));
        }
        String full = template.render(messages, true);
        int at = full.indexOf(marker);
        if (at < 0 || full.indexOf(marker, at + 1) >= 0) {
          throw new ChatTemplate.ChatTemplateException(template.source() + ": the chat template does not render an "
              + "assistant message's " + (marker.equals(TURN) ? "content" : "tool call's arguments")
              + " once, verbatim; multi-turn episodes cannot follow it");
        }
        String after = full.substring(at + marker.length());
        if (!marker.equals(TURN)) { // the arguments, a string, were written as JSON: the closing quote is theirs
          if (!after.startsWith("\"")) {
            throw new ChatTemplate.ChatTemplateException(template.source() + ": the chat template does not write a "
                + "tool call's arguments as JSON; tool results cannot follow it");
          }
          after = after.substring(1);
        }
        return after;
      }
    };
  }

  /**
   * Plain text for models without a chat template: each message rendered by {@code messageFormat}, whose
   * placeholders are {@code {role}}, {@code {content}}, {@code {name}} (a tool's) and {@code {prompt}} (the
   * episode's prompt, to ask again).
   */
  static TurnFormat plain(String messageFormat) {
    PromptTemplate format = PromptTemplate.parse(messageFormat);
    for (String field : format.fields()) {
      if (!List.of("role", "content", "name", "prompt").contains(field)) {
        throw new IllegalArgumentException("the message format uses {" + field + "}; it may use {role}, {content}, "
            + "{name} and {prompt}");
      }
    }
    return new TurnFormat() {
      @Override
      public String opening(String prompt, List<EnvMessage> opening) {
        return after(prompt, opening, null);
      }

      @Override
      public String after(String prompt, List<EnvMessage> observation, String stopText) {
        StringBuilder out = new StringBuilder();
        for (EnvMessage m : observation) {
          out.append(format.render(Map.of("role", m.role(), "content", m.content(),
              "name", m.name() == null ? "" : m.name(), "prompt", prompt)));
        }
        return out.toString();
      }
    };
  }
}
