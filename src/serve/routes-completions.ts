/** POST /v1/completions: OpenAI's legacy completions (echo, logprobs, max_tokens 0 to score a prompt), plain and SSE. */
import type { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import type { Tokenizer } from "../io/tokenizer-types.js";
import { type PreparedPrompt, preparePrompt } from "../steer/steer-call.js";
import { ApiError, toApiError } from "./api-error.js";
import { type ApiContext, baseRequest, cancelOn, checkPrompt, collect, readJson } from "./context.js";
import { type GenRequest, startGeneration } from "./generation.js";
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
import { completionRequestSchema } from "./schemas.js";
import { steeringEcho } from "./steering.js";

export function completionRoutes(app: Hono, ctx: ApiContext): void {
  const { tok, config, scheduler, modelId, fingerprint, jsonBody } = ctx;
  app.post("/v1/completions", jsonBody, async (c) => {
    const r = completionRequestSchema.parse(await readJson(c.req.raw));
    const raw =
      Array.isArray(r.prompt) && r.prompt.length === 1 && typeof r.prompt[0] !== "number"
        ? r.prompt[0]!
        : r.prompt;
    if (typeof raw !== "string") {
      const badId = (raw as number[]).find((id) => id >= config.vocabSize);
      if (badId !== undefined) {
        throw new ApiError(
          400,
          `token id ${badId} is outside the vocabulary (${config.vocabSize})`,
          "invalid_request_error",
          "invalid_value",
          "prompt",
        );
      }
    }
    const prompt: PreparedPrompt =
      typeof raw === "string"
        ? preparePrompt(tok, raw)
        : { ids: [...(raw as number[])], text: tok.decode(raw as number[], { skipSpecialTokens: true }) };
    checkPrompt(ctx, prompt, "prompt");
    const echo = r.echo ?? false;
    const req: GenRequest = {
      ...baseRequest(ctx, r, prompt, r.max_tokens ?? 16),
      topLogprobs: r.logprobs ?? null,
      promptLogprobs: echo && r.logprobs != null,
    };
    if (req.maxTokens === 0 && !echo)
      throw new ApiError(
        400,
        "max_tokens 0 only makes sense with echo (scoring the prompt)",
        "invalid_request_error",
        "invalid_value",
        "max_tokens",
      );
    if (r.stream && req.maxTokens === 0)
      throw new ApiError(
        400,
        "max_tokens 0 cannot stream",
        "invalid_request_error",
        "invalid_value",
        "max_tokens",
      );
    const id = responseId("cmpl");
    const steering = steeringEcho(req.plan);
    const ac = cancelOn(c.req.raw);
    const gen = startGeneration(scheduler, tok, config.nLayers, req, ac.signal);
    const base = { id, created: nowSeconds(), model: modelId, system_fingerprint: fingerprint };
    const echoText = echo ? prompt.text : "";

    if (r.stream) {
      return streamSSE(c, async (stream) => {
        stream.onAbort(() => ac.abort());
        const chunk = (choice: object, extra: object = {}) =>
          stream.writeSSE({
            data: JSON.stringify({ ...base, object: "text_completion", choices: [choice], ...extra }),
          });
        let offset = echoText.length;
        try {
          let first = true;
          for await (const t of gen.tokens) {
            if (t.finishReason === "stop_token" && !t.text) continue;
            let logprobs: CompletionLogprobs | null = null;
            if (r.logprobs != null) {
              logprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
              if (first && echo) addPrompt(logprobs, tok, prompt, gen.promptLogprobs());
              if (t.logprob) appendCompletionLogprob(logprobs, t.logprob, t.logprob.token, offset);
            }
            await chunk(
              {
                index: 0,
                text: (first ? echoText : "") + t.text,
                logprobs,
                finish_reason: null,
                ...(t.monitor ? { monitor: t.monitor } : {}),
              },
              first ? { steering } : {},
            );
            offset += t.text.length;
            first = false;
          }
          const s = await gen.done;
          await chunk(
            { index: 0, text: "", logprobs: null, finish_reason: finishReason(s.finishReason) },
            { steering },
          );
          if (r.stream_options?.include_usage) {
            await stream.writeSSE({
              data: JSON.stringify({
                ...base,
                object: "text_completion",
                choices: [],
                usage: usage(prompt.ids.length, s.completionTokens),
              }),
            });
          }
        } catch (e) {
          if (ac.signal.aborted) return;
          await stream.writeSSE({ data: JSON.stringify(toApiError(e).body()) });
        }
        await stream.writeSSE({ data: "[DONE]" });
      });
    }

    const { toks, s } = await collect(gen);
    let logprobs: CompletionLogprobs | null = null;
    if (r.logprobs != null) {
      logprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
      if (echo) addPrompt(logprobs, tok, prompt, s.promptLogprobs);
      let offset = echoText.length;
      for (const t of toks) {
        if (!t.logprob) continue;
        appendCompletionLogprob(logprobs, t.logprob, t.logprob.token, offset);
        offset += t.text.length;
      }
    }
    return c.json({
      ...base,
      object: "text_completion",
      choices: [
        {
          index: 0,
          text: echoText + s.text,
          logprobs,
          finish_reason: finishReason(s.finishReason),
          ...(req.monitor
            ? {
                monitor: toks.flatMap((t) =>
                  t.monitor ? [{ token: tokenText(tok, t.id), ...t.monitor }] : [],
                ),
              }
            : {}),
        },
      ],
      usage: usage(prompt.ids.length, s.completionTokens),
      steering,
    });
  });
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
