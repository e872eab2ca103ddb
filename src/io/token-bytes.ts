/**
 * The raw bytes of one token, as OpenAI's logprobs report them (`bytes`): a token may hold part of a multi-byte
 * character, which decodes to U+FFFD on its own. Then the bytes come from the vocabulary piece: SentencePiece
 * byte pieces (<0xAB>) or GPT-2's byte-level alphabet (each byte drawn as one printable character).
 */
import { byteToUnicode } from "./bpe-train.js";
import type { Tokenizer } from "./tokenizer-types.js";

let unicodeToByte: Map<string, number> | null = null;

export function tokenBytes(tok: Tokenizer, id: number): number[] {
  const text = tok.decode([id], { skipSpecialTokens: false });
  if (!text.includes("\ufffd")) return [...Buffer.from(text, "utf8")];
  const piece = tok.tokenString(id);
  const hex = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
  if (hex) return [Number.parseInt(hex[1]!, 16)];
  unicodeToByte ??= new Map(byteToUnicode().map((ch, b) => [ch, b]));
  const bytes: number[] = [];
  for (const ch of piece) {
    const b = unicodeToByte.get(ch);
    if (b === undefined) return [...Buffer.from(text, "utf8")]; // not byte-level: the decoded text is all there is
    bytes.push(b);
  }
  return bytes;
}
