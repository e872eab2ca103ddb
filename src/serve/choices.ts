/**
 * One request, several choices (n samples, or one per prompt of a completions list): each choice is its own
 * generation (its own row in the queue, seed + i), all cancelled together when the client goes away. Streams
 * merge their tokens into one SSE response in arrival order, one writer at a time.
 */
import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import type { Tokenizer } from "../io/tokenizer-types.js";
import type { ModelConfig } from "../model/config.js";
import { ApiError, toApiError } from "./api-error.js";
import type { Generation, GenRequest, GenSummary, GenToken } from "./generation.js";
import { startGeneration } from "./generation.js";
import { finishReason, usage } from "./openai.js";
import type { Scheduler } from "./scheduler.js";
import { LIMITS } from "./schemas.js";
import type { SteeringEcho } from "./steering.js";

/** Queue every choice; when one is refused (queue full), the ones already queued are cancelled. */
export function startChoices(
  scheduler: Scheduler,
  tok: Tokenizer,
  config: ModelConfig,
  reqs: readonly GenRequest[],
  ac: AbortController,
): Generation[] {
  if (reqs.length > LIMITS.choices) {
    throw new ApiError(
      400,
      `at most ${LIMITS.choices} choices per request (n times the prompts)`,
      "invalid_request_error",
      "invalid_value",
      "n",
    );
  }
  const gens: Generation[] = [];
  try {
    for (const r of reqs) gens.push(startGeneration(scheduler, tok, config.nLayers, r, ac.signal));
  } catch (e) {
    ac.abort();
    throw e;
  }
  return gens;
}

/** Feed every choice's tokens to `onToken` (serialised), then return every summary in choice order. */
export async function streamChoices(
  gens: readonly Generation[],
  onToken: (index: number, t: GenToken) => Promise<void>,
): Promise<GenSummary[]> {
  let chain: Promise<void> = Promise.resolve();
  return Promise.all(
    gens.map(async (g, i) => {
      for await (const t of g.tokens) {
        if (t.finishReason === "stop_token" && !t.text) continue;
        chain = chain.then(() => onToken(i, t));
        await chain;
      }
      return g.done;
    }),
  );
}

/** Writes one SSE chunk: the envelope's fields, these choices, then `extra` (steering, usage). */
export type ChunkWriter = (choices: object[], extra?: object) => Promise<void>;

/** What a streamed route says; the SSE framing, the last chunk, usage, errors and [DONE] are shared. */
export interface ChoiceStream {
  /** Fields every chunk starts with (id, created, model, system_fingerprint). */
  base: object;
  object: "chat.completion.chunk" | "text_completion";
  steering: SteeringEcho | null;
  promptTokens: number;
  includeUsage: boolean;
  ac: AbortController;
  /** Chunks before the first token (chat's role chunk). */
  begin?: (write: ChunkWriter) => Promise<void>;
  token: (write: ChunkWriter, index: number, t: GenToken) => Promise<void>;
  /** A choice's last chunk before its finish_reason (an empty delta or text). */
  last: object;
}

/**
 * Stream every choice as OpenAI SSE chunks: the route's chunks, one last chunk with the finish reasons and the
 * steering echo, usage when asked, an error as a data event (the status is already sent), then [DONE].
 */
export function streamChoicesSSE(c: Context, gens: readonly Generation[], o: ChoiceStream): Response {
  return streamSSE(c, async (stream) => {
    stream.onAbort(() => o.ac.abort());
    const write: ChunkWriter = (choices, extra = {}) =>
      stream.writeSSE({ data: JSON.stringify({ ...o.base, object: o.object, choices, ...extra }) });
    try {
      await o.begin?.(write);
      const summaries = await streamChoices(gens, (index, t) => o.token(write, index, t));
      await write(
        summaries.map((s, index) => ({ index, ...o.last, finish_reason: finishReason(s.finishReason) })),
        { steering: o.steering },
      );
      if (o.includeUsage) await write([], { usage: usage(o.promptTokens, summaries) });
    } catch (e) {
      if (o.ac.signal.aborted) return;
      await stream.writeSSE({ data: JSON.stringify(toApiError(e).body()) });
    }
    await stream.writeSSE({ data: "[DONE]" });
  });
}

/** All tokens of each choice (without stop tokens) and its summary. */
export async function collectChoices(
  gens: readonly Generation[],
): Promise<{ toks: GenToken[]; s: GenSummary }[]> {
  return Promise.all(
    gens.map(async (g) => {
      const toks: GenToken[] = [];
      for await (const t of g.tokens) if (t.finishReason !== "stop_token") toks.push(t);
      return { toks, s: await g.done };
    }),
  );
}

/** The n requests of one prompt: choice i samples with seed + i. */
export function withSeeds(req: GenRequest, n: number): GenRequest[] {
  return Array.from({ length: n }, (_, i) => ({ ...req, seed: req.seed + i }));
}
