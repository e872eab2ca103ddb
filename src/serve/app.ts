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
import { secureHeaders } from "hono/secure-headers";
import type { Tokenizer } from "../io/tokenizer-types.js";
import { type OpenedModel, requireTokenizer } from "../model/open.js";
import { VERSION } from "../version.js";
import { ApiError, errorResponse } from "./api-error.js";
import type { ApiContext } from "./context.js";
import { nowSeconds } from "./openai.js";
import { chatRoutes } from "./routes-chat.js";
import { completionRoutes } from "./routes-completions.js";
import { vectorRoutes } from "./routes-vectors.js";
import { Scheduler } from "./scheduler.js";
import type { SteeringObject } from "./schemas.js";
import { planSteeringObject, type SteeringPlan } from "./steering.js";
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
  /**
   * Serve library vectors whose file says they were extracted from another checkpoint of the same shape (e.g. a
   * base model's vector on its chat model). Default false: such a vector is refused, as the CLI refuses it.
   */
  allowOtherWeights?: boolean;
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

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function createApp(opts: ServeOptions): Hono {
  const { opened } = opts;
  const { config } = opened.model;
  const tok: Tokenizer = requireTokenizer(opened);
  const modelId = opts.modelId ?? basename(opened.model.source.path).replace(/\.gguf$/i, "");
  const created = nowSeconds();
  const library = new VectorLibrary(
    opts.vectorsDir ?? null,
    opened.model,
    opts.vectorBodyLimit,
    opts.allowOtherWeights ?? false,
  );
  const scheduler = new Scheduler(opened.engine, tok, opts.parallel ?? 4, opts.maxQueue ?? 64);
  const jsonLimit = opts.bodyLimit ?? 4 * 1024 * 1024;
  // The default plan is checked at start: a bad default fails the server's start, not every request.
  const defaultPlan: SteeringPlan | null = opts.defaultSteering
    ? planSteeringObject(opts.defaultSteering, library, config, "default", "default_steering")
    : null;
  const fingerprint = `steerlab-${opened.model.fingerprint.slice(0, 12)}`;

  const app = new Hono();
  app.onError((e, c) => errorResponse(c, e));
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

  // No sniffing, framing or referrers for API answers (the lab sets its own headers on its routes).
  app.use("/v1/*", secureHeaders());
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
  vectorRoutes(app, library, tooLarge);
  const ctx: ApiContext = { tok, config, modelId, fingerprint, library, scheduler, defaultPlan, jsonBody };
  chatRoutes(app, ctx);
  completionRoutes(app, ctx);

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
