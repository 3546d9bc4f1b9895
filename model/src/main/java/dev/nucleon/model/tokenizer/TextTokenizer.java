package dev.nucleon.model.tokenizer;

/** Text to token ids and back, with the special tokens a language model needs for generation. */
public interface TextTokenizer extends AutoCloseable {

  /**
   * Encodes text.
   *
   * @param addSpecialTokens add what the tokenizer adds around a sequence (BOS for Llama-family tokenizers)
   */
  int[] encode(String text, boolean addSpecialTokens);

  /**
   * Decodes ids to text.
   *
   * @param skipSpecialTokens leave out BOS, EOS and other special tokens
   */
  String decode(int[] ids, boolean skipSpecialTokens);

  /** Number of ids this tokenizer can produce. */
  int vocabSize();

  /** The beginning-of-sequence id, or -1 when there is none. */
  int bosId();

  /** Ids that end a generation (EOS and its kin); may be empty. */
  int[] eosIds();

  @Override
  default void close() {}
}
