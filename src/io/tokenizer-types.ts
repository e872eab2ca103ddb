/** What the rest of steerlab needs from a tokenizer, whatever file it came from (tokenizer.json or GGUF). */
export interface ChatMessage {
  role: "system" | "user" | "assistant" | string;
  content: string;
}

export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenIds: readonly number[];
  /** Jinja chat template, if the model ships one. */
  readonly chatTemplate: string | null;
  /** Encode text; addSpecialTokens adds BOS (etc.) as the model's own tokenizer would. Default true. */
  /** maxChars: refuse longer text (default MAX_ENCODE_CHARS, 4 Mi characters). */
  encode(text: string, opts?: { addSpecialTokens?: boolean; maxChars?: number }): number[];
  decode(ids: readonly number[], opts?: { skipSpecialTokens?: boolean }): string;
  /** The vocabulary string of one token id (raw piece, for display). */
  tokenString(id: number): string;
  /** Render messages with the chat template (error if the model has none). */
  applyChatTemplate(messages: readonly ChatMessage[], opts?: { addGenerationPrompt?: boolean }): string;
}
