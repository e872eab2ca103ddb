/** POST /v1/chat/completions: OpenAI chat completions (plain and SSE), with per-request steering and monitoring. */
import type { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import type { ChatMessage } from "../io/tokenizer-types.js";
import { prepareChat } from "../steer/steer-call.js";
import { ApiError, toApiError } from "./api-error.js";
import { collectChoices, startChoices, streamChoices, withSeeds } from "./choices.js";
import { type ApiContext, baseRequest, cancelOn, checkPrompt, monitorEntries, readJson } from "./context.js";
import type { GenRequest } from "./generation.js";
import { finishReason, nowSeconds, responseId, usage } from "./openai.js";
import { type ChatRequest, chatRequestSchema } from "./schemas.js";
import { steeringEcho } from "./steering.js";

function messageText(m: ChatRequest["messages"][number]): string {
  if (m.content === null) return "";
  return typeof m.content === "string" ? m.content : m.content.map((p) => p.text).join("");
}

export function chatRoutes(app: Hono, ctx: ApiContext): void {
  const { tok, config, scheduler, modelId, fingerprint, jsonBody } = ctx;
  app.post("/v1/chat/completions", jsonBody, async (c) => {
    const r = chatRequestSchema.parse(await readJson(c.req.raw));
    const messages: ChatMessage[] = r.messages.map((m) => ({
      role: m.role === "developer" ? "system" : m.role,
      content: messageText(m),
    }));
    const prompt = prepareChat(tok, messages);
    checkPrompt(ctx, prompt, "messages");
    const req: GenRequest = {
      ...baseRequest(ctx, r, prompt, r.max_completion_tokens ?? r.max_tokens ?? config.maxPositions),
      topLogprobs: r.logprobs ? (r.top_logprobs ?? 0) : null,
      promptLogprobs: false,
    };
    if (req.maxTokens < 1)
      throw new ApiError(
        400,
        "max_tokens must be at least 1",
        "invalid_request_error",
        "invalid_value",
        "max_tokens",
      );
    const n = r.n ?? 1;
    const id = responseId("chatcmpl");
    const steering = steeringEcho(req.plan);
    const ac = cancelOn(c.req.raw);
    const gens = startChoices(scheduler, tok, config, withSeeds(req, n), ac);
    const base = { id, created: nowSeconds(), model: modelId, system_fingerprint: fingerprint };
    const promptTokens = prompt.ids.length;

    if (r.stream) {
      return streamSSE(c, async (stream) => {
        stream.onAbort(() => ac.abort());
        const write = (choices: object[], extra: object = {}) =>
          stream.writeSSE({
            data: JSON.stringify({ ...base, object: "chat.completion.chunk", choices, ...extra }),
          });
        try {
          await write(
            gens.map((_, index) => ({
              index,
              delta: { role: "assistant", content: "" },
              logprobs: null,
              finish_reason: null,
            })),
            { steering },
          );
          const summaries = await streamChoices(gens, (index, t) =>
            write([
              {
                index,
                delta: { content: t.text },
                logprobs: t.logprob ? { content: [t.logprob] } : null,
                finish_reason: null,
                ...(t.monitor ? { monitor: t.monitor } : {}),
              },
            ]),
          );
          await write(
            summaries.map((s, index) => ({
              index,
              delta: {},
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
      object: "chat.completion",
      choices: done.map(({ toks, s }, index) => ({
        index,
        message: { role: "assistant", content: s.text, refusal: null },
        logprobs:
          req.topLogprobs === null
            ? null
            : { content: toks.flatMap((t) => (t.logprob ? [t.logprob] : [])), refusal: null },
        finish_reason: finishReason(s.finishReason),
        ...(req.monitor ? { monitor: monitorEntries(tok, toks) } : {}),
      })),
      usage: usage(
        promptTokens,
        done.reduce((k, d) => k + d.s.completionTokens, 0),
      ),
      steering,
    });
  });
}
