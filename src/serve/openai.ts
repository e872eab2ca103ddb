/**
 * OpenAI's response shapes, built from steerlab's generation events: chat logprobs
 * (choices[].logprobs.content[{token, logprob, bytes, top_logprobs}]), legacy completion logprobs
 * ({tokens, token_logprobs, top_logprobs, text_offset}), finish reasons and usage.
 */
import { randomBytes } from "node:crypto";
import { tokenBytes } from "../io/token-bytes.js";
import type { Tokenizer } from "../io/tokenizer-types.js";
import type { FinishReason } from "../model/generate.js";
import { type NextTokenDistribution, topOf } from "../model/logprobs.js";
import { logSoftmax } from "../model/sampling.js";

export interface TokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export function responseId(prefix: "chatcmpl" | "cmpl"): string {
  return `${prefix}-${randomBytes(12).toString("hex")}`;
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** OpenAI has two: "stop" (a stop token or string) and "length". */
export function finishReason(r: FinishReason | undefined): "stop" | "length" | null {
  if (r === "stop_token" || r === "stop_string") return "stop";
  if (r === "length") return "length";
  return null;
}

export function usage(prompt: number, completion: number): Usage {
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** A token's text as the client sees it (a lone piece of a multi-byte character decodes to U+FFFD). */
export function tokenText(tok: Tokenizer, id: number): string {
  return tok.decode([id], { skipSpecialTokens: false });
}

/** log p of `id` and the `top` most likely tokens, from one row of logits [V]. */
export function tokenLogprob(tok: Tokenizer, logits: Float32Array, id: number, top: number): TokenLogprob {
  const lp = logSoftmax(logits);
  return {
    token: tokenText(tok, id),
    logprob: lp[id]!,
    bytes: tokenBytes(tok, id),
    top_logprobs: topOf(lp, top).map((t) => ({
      token: tokenText(tok, t.id),
      logprob: t.logprob,
      bytes: tokenBytes(tok, t.id),
    })),
  };
}

/** A prompt token's entry from its teacher-forced distribution (echo + logprobs). */
export function promptEntry(tok: Tokenizer, d: NextTokenDistribution, id: number): TokenLogprob {
  return {
    token: tokenText(tok, id),
    logprob: d.logprobs[id]!,
    bytes: tokenBytes(tok, id),
    top_logprobs: d.top.map((t) => ({
      token: tokenText(tok, t.id),
      logprob: t.logprob,
      bytes: tokenBytes(tok, t.id),
    })),
  };
}

/** A chat logprob entry in the legacy completions layout. */
export function appendCompletionLogprob(
  out: CompletionLogprobs,
  t: TokenLogprob | null,
  token: string,
  offset: number,
): void {
  out.tokens.push(token);
  out.token_logprobs.push(t ? t.logprob : null);
  out.top_logprobs.push(t ? Object.fromEntries(t.top_logprobs.map((x) => [x.token, x.logprob])) : null);
  out.text_offset.push(offset);
}
