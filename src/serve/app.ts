/**
 * `steerlab serve` as a Hono app: OpenAI-compatible /v1/models, /v1/chat/completions, /v1/completions with
 * per-request steering, the vector library under /v1/steering/vectors, and /health. createApp builds it
 * without listening (tests call app.request); server.ts listens. Extra routes (the web lab) are mounted in one
 * place: `extraRoutes`.
 */
import { timingSafeEqual } from "node:crypto";
import { basename } from "node:path";
import { Hono, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { streamSSE } from "hono/streaming";
import type { z } from "zod";
import type { ChatMessage, Tokenizer } from "../io/tokenizer-types.js";
import { type OpenedModel, requireTokenizer } from "../model/open.js";
import { type PreparedPrompt, prepareChat, preparePrompt } from "../steer/steer-call.js";
import { VERSION } from "../version.js";
import { ApiError, toApiError } from "./api-error.js";
import { type GenRequest, type GenSummary, type GenToken, startGeneration } from "./generation.js";
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
import { Scheduler } from "./scheduler.js";
import {
  type ChatRequest,
  type CompletionRequest,
  chatRequestSchema,
  completionRequestSchema,
  type monitorSchema,
  type SteeringObject,
  uploadQuerySchema,
} from "./schemas.js";
import { planRequestSteering, planSteeringObject, type SteeringPlan, steeringEcho } from "./steering.js";
import { VectorLibrary } from "./vector-library.js";

export interface ServeOptions {
  /** The model to serve, as openModel returns it (the app does not dispose it). */
  opened: OpenedModel;
  /** The id /v1/models lists and responses carry (default: the model file or folder name). */
  modelId?: string;
  /** Directory of the vector library; null = no library (uploads refused). */
  vectorsDir?: string | null;
  /** Require `Authorization: Bearer <apiKey>` on /v1/*. */
  apiKey?: string | null;
  /** Rows per batch: requests decoded together in one forward (default 4). */
  parallel?: number;
  /** Requests allowed to wait; more are refused with 429 (default 64). */
  maxQueue?: number;
  /** Largest JSON request body in bytes (default 4 MiB). */
  bodyLimit?: number;
  /** Largest vector upload in bytes (default 64 MiB). */
  vectorBodyLimit?: number;
  /** Steering applied when a request says nothing about steering (`steering: false` turns it off). */
  defaultSteering?: SteeringObject | null;
  /** Sweep runs directory: not used by the API; handed to extraRoutes (the web lab reads runs from it). */
  runsDir?: string | null;
  /** Extra routes (e.g. the web lab: `app.route("/lab", ...)`), mounted after the API routes. */
  extraRoutes?: (app: Hono, ctx: ServeContext) => void;
}

/** What extra routes may use: the served model, the vector library, the queue, the runs dir, the API-key check. */
export interface ServeContext {
  opened: OpenedModel;
  modelId: string;
  library: VectorLibrary;
  scheduler: Scheduler;
  runsDir: string | null;
  /** Middleware that enforces the API key (a no-op without one), for extra routes that should require it. */
  requireKey: MiddlewareHandler;
}

type Monitor = z.infer<typeof monitorSchema>;

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

async function readJson(req: Request): Promise<unknown> {
  const text = await req.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(400, "the request body is not valid JSON", "invalid_request_error", "invalid_json");
  }
}

function messageText(m: ChatRequest["messages"][number]): string {
  if (m.content === null) return "";
  return typeof m.content === "string" ? m.content : m.content.map((p) => p.text).join("");
}

export function createApp(opts: ServeOptions): Hono {
  const { opened } = opts;
  const { config } = opened.model;
  const tok: Tokenizer = requireTokenizer(opened);
  const modelId = opts.modelId ?? basename(opened.model.source.path).replace(/\.gguf$/i, "");
  const created = nowSeconds();
  const library = new VectorLibrary(opts.vectorsDir ?? null, opened.model, opts.vectorBodyLimit);
  const scheduler = new Scheduler(opened.engine, tok, opts.parallel ?? 4, opts.maxQueue ?? 64);
  const jsonLimit = opts.bodyLimit ?? 4 * 1024 * 1024;
  // The default plan is checked at start: a bad default fails the server's start, not every request.
  const defaultPlan: SteeringPlan | null = opts.defaultSteering
    ? planSteeringObject(opts.defaultSteering, library, config, "default", "default_steering")
    : null;
  const fingerprint = `steerlab-${opened.model.fingerprint.slice(0, 12)}`;

  const app = new Hono();
  app.onError((e, c) => {
    const err = toApiError(e);
    return c.json(err.body(), err.status);
  });
  app.notFound((c) =>
    c.json(
      new ApiError(
        404,
        `no route ${c.req.method} ${c.req.path}`,
        "invalid_request_error",
        "not_found",
      ).body(),
      404,
    ),
  );

  app.get("/health", (c) => c.json({ status: "ok", model: modelId, queue: scheduler.stats() }));

  const key = opts.apiKey ?? null;
  const requireKey: MiddlewareHandler = async (c, next) => {
    if (key !== null) {
      const m = /^Bearer\s+(.+)$/i.exec(c.req.header("authorization") ?? "");
      if (!m || !safeEqual(m[1]!.trim(), key)) {
        throw new ApiError(
          401,
          "missing or wrong API key (Authorization: Bearer <key>)",
          "invalid_request_error",
          "invalid_api_key",
        );
      }
    }
    await next();
  };
  app.use("/v1/*", requireKey);
  const tooLarge = (limit: number) => () => {
    throw new ApiError(
      413,
      `request body larger than ${limit} bytes`,
      "invalid_request_error",
      "body_too_large",
    );
  };
  const jsonBody = bodyLimit({ maxSize: jsonLimit, onError: tooLarge(jsonLimit) });

  app.get("/v1/models", (c) =>
    c.json({
      object: "list",
      data: [
        {
          id: modelId,
          object: "model",
          created,
          owned_by: "steerlab",
          meta: {
            arch: config.arch,
            n_layers: config.nLayers,
            hidden_size: config.hiddenSize,
            vocab_size: config.vocabSize,
            n_ctx: config.maxPositions,
            engine: opened.engine.kind,
            steerlab: VERSION,
          },
        },
      ],
    }),
  );

  // ---- the vector library ----
  app.get("/v1/steering/vectors", (c) => c.json({ object: "list", data: library.list() }));
  app.get("/v1/steering/vectors/:name", (c) => c.json(library.info(c.req.param("name"))));
  const uploadLimit = library.maxBytes + 64 * 1024; // multipart framing
  app.post(
    "/v1/steering/vectors",
    bodyLimit({ maxSize: uploadLimit, onError: tooLarge(library.maxBytes) }),
    async (c) => {
      const q = uploadQuerySchema.parse(c.req.query());
      let name = q.name;
      let bytes: Uint8Array;
      const type = c.req.header("content-type") ?? "";
      if (type.startsWith("multipart/form-data")) {
        const form = await c.req.formData();
        const file = form.get("file");
        if (!(file instanceof File))
          throw new ApiError(
            400,
            "multipart upload needs a 'file' field",
            "invalid_request_error",
            "missing_file",
            "file",
          );
        const field = form.get("name");
        name ??= typeof field === "string" && field ? field : file.name.replace(/\.(gguf|safetensors)$/i, "");
        bytes = new Uint8Array(await file.arrayBuffer());
      } else {
        bytes = new Uint8Array(await c.req.arrayBuffer());
      }
      if (!name)
        throw new ApiError(
          400,
          "name the vector: ?name=NAME (or a multipart 'name' field)",
          "invalid_request_error",
          "missing_name",
          "name",
        );
      return c.json(library.add(name, bytes, q.overwrite === "true"), 201);
    },
  );
  app.delete("/v1/steering/vectors/:name", (c) => {
    const name = c.req.param("name");
    library.remove(name);
    return c.json({ id: name, object: "steering.vector", deleted: true });
  });

  // ---- generation ----
  const monitorOf = (m: Monitor | undefined): GenRequest["monitor"] => {
    if (!m) return null;
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
  };

  const checkPrompt = (p: PreparedPrompt, param: string) => {
    if (p.ids.length === 0 || p.ids.length >= config.maxPositions) {
      throw new ApiError(
        400,
        `the prompt has ${p.ids.length} tokens; this model takes 1 to ${config.maxPositions - 1}`,
        "invalid_request_error",
        "context_length_exceeded",
        param,
      );
    }
  };

  const baseRequest = (r: ChatRequest | CompletionRequest, prompt: PreparedPrompt, maxTokens: number) => {
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
      monitor: monitorOf(r.monitor),
    };
  };

  /** Ends the generation when the client goes away (a closed connection, or a stream the client dropped). */
  const cancelOn = (req: Request): AbortController => {
    const ac = new AbortController();
    if (req.signal.aborted) ac.abort();
    else req.signal.addEventListener("abort", () => ac.abort(), { once: true });
    return ac;
  };

  app.post("/v1/chat/completions", jsonBody, async (c) => {
    const r = chatRequestSchema.parse(await readJson(c.req.raw));
    const messages: ChatMessage[] = r.messages.map((m) => ({
      role: m.role === "developer" ? "system" : m.role,
      content: messageText(m),
    }));
    const prompt = prepareChat(tok, messages);
    checkPrompt(prompt, "messages");
    const req: GenRequest = {
      ...baseRequest(r, prompt, r.max_completion_tokens ?? r.max_tokens ?? config.maxPositions),
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
    const id = responseId("chatcmpl");
    const steering = steeringEcho(req.plan);
    const ac = cancelOn(c.req.raw);
    const gen = startGeneration(scheduler, tok, config.nLayers, req, ac.signal);
    const base = { id, created: nowSeconds(), model: modelId, system_fingerprint: fingerprint };

    if (r.stream) {
      return streamSSE(c, async (stream) => {
        stream.onAbort(() => ac.abort());
        const chunk = (choice: object, extra: object = {}) =>
          stream.writeSSE({
            data: JSON.stringify({ ...base, object: "chat.completion.chunk", choices: [choice], ...extra }),
          });
        await chunk(
          { index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null },
          { steering },
        );
        try {
          for await (const t of gen.tokens) {
            if (t.finishReason === "stop_token" && !t.text) continue;
            await chunk({
              index: 0,
              delta: { content: t.text },
              logprobs: t.logprob ? { content: [t.logprob] } : null,
              finish_reason: null,
              ...(t.monitor ? { monitor: t.monitor } : {}),
            });
          }
          const s = await gen.done;
          await chunk(
            { index: 0, delta: {}, logprobs: null, finish_reason: finishReason(s.finishReason) },
            { steering },
          );
          if (r.stream_options?.include_usage) {
            await stream.writeSSE({
              data: JSON.stringify({
                ...base,
                object: "chat.completion.chunk",
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
    return c.json({
      ...base,
      object: "chat.completion",
      choices: [
        {
          index: 0,
          message: { role: "assistant", content: s.text, refusal: null },
          logprobs:
            req.topLogprobs === null
              ? null
              : { content: toks.flatMap((t) => (t.logprob ? [t.logprob] : [])), refusal: null },
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
    checkPrompt(prompt, "prompt");
    const echo = r.echo ?? false;
    const req: GenRequest = {
      ...baseRequest(r, prompt, r.max_tokens ?? 16),
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

  // The one place where routes beyond the API are mounted (the web lab: app.route("/lab", ...)).
  opts.extraRoutes?.(app, {
    opened,
    modelId,
    library,
    scheduler,
    runsDir: opts.runsDir ?? null,
    requireKey,
  });
  return app;
}

async function collect(gen: {
  tokens: AsyncIterable<GenToken>;
  done: Promise<GenSummary>;
}): Promise<{ toks: GenToken[]; s: GenSummary }> {
  const toks: GenToken[] = [];
  for await (const t of gen.tokens) if (t.finishReason !== "stop_token") toks.push(t);
  return { toks, s: await gen.done };
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
