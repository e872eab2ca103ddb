/**
 * One request, several choices (n samples, or one per prompt of a completions list): each choice is its own
 * generation (its own row in the queue, seed + i), all cancelled together when the client goes away. Streams
 * merge their tokens into one SSE response in arrival order, one writer at a time.
 */
import type { Tokenizer } from "../io/tokenizer-types.js";
import type { ModelConfig } from "../model/config.js";
import { ApiError } from "./api-error.js";
import type { Generation, GenRequest, GenSummary, GenToken } from "./generation.js";
import { startGeneration } from "./generation.js";
import type { Scheduler } from "./scheduler.js";
import { LIMITS } from "./schemas.js";

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
