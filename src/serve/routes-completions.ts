/**
 * POST /v1/completions: OpenAI's legacy completions, plain and SSE: a prompt or a list of prompts (text or token
 * ids; one choice per prompt and n), echo, logprobs, and max_tokens 0 with echo to score prompts.
 */
import type { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import type { Tokenizer } from "../io/tokenizer-types.js";
import { type PreparedPrompt, preparePrompt } from "../steer/steer-call.js";
import { ApiError, toApiError } from "./api-error.js";
import { collectChoices, startChoices, streamChoices, withSeeds } from "./choices.js";
import { type ApiContext, baseRequest, cancelOn, checkPrompt, monitorEntries, readJson } from "./context.js";
import type { GenRequest, GenToken } from "./generation.js";
import {
  appendCompletionLogprob,
  type CompletionLogprobs,
  finishReason,
  nowSeconds,
  responseId,
  type TokenLogprob,
  tokenText,
  usage,
} from "./openai.js";
import { type CompletionRequest, completionRequestSchema } from "./schemas.js";
import { steeringEcho } from "./steering.js";

function bad(message: string, param: string): ApiError {
  return new ApiError(400, message, "invalid_request_error", "invalid_value", param);
}

/** The prompts of a request: one text, one id list, or a list of either. */
function promptsOf(ctx: ApiContext, p: CompletionRequest["prompt"]): PreparedPrompt[] {
  const list: (string | number[])[] =
    typeof p === "string" ? [p] : typeof p[0] === "number" ? [p as number[]] : (p as (string | number[])[]);
  return list.map((x, i) => {
    const param = list.length > 1 ? `prompt.${i}` : "prompt";
    if (typeof x !== "string") {
      const badId = x.find((id) => id >= ctx.config.vocabSize);
      if (badId !== undefined)
        throw bad(`token id ${badId} is outside the vocabulary (${ctx.config.vocabSize})`, param);
    }
    const prompt =
      typeof x === "string"
        ? preparePrompt(ctx.tok, x)
        : { ids: [...x], text: ctx.tok.decode(x, { skipSpecialTokens: true }) };
    checkPrompt(ctx, prompt, param);
    return prompt;
  });
}

export function completionRoutes(app: Hono, ctx: ApiContext): void {
  const { tok, config, scheduler, modelId, fingerprint, jsonBody } = ctx;
  app.post("/v1/completions", jsonBody, async (c) => {
    const r = completionRequestSchema.parse(await readJson(c.req.raw));
    const prompts = promptsOf(ctx, r.prompt);
    const echo = r.echo ?? false;
    const n = r.n ?? 1;
    // Choice k is prompt floor(k / n), sample k % n (OpenAI's order).
    const reqs: GenRequest[] = prompts.flatMap((prompt) =>
      withSeeds(
        {
          ...baseRequest(ctx, r, prompt, r.max_tokens ?? 16),
          topLogprobs: r.logprobs ?? null,
          promptLogprobs: echo && r.logprobs != null,
        },
        n,
      ),
    );
    const first = reqs[0]!;
    if (first.maxTokens === 0 && !echo)
      throw bad("max_tokens 0 only makes sense with echo (scoring the prompt)", "max_tokens");
    if (r.stream && first.maxTokens === 0) throw bad("max_tokens 0 cannot stream", "max_tokens");
    const id = responseId("cmpl");
    const steering = steeringEcho(first.plan);
    const ac = cancelOn(c.req.raw);
    const gens = startChoices(scheduler, tok, config, reqs, ac);
    const base = { id, created: nowSeconds(), model: modelId, system_fingerprint: fingerprint };
    const echoText = (k: number) => (echo ? reqs[k]!.prompt.text : "");
    const promptTokens = prompts.reduce((k, p) => k + p.ids.length, 0);

    if (r.stream) {
      return streamSSE(c, async (stream) => {
        stream.onAbort(() => ac.abort());
        const write = (choices: object[], extra: object = {}) =>
          stream.writeSSE({
            data: JSON.stringify({ ...base, object: "text_completion", choices, ...extra }),
          });
        const offsets = reqs.map((_, k) => echoText(k).length);
        const started = reqs.map(() => false);
        try {
          const summaries = await streamChoices(gens, async (index, t) => {
            let logprobs: CompletionLogprobs | null = null;
            if (r.logprobs != null) {
              logprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
              if (!started[index] && echo)
                addPrompt(logprobs, tok, reqs[index]!.prompt, gens[index]!.promptLogprobs());
              if (t.logprob) appendCompletionLogprob(logprobs, t.logprob, t.logprob.token, offsets[index]!);
            }
            const text = (started[index] ? "" : echoText(index)) + t.text;
            await write(
              [{ index, text, logprobs, finish_reason: null, ...(t.monitor ? { monitor: t.monitor } : {}) }],
              index === 0 && !started[0] ? { steering } : {},
            );
            offsets[index]! += t.text.length;
            started[index] = true;
          });
          await write(
            summaries.map((s, index) => ({
              index,
              text: "",
              logprobs: null,
              finish_reason: finishReason(s.finishReason),
            })),
            { steering },
          );
          if (r.stream_options?.include_usage) {
            await write([], {
              usage: usage(
                promptTokens,
                summaries.reduce((k, s) => k + s.completionTokens, 0),
              ),
            });
          }
        } catch (e) {
          if (ac.signal.aborted) return;
          await stream.writeSSE({ data: JSON.stringify(toApiError(e).body()) });
        }
        await stream.writeSSE({ data: "[DONE]" });
      });
    }

    const done = await collectChoices(gens);
    return c.json({
      ...base,
      object: "text_completion",
      choices: done.map(({ toks, s }, index) => ({
        index,
        text: echoText(index) + s.text,
        logprobs:
          r.logprobs != null ? choiceLogprobs(tok, reqs[index]!.prompt, echo, s.promptLogprobs, toks) : null,
        finish_reason: finishReason(s.finishReason),
        ...(first.monitor ? { monitor: monitorEntries(tok, toks) } : {}),
      })),
      usage: usage(
        promptTokens,
        done.reduce((k, d) => k + d.s.completionTokens, 0),
      ),
      steering,
    });
  });
}

/** A whole choice's logprobs: the prompt's (with echo), then each generated token's, with text offsets. */
function choiceLogprobs(
  tok: Tokenizer,
  prompt: PreparedPrompt,
  echo: boolean,
  promptLps: (TokenLogprob | null)[] | undefined,
  toks: readonly GenToken[],
): CompletionLogprobs {
  const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  if (echo) addPrompt(out, tok, prompt, promptLps);
  let offset = echo ? prompt.text.length : 0;
  for (const t of toks) {
    if (!t.logprob) continue;
    appendCompletionLogprob(out, t.logprob, t.logprob.token, offset);
    offset += t.text.length;
  }
  return out;
}

/** The prompt's tokens in completion logprobs (echo): offsets into the prompt text, the first token unscored. */
function addPrompt(
  out: CompletionLogprobs,
  tok: Tokenizer,
  prompt: PreparedPrompt,
  lps: (TokenLogprob | null)[] | undefined,
): void {
  for (let i = 0; i < prompt.ids.length; i++) {
    const offset = tok.decode(prompt.ids.slice(0, i), { skipSpecialTokens: true }).length;
    const token = tokenText(tok, prompt.ids[i]!);
    appendCompletionLogprob(out, lps?.[i] ?? null, token, Math.min(offset, prompt.text.length));
  }
}
