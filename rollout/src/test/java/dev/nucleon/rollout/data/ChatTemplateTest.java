package dev.nucleon.rollout.data;

import static dev.nucleon.rollout.data.TestData.q;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.nucleon.rollout.data.ChatTemplate.Message;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ChatTemplateTest {

  private static final String TINYLLAMA = "hf-real/tokenizers/TinyLlama-1.1B-Chat-v1.0/tokenizer_config.json";
  private static final String DEEPSEEK = "hf-real/extra/DeepSeek-R1/tokenizer_config.json";
  private static final String GPT_OSS = "hf-real/extra/gpt-oss-20b/";
  private static final Clock JUNE_28 = Clock.fixed(Instant.parse("2025-06-28T10:00:00Z"), ZoneOffset.UTC);

  @TempDir Path dir;

  private static ChatTemplate fromResource(String config) {
    return ChatTemplate.fromTokenizerConfig(config, TestData.text(config), null, "chat_template.jinja");
  }

  @Test
  void tinyLlamaZephyrStyle() {
    // {{ '<|user|>\n' + content + eos_token }} then a newline (trim_blocks removes only the newlines after
    // {% %} tags); with add_generation_prompt '<|assistant|>' and its newline.
    ChatTemplate t = fromResource(TINYLLAMA);
    assertEquals("<s>", t.bosToken());
    assertEquals("</s>", t.eosToken());
    assertEquals("<|user|>\nWhat is 2+2?</s>\n<|assistant|>\n",
        t.render(List.of(Message.user("What is 2+2?")), true));
    assertEquals("<|system|>\nBe brief.</s>\n<|user|>\nWhat is 2+2?</s>\n<|assistant|>\n",
        t.render(List.of(Message.system("Be brief."), Message.user("What is 2+2?")), true));
    assertEquals("<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n",
        t.render(List.of(Message.user("Hi"), Message.assistant("Hello!")), false));
  }

  @Test
  void tinyLlamaFromAFile() {
    Path config = TestData.copy(TINYLLAMA, dir.resolve("tinyllama"));
    ChatTemplate t = ChatTemplate.fromTokenizerConfig(config);
    assertEquals("<|user|>\nx</s>\n<|assistant|>\n", t.render(List.of(Message.user("x")), true));
    assertEquals(config.toString(), t.source());
  }

  @Test
  void deepSeekR1() {
    ChatTemplate t = fromResource(DEEPSEEK);
    assertEquals("<｜begin▁of▁sentence｜>", t.bosToken(), "AddedToken objects give their content");
    assertEquals("<｜end▁of▁sentence｜>", t.eosToken());
    String prompt = t.render(List.of(Message.user("What is 2+2?")), true);
    assertEquals("<｜begin▁of▁sentence｜><｜User｜>What is 2+2?<｜Assistant｜>", prompt);
    assertEquals("<｜begin▁of▁sentence｜>Be brief.<｜User｜>What is 2+2?",
        t.render(List.of(Message.system("Be brief."), Message.user("What is 2+2?")), false));
    // an earlier assistant turn keeps only what follows </think> (content.split('</think>')[-1])
    assertEquals("<｜begin▁of▁sentence｜><｜User｜>Q<｜Assistant｜>4<｜end▁of▁sentence｜><｜User｜>R<｜Assistant｜>",
        t.render(List.of(Message.user("Q"), Message.assistant("<think>2+2</think>4"), Message.user("R")), true));
  }

  @Test
  void gptOssHarmony() {
    Path config = TestData.copy(GPT_OSS + "tokenizer_config.json", dir.resolve("gpt-oss"));
    TestData.copy(GPT_OSS + "chat_template.jinja", dir.resolve("gpt-oss"));
    ChatTemplate t = ChatTemplate.fromTokenizerConfig(config).withClock(JUNE_28);
    assertTrue(t.source().endsWith("chat_template.jinja"), t.source());
    assertEquals("<|return|>", t.eosToken());
    String prompt = t.render(List.of(Message.user("What is 2+2?")), true);
    assertEquals("<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
        + "Knowledge cutoff: 2024-06\nCurrent date: 2025-06-28\n\nReasoning: medium\n\n"
        + "# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>"
        + "<|start|>user<|message|>What is 2+2?<|end|><|start|>assistant", prompt);

    String withSystem = t.render(List.of(Message.system("Be brief."), Message.user("Hi")), true,
        Map.of("reasoning_effort", "low"));
    assertTrue(withSystem.contains("Reasoning: low\n\n"), withSystem);
    assertTrue(withSystem.contains("<|start|>developer<|message|># Instructions\n\nBe brief.\n\n<|end|>"
        + "<|start|>user<|message|>Hi<|end|><|start|>assistant"), withSystem);

    // the template's raise_exception reaches the caller with its message
    ChatTemplate.ChatTemplateException e = assertThrows(ChatTemplate.ChatTemplateException.class,
        () -> t.render(List.of(Message.user("Hi"), Message.assistant("<|channel|>final<|message|>x")), true));
    assertTrue(e.getMessage().contains("<|channel|> tags in the content field"), e.getMessage());
  }

  /**
   * Tool definitions reach the prompt as the template writes them: gpt-oss declares them in a TypeScript-like
   * namespace in the developer message (descriptions as comments, optional parameters with '?', enums as unions).
   * The expected text is the same template rendered by Hugging Face's JavaScript Jinja (chat/README.md).
   */
  @Test
  void gptOssToolDefinitions() throws Exception {
    Path config = TestData.copy(GPT_OSS + "tokenizer_config.json", dir.resolve("gpt-oss"));
    TestData.copy(GPT_OSS + "chat_template.jinja", dir.resolve("gpt-oss"));
    ChatTemplate t = ChatTemplate.fromTokenizerConfig(config).withClock(JUNE_28);
    List<?> tools = new com.fasterxml.jackson.databind.ObjectMapper().readValue(TestData.text("chat/tools.json"),
        List.class);
    String prompt = t.render(List.of(Message.system("Be brief."), Message.user("Weather in Paris?")), true,
        Map.of("tools", tools));
    assertEquals(TestData.text("chat/gpt-oss-tools.expected"), prompt);
  }

  @Test
  void pythonStringMethodsAndHelpers() {
    ChatTemplate t = ChatTemplate.of("test", "{{ messages[0].content.strip() }}|{{ 'a,b,c'.split(',')[-1] }}|"
        + "{{ messages[0].role.startswith('us') }}|{{ ' x y '.split() | length }}|{{ messages[0].get('name', 'anon') }}|"
        + "{{ 'hello'.upper() }}|{{ strftime_now('%d %B %Y') }}|{{ bos_token }}{{ eos_token }}|"
        + "{% if not add_generation_prompt is defined %}undefined{% else %}defined{% endif %}", "<s>", "</s>")
        .withClock(JUNE_28);
    assertEquals("hi there|c|true|2|anon|HELLO|28 June 2025|<s></s>|defined",
        t.render(List.of(Message.user("  hi there \n")), true));

    ChatTemplate.ChatTemplateException e = assertThrows(ChatTemplate.ChatTemplateException.class,
        () -> ChatTemplate.of("strict", "{% if messages|length > 1 %}{{ raise_exception('one message only') }}"
            + "{% endif %}ok", "", "").render(List.of(Message.user("a"), Message.user("b")), true));
    assertTrue(e.getMessage().contains("one message only") && e.getMessage().contains("strict"), e.getMessage());

    // a template that does not parse fails when it is loaded, naming it
    ChatTemplate.ChatTemplateException parse = assertThrows(ChatTemplate.ChatTemplateException.class,
        () -> ChatTemplate.of("broken.jinja", "{% for m in messages %}{{ m.content }}", "", ""));
    assertTrue(parse.getMessage().contains("broken.jinja") && parse.getMessage().contains("endfor"),
        parse.getMessage());
  }

  @Test
  void datasetPromptsThroughTheChatTemplate() {
    Path config = TestData.copy(TINYLLAMA, dir.resolve("tinyllama"));
    Path data = TestData.copy("data/gsm8k/sample.jsonl", dir.resolve("gsm8k"));
    Dataset d = Dataset.load(DatasetSettings.parse("nucleon.dataset { format = gsm8k, path = " + q(data)
        + ", eval.size = 0, chat-template = true, tokenizer-config = " + q(config)
        + ", template = \"{question}\\nEnd with '#### N'.\", system-prompt = \"You solve math.\" }"));
    DatasetRow r = d.train().get(1);
    assertEquals("<|system|>\nYou solve math.</s>\n<|user|>\nWeng earns $12 an hour for babysitting. Yesterday, she "
        + "just did 50 minutes of babysitting. How much did she earn?\nEnd with '#### N'.</s>\n<|assistant|>\n",
        r.prompt());
    assertEquals("10", r.groundTruth());

    Path gptOss = TestData.copy(GPT_OSS + "tokenizer_config.json", dir.resolve("gpt-oss"));
    TestData.copy(GPT_OSS + "chat_template.jinja", dir.resolve("gpt-oss"));
    Dataset h = Dataset.load(DatasetSettings.parse("nucleon.dataset { format = arithmetic, arithmetic.max-operand = 9, eval.size = 10, "
        + "chat-template = true, tokenizer-config = " + q(gptOss) + ", template-date = \"2025-01-02\" }"));
    String p = h.eval().get(0).prompt();
    assertTrue(p.contains("Current date: 2025-01-02\n"), p);
    assertTrue(p.matches("(?s).*<\\|start\\|>user<\\|message\\|>\\d\\+\\d=<\\|end\\|><\\|start\\|>assistant"), p);
  }
}
