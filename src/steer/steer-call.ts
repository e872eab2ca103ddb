/**
 * One steered call from text: tokenize the prompt (optionally as a chat turn), resolve the position spec
 * against the prompt (its length, a marker's last token) and build the hooks for this call only.
 */
import { SteerlabError } from "../errors.js";
import type { ChatMessage, Tokenizer } from "../io/tokenizer-types.js";
import type { HookBinding } from "../model/engine.js";
import { parsePositions, type SteerOp, steeringHooks } from "./apply.js";
import type { SteeringVector } from "./vector.js";

export interface SteerCallOptions {
  vector: SteeringVector;
  /** r_e for unit vectors (the paper's), or the multiplier of a raw vector. */
  coeff: number;
  /** Layer spec ("-8..-1", "all", "3,5") or resolved layers; default: the vector's suggested layers, else all. */
  layers?: string | readonly number[];
  /** all | prompt | generated | after | first:K | last:K | window:A..B (default all). */
  positions?: string;
  /** For positions "after": steer the tokens after this marker's last occurrence in the prompt. */
  marker?: string;
  op?: SteerOp;
  normGuard?: boolean;
  nLayers: number;
}

export interface PreparedPrompt {
  ids: number[];
  text: string;
}

/** Tokenize a prompt; `chat` wraps it as a user turn with the model's chat template. */
export function preparePrompt(tokenizer: Tokenizer, prompt: string, chat = false): PreparedPrompt {
  if (chat) return prepareChat(tokenizer, [{ role: "user", content: prompt }]);
  return { text: prompt, ids: tokenizer.encode(prompt, { addSpecialTokens: true }) };
}

/** Render a conversation with the model's chat template, ready for the assistant's turn, and tokenize it. */
export function prepareChat(tokenizer: Tokenizer, messages: readonly ChatMessage[]): PreparedPrompt {
  const text = tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
  // The template writes any special tokens itself.
  return { text, ids: tokenizer.encode(text, { addSpecialTokens: false }) };
}

/** Index (in prompt tokens) of the last token of the marker's last occurrence in the prompt text. */
export function markerIndex(tokenizer: Tokenizer, p: PreparedPrompt, marker: string): number {
  const at = p.text.lastIndexOf(marker);
  if (at < 0) {
    throw new SteerlabError("bad_input", "the marker does not occur in the prompt", {
      field: "marker",
      got: JSON.stringify(marker),
    });
  }
  // Tokens covering the text up to the marker's end; special tokens are counted as the full encoding counts them.
  const prefix = tokenizer.encode(p.text.slice(0, at + marker.length), {
    addSpecialTokens: p.ids.length > 0 && tokenizer.bosTokenId !== null && p.ids[0] === tokenizer.bosTokenId,
  });
  return Math.min(prefix.length, p.ids.length) - 1;
}

/** The hooks that steer one call on prompt `p`. */
export function steerCallHooks(tokenizer: Tokenizer, p: PreparedPrompt, o: SteerCallOptions): HookBinding[] {
  const spec = o.positions ?? "all";
  if (spec === "after" && !o.marker) {
    throw new SteerlabError("bad_input", 'positions "after" needs a marker', {
      field: "marker",
      hint: "give the text after which to steer (CLI: --marker), e.g. the end of the user turn",
    });
  }
  const positions = parsePositions(spec, {
    promptLength: p.ids.length,
    markerIndex: spec === "after" ? markerIndex(tokenizer, p, o.marker ?? "") : undefined,
  });
  const layers = o.layers ?? (o.vector.suggestedLayers.length ? o.vector.suggestedLayers : undefined);
  return steeringHooks(o.vector, {
    coeff: o.coeff,
    layers,
    positions,
    op: o.op,
    normGuard: o.normGuard,
    nLayers: o.nLayers,
  });
}
