/**
 * What the generation routes share: the served model's facts, the library, the queue, and the steps every
 * request goes through (parse JSON, check the prompt, resolve sampling, steering and monitoring, cancel on
 * disconnect, collect the tokens).
 */
import type { MiddlewareHandler } from "hono";
import type { z } from "zod";
import type { Tokenizer } from "../io/tokenizer-types.js";
import type { ModelConfig } from "../model/config.js";
import type { PreparedPrompt } from "../steer/steer-call.js";
import { ApiError } from "./api-error.js";
import type { GenRequest, GenToken } from "./generation.js";
import { tokenText } from "./openai.js";
import type { Scheduler } from "./scheduler.js";
import type { ChatRequest, CompletionRequest, monitorSchema } from "./schemas.js";
import { planRequestSteering, type SteeringPlan } from "./steering.js";
import type { VectorLibrary } from "./vector-library.js";

export interface ApiContext {
  tok: Tokenizer;
  config: ModelConfig;
  modelId: string;
  /** system_fingerprint of every response: the weights' fingerprint. */
  fingerprint: string;
  library: VectorLibrary;
  scheduler: Scheduler;
  defaultPlan: SteeringPlan | null;
  /** The JSON body-size limit. */
  jsonBody: MiddlewareHandler;
}

type Monitor = z.infer<typeof monitorSchema>;

export async function readJson(req: Request): Promise<unknown> {
  const text = await req.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(400, "the request body is not valid JSON", "invalid_request_error", "invalid_json");
  }
}

export function monitorOf(ctx: ApiContext, m: Monitor | undefined): GenRequest["monitor"] {
  if (!m) return null;
  const { config, library } = ctx;
  const vector = library.getFitting(m.vector, "monitor.vector");
  const layers = m.layers
    ? [...new Set(m.layers.map((l) => (l < 0 ? config.nLayers + l : l)))]
    : [...vector.directions.keys()].sort((a, b) => a - b);
  const missing = layers.filter((l) => !vector.directions.has(l));
  if (missing.length)
    throw new ApiError(
      400,
      `the monitor vector has no direction for layer ${missing.join(", ")}`,
      "invalid_request_error",
      "bad_input",
      "monitor.layers",
    );
  return { vector, layers };
}

export function checkPrompt(ctx: ApiContext, p: PreparedPrompt, param: string): void {
  const { config } = ctx;
  if (p.ids.length === 0 || p.ids.length >= config.maxPositions) {
    throw new ApiError(
      400,
      `the prompt has ${p.ids.length} tokens; this model takes 1 to ${config.maxPositions - 1}`,
      "invalid_request_error",
      "context_length_exceeded",
      param,
    );
  }
}

/** The request fields chat and completions share, resolved (maxTokens capped by the context). */
export function baseRequest(
  ctx: ApiContext,
  r: ChatRequest | CompletionRequest,
  prompt: PreparedPrompt,
  maxTokens: number,
): Omit<GenRequest, "topLogprobs" | "promptLogprobs"> {
  const { config, library, defaultPlan } = ctx;
  const stop = r.stop == null ? [] : typeof r.stop === "string" ? [r.stop] : r.stop;
  return {
    prompt,
    maxTokens: Math.min(maxTokens, config.maxPositions - prompt.ids.length),
    temperature: r.temperature ?? 1,
    topP: r.top_p ?? 1,
    topK: r.top_k ?? 0,
    seed: r.seed ?? 0,
    stop,
    ignoreEos: r.ignore_eos ?? false,
    plan: planRequestSteering(r, library, config, defaultPlan),
    monitor: monitorOf(ctx, r.monitor),
  };
}

/** The monitor entries of a choice: per generated token, its text and the projection per layer. */
export function monitorEntries(tok: Tokenizer, toks: readonly GenToken[]): Record<string, number | string>[] {
  return toks.flatMap((t) => (t.monitor ? [{ token: tokenText(tok, t.id), ...t.monitor }] : []));
}

/** Ends the generation when the client goes away (a closed connection, or a stream the client dropped). */
export function cancelOn(req: Request): AbortController {
  const ac = new AbortController();
  if (req.signal.aborted) ac.abort();
  else req.signal.addEventListener("abort", () => ac.abort(), { once: true });
  return ac;
}
