/**
 * The web lab under the steerlab server: the built front-end (dist/web, from web/) and its data endpoints.
 *   GET /                      the lab (index.html; COOP/COEP on every response so WASM threads work)
 *   GET /api/info              what this lab serves (runs, vectors, a model for the in-browser playground)
 *   GET /api/runs              sweep runs under runsDir
 *   GET /api/run?id=&budget=&lambda=&source=   one run's report (records, fits, regime) as `steerlab report`
 *   GET /api/run/events?id=    the same as server-sent events whenever the run's results change (live view)
 *   GET /api/vectors           vectors in vectorsDir;  GET /api/vector?name=  per-layer diagnostics
 *   GET /api/vector/file?name= the vector as a steerlab vector file (the browser decodes it with the library)
 *   GET /api/model             the in-browser model: config and graph list; /api/model/graph/:g[/:file] bytes;
 *   GET /api/model/tokenizer   tokenizer.json and its config
 * Mount it with `app.route("/lab", labRoutes({...}))`.
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { serveStatic } from "@hono/node-server/serve-static";
import type { Context, MiddlewareHandler } from "hono";
import { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "zod";
import { isSteerlabError, SteerlabError } from "../../errors.js";
import type { ModelConfig } from "../../model/config.js";
import type { BuildOptions } from "../../report/build.js";
import { encodeVector } from "../../steer/vector-file.js";
import { ApiError } from "../api-error.js";
import { buildModelAssets, type ModelAssets } from "./model-assets.js";
import { listRuns, runStamp, runView } from "./runs.js";
import type { LabInfo } from "./types.js";
import { listVectors, loadNamedVector, vectorView } from "./vectors.js";

export interface LabOptions {
  /** Folder holding sweep run folders (searched 3 levels deep). */
  runsDir?: string;
  /** Hugging Face model folder the in-browser playground runs. */
  modelPath?: string;
  /** Vector files (.safetensors, .gguf). */
  vectorsDir?: string;
  /** The built front-end; default dist/web of this package. */
  webDir?: string;
  /** Live view: how often a run's results file is checked, ms. Default 1000. */
  pollMs?: number;
  /** The served model's config (the playground's server mode resolves layer specs with it). */
  modelConfig?: ModelConfig;
  /**
   * Middleware run before every data endpoint (/api/*), e.g. the server's API-key check: the model's weights and
   * the vectors are served there. The page itself (static files) stays public; it sends the key it is given.
   */
  guard?: MiddlewareHandler;
}

/** dist/web beside dist/src (this file is dist/src/serve/lab/routes.js once built). */
export function defaultWebDir(): string {
  return join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "web");
}

const STATUS: Record<SteerlabError["code"], ContentfulStatusCode> = {
  bad_input: 400,
  bad_config: 400,
  bad_file: 422,
  bad_tensor: 422,
  mismatch: 422,
  unsupported: 501,
  not_found: 404,
  io: 500,
  locked: 409,
};

/** OpenAI's error shape, as the rest of the server answers (its own ApiErrors, e.g. a missing API key, as they are). */
function errorResponse(c: Context, e: unknown) {
  if (e instanceof ApiError) return c.json(e.body(), e.status);
  if (isSteerlabError(e))
    return c.json(
      {
        error: {
          message: e.message,
          type: "invalid_request_error",
          code: e.code,
          param: e.details.field ?? null,
        },
      },
      STATUS[e.code],
    );
  // Details of an unexpected error stay in the server, as in the API.
  return c.json(
    { error: { message: "internal server error", type: "server_error", code: null, param: null } },
    500,
  );
}

const RunQuery = z.object({
  id: z.string().min(1).max(1000),
  budget: z.coerce.number().positive().finite().optional(),
  lambda: z.coerce.number().nonnegative().finite().optional(),
  source: z.enum(["fit", "data"]).optional(),
  /** Half widths of the local fits near r_e = 0 (CurveFitOptions). */
  linearHalfWidth: z.coerce.number().positive().finite().optional(),
  quadraticHalfWidth: z.coerce.number().positive().finite().optional(),
  weighted: z.enum(["0", "1"]).optional(),
});
const NameQuery = z.object({ name: z.string().min(1).max(200) });

function parse<T>(schema: z.ZodType<T>, c: Context): T {
  const r = schema.safeParse(c.req.query());
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new SteerlabError("bad_input", `query parameter ${i.path.join(".")}: ${i.message}`, {
      field: String(i.path[0] ?? ""),
    });
  }
  return r.data;
}

function need(dir: string | undefined, what: string, flag: string): string {
  if (!dir)
    throw new SteerlabError("not_found", `this server has no ${what}`, { hint: `start it with ${flag}` });
  return dir;
}

export function labRoutes(opts: LabOptions): Hono {
  const app = new Hono();
  const webDir = opts.webDir ?? defaultWebDir();
  const pollMs = opts.pollMs ?? 1000;
  let assets: Promise<ModelAssets> | null = null;
  const modelAssets = (c: Context) => {
    const path = need(opts.modelPath, "model for the in-browser playground", "-m MODEL");
    if (!assets) {
      const base = `${c.req.path.slice(0, c.req.path.indexOf("/api/model"))}/api/model`;
      assets = buildModelAssets(path, base);
      assets.catch(() => {
        assets = null; // a failed build is retried by the next request
      });
    }
    return assets;
  };

  app.use("*", async (c, next) => {
    await next();
    // Cross-origin isolation: SharedArrayBuffer, hence onnxruntime-web's WASM threads.
    c.header("Cross-Origin-Opener-Policy", "same-origin");
    c.header("Cross-Origin-Embedder-Policy", "require-corp");
  });
  app.onError((e, c) => errorResponse(c, e));
  if (opts.guard) app.use("/api/*", opts.guard);

  app.get("/api/info", (c) =>
    c.json({
      runs: !!opts.runsDir,
      vectors: !!opts.vectorsDir,
      model: opts.modelPath ? (opts.modelPath.replace(/\/+$/, "").split("/").pop() ?? null) : null,
      nLayers: opts.modelConfig?.nLayers ?? null,
    } satisfies LabInfo),
  );
  app.get("/api/runs", (c) => c.json(opts.runsDir && existsSync(opts.runsDir) ? listRuns(opts.runsDir) : []));
  app.get("/api/run", async (c) => {
    const q = parse(RunQuery, c);
    return c.json(await runView(need(opts.runsDir, "runs directory", "--runs DIR"), q.id, buildOptions(q)));
  });
  app.get("/api/run/events", (c) => {
    const q = parse(RunQuery, c);
    const root = need(opts.runsDir, "runs directory", "--runs DIR");
    runStamp(root, q.id); // a bad id is a 4xx before the stream starts
    return streamSSE(
      c,
      async (stream) => {
        let last = "";
        let beat = 0;
        while (!stream.aborted && !stream.closed) {
          const stamp = runStamp(root, q.id);
          if (stamp !== last) {
            last = stamp;
            await stream.writeSSE({
              event: "run",
              data: JSON.stringify(await runView(root, q.id, buildOptions(q))),
            });
          } else if (++beat * pollMs >= 15_000) {
            beat = 0;
            await stream.writeSSE({ event: "ping", data: "{}" });
          }
          await stream.sleep(pollMs);
        }
      },
      async (e, stream) => {
        // e.g. the run folder was removed while watched: say so on the stream, then end it.
        await stream.writeSSE({ event: "failure", data: JSON.stringify({ error: { message: e.message } }) });
      },
    );
  });

  app.get("/api/vectors", (c) =>
    c.json(opts.vectorsDir ? listVectors(opts.vectorsDir) : { vectors: [], errors: [] }),
  );
  app.get("/api/vector", (c) =>
    c.json(vectorView(need(opts.vectorsDir, "vector directory", "--vectors DIR"), parse(NameQuery, c).name)),
  );
  app.get("/api/vector/file", (c) => {
    const dir = need(opts.vectorsDir, "vector directory", "--vectors DIR");
    const { vector } = loadNamedVector(dir, parse(NameQuery, c).name);
    return c.body(encodeVector(vector) as Uint8Array<ArrayBuffer>, 200, {
      "Content-Type": "application/octet-stream",
    });
  });

  app.get("/api/model", async (c) => c.json((await modelAssets(c)).manifest));
  app.get("/api/model/tokenizer", async (c) => c.json((await modelAssets(c)).tokenizer));
  app.get("/api/model/graph/:graph/:file?", async (c) => {
    const a = await modelAssets(c);
    const g = a.graph(c.req.param("graph"));
    const file = c.req.param("file");
    const bytes = file === undefined ? g?.bytes : g?.files.get(file);
    if (!bytes)
      throw new SteerlabError("not_found", "no such graph or weight file", {
        field: file ?? c.req.param("graph"),
        hint: "use the urls of GET /lab/api/model",
      });
    return c.body(bytes as Uint8Array<ArrayBuffer>, 200, { "Content-Type": "application/octet-stream" });
  });
  app.all("/api/*", (c) =>
    errorResponse(c, new SteerlabError("not_found", `no lab endpoint ${c.req.method} ${c.req.path}`)),
  );

  // The front-end: "/lab" -> "/lab/" (its asset urls are relative), then files of webDir ("" = index.html).
  const sendFile = async (c: Context, path: string) =>
    (await serveStatic({ root: webDir, path })(c, async () => {})) ?? c.notFound();
  app.get("/", async (c) =>
    c.req.path.endsWith("/") ? sendFile(c, "index.html") : c.redirect(`${c.req.path}/`, 301),
  );
  app.get("/:file{.*}", (c) => {
    const file = c.req.param("file") || "index.html";
    // serveStatic's own traversal check does not run when `path` is given: refuse dot segments here.
    if (file.split(/[/\\]/).some((s) => s === ".." || s === "." || s === "")) return c.notFound();
    if (file === "index.html" && !existsSync(join(webDir, file)))
      return errorResponse(
        c,
        new SteerlabError("not_found", "the web lab is not built", {
          file: webDir,
          hint: "run npm run build",
        }),
      );
    return sendFile(c, file);
  });
  return app;
}

/** The query as buildReport's options: the same fits and regime `steerlab report` computes with these flags. */
function buildOptions(q: z.infer<typeof RunQuery>): BuildOptions {
  return {
    fit: {
      ...(q.linearHalfWidth !== undefined ? { linearHalfWidth: q.linearHalfWidth } : {}),
      ...(q.quadraticHalfWidth !== undefined ? { quadraticHalfWidth: q.quadraticHalfWidth } : {}),
    },
    ...(q.weighted === "1" ? { weighted: true } : {}),
    regime: {
      ...(q.budget !== undefined ? { budget: q.budget } : {}),
      ...(q.lambda !== undefined ? { lambda: q.lambda } : {}),
      ...(q.source ? { source: q.source } : {}),
    },
  };
}
