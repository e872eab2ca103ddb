/**
 * The lab's HTTP surface without a browser (Hono's app.request): what each endpoint answers, that a run's
 * report is exactly `steerlab report`'s, that the graphs are the engine builder's bytes, and that bad input
 * (traversal, bad numbers, unknown names, a GGUF model for the browser) gets a 4xx/501 JSON error in OpenAI's
 * shape while nothing outside the configured folders is served.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Hono } from "hono";
import { demoConfig } from "../../src/cli/commands/demo.js";
import { ResultStore, type SweepRecord } from "../../src/eval/store.js";
import { reportOfRun } from "../../src/eval/sweep-plan.js";
import { attnGraph, headGraph, weightFn } from "../../src/model/graph/graphs.js";
import { loadModel } from "../../src/model/load.js";
import { buildReport } from "../../src/report/build.js";
import { defaultWebDir, labRoutes } from "../../src/serve/lab/routes.js";
import type { ModelManifest, RunView } from "../../src/serve/lab/types.js";

const chat = demoConfig().models.find((m) => m.name === "chat")!.path;
let dir: string;
let app: Hono;

function record(item: number, r: number, score: number): SweepRecord {
  return {
    task: "refusal",
    variant: "v@1..3",
    item,
    r,
    kind: "behavior-logprob",
    score,
    margin: score,
    soft: score,
  };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "steerlab-lab-routes-"));
  const run = join(dir, "runs", "group", "one");
  const store = ResultStore.open(run, {
    model: "/models/m",
    backend: "onnxruntime",
    vectors: [{ name: "v" }],
    coeffs: [-2, 0, 2],
    tasks: [],
  });
  store.append([
    record(0, -2, -1),
    record(1, -2, -1),
    record(0, 0, 1),
    record(1, 0, -1),
    record(0, 2, 1),
    record(1, 2, 1),
  ]);
  store.close();
  mkdirSync(join(dir, "vectors"));
  app = new Hono();
  app.route(
    "/lab",
    labRoutes({ runsDir: join(dir, "runs"), vectorsDir: join(dir, "vectors"), modelPath: chat }),
  );
});
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function json(path: string, status = 200): Promise<Record<string, unknown>> {
  const r = await app.request(path);
  assert.equal(r.status, status, `${path}: ${r.status}`);
  assert.equal(r.headers.get("cross-origin-embedder-policy"), "require-corp");
  assert.equal(r.headers.get("cross-origin-opener-policy"), "same-origin");
  return (await r.json()) as Record<string, unknown>;
}

function apiError(body: Record<string, unknown>): { message: string; code: string; type: string } {
  const e = body.error as { message: string; code: string; type: string };
  assert.equal(typeof e.message, "string");
  return e;
}

test("runs are found below the runs directory and a run's report is steerlab report's", async () => {
  const runs = (await json("/lab/api/runs")) as unknown as {
    id: string;
    records: number;
    coeffs: number[];
  }[];
  assert.deepEqual(
    runs.map((r) => [r.id, r.records, r.coeffs]),
    [["group/one", 6, [-2, 0, 2]]],
  );
  const view = (await json("/lab/api/run?id=group/one&budget=0.05&lambda=2")) as unknown as RunView;
  const want = buildReport(reportOfRun(join(dir, "runs", "group", "one")), {
    fit: {},
    regime: { budget: 0.05, lambda: 2 },
  });
  assert.deepEqual(view.report, JSON.parse(JSON.stringify(want)));
  assert.equal(view.progress.records, 6);
  // B at r = 0 is (1 - 1) / 2: the aggregate of the two stored scores.
  assert.equal(view.report.tasks.find((t) => t.id === "refusal")!.points.find((p) => p.r === 0)!.mean, 0);
});

test("bad run queries are 4xx errors in OpenAI's shape", async () => {
  for (const [q, status, code] of [
    ["id=../../etc", 400, "bad_input"],
    ["id=group/..%2F..%2Fetc", 400, "bad_input"],
    ["id=group", 404, "not_found"],
    ["id=nope", 404, "not_found"],
    ["id=group/one&budget=-1", 400, "bad_input"],
    ["id=group/one&lambda=abc", 400, "bad_input"],
    ["id=group/one&source=maybe", 400, "bad_input"],
    ["budget=1", 400, "bad_input"],
  ] as const) {
    const e = apiError(await json(`/lab/api/run?${q}`, status));
    assert.equal(e.code, code, q);
  }
  // The live stream checks its id before it starts.
  assert.equal(apiError(await json("/lab/api/run/events?id=../x", 400)).code, "bad_input");
  assert.equal(apiError(await json("/lab/api/nothing", 404)).code, "not_found");
});

test("vector names: traversal is refused and an unknown name lists the known ones", async () => {
  assert.equal(apiError(await json("/lab/api/vector?name=../../etc/passwd", 400)).code, "bad_input");
  assert.equal(apiError(await json("/lab/api/vector/file?name=.hidden", 400)).code, "bad_input");
  assert.equal(apiError(await json("/lab/api/vector?name=nothing", 404)).code, "not_found");
  assert.deepEqual(await json("/lab/api/vectors"), { vectors: [], errors: [] });
});

test("the model's graphs are the engine builder's bytes, weights as external files", async () => {
  const m = (await json("/lab/api/model")) as unknown as ModelManifest;
  const lm = await loadModel(chat);
  const c = lm.config;
  assert.equal(m.config.nLayers, c.nLayers);
  assert.deepEqual(
    m.graphs.map((g) => g.name),
    [...Array(c.nLayers).keys()].flatMap((l) => [`attn.${l}`, `mlp.${l}`]).concat("head"),
  );
  const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
  const w = weightFn(lm.weights);
  for (const [name, built] of [
    ["attn.1", attnGraph(c, w, 1)],
    ["head", headGraph(c, w)],
  ] as const) {
    const want = built.builder.encode(name, { external: true });
    const g = m.graphs.find((x) => x.name === name)!;
    const got = new Uint8Array(await (await app.request(g.url)).arrayBuffer());
    assert.equal(sha(got), sha(want.bytes), name);
    for (const f of want.files) {
      const url = g.files.find((x) => x.path === f.path)!.url;
      const data = new Uint8Array(await (await app.request(url)).arrayBuffer());
      assert.equal(sha(data), sha(f.data), `${name} ${f.path}`);
    }
  }
  assert.equal(apiError(await json("/lab/api/model/graph/nope", 404)).code, "not_found");
  const tok = await json("/lab/api/model/tokenizer");
  assert.ok((tok.json as { model?: unknown }).model, "tokenizer.json content");
});

test("in-browser mode needs a Hugging Face folder; a lab without a model says how to give it one", async () => {
  const gguf = new Hono();
  gguf.route("/lab", labRoutes({ modelPath: join(dir, "model.gguf") }));
  const r = await gguf.request("/lab/api/model");
  assert.equal(r.status, 501);
  assert.match(apiError((await r.json()) as Record<string, unknown>).message, /Hugging Face model folder/);
  const none = new Hono();
  none.route("/lab", labRoutes({}));
  const n = await none.request("/lab/api/model");
  assert.equal(n.status, 404);
  assert.match(apiError((await n.json()) as Record<string, unknown>).message, /-m MODEL/);
  assert.deepEqual(await (await none.request("/lab/api/runs")).json(), []);
});

test("the front-end is served from the built folder and nothing outside it", {
  skip: !existsSync(join(defaultWebDir(), "index.html")) && "web lab not built",
}, async () => {
  const redirect = await app.request("/lab");
  assert.equal(redirect.status, 301);
  assert.equal(redirect.headers.get("location"), "/lab/");
  const index = await app.request("/lab/");
  assert.equal(index.status, 200);
  assert.equal(index.headers.get("cross-origin-opener-policy"), "same-origin");
  assert.match(await index.text(), /<div id="app">/);
  for (const p of [
    "/lab/../package.json",
    "/lab/%2e%2e/package.json",
    "/lab/..%2fpackage.json",
    "/lab/assets/../../src/index.js",
  ]) {
    const r = await app.request(p);
    assert.notEqual(r.status, 200, p);
  }
});

test("with a guard (the server's API-key check) the data endpoints need the key, the page does not", async () => {
  const { createApp } = await import("../../src/serve/app.js");
  const { openModel } = await import("../../src/model/open.js");
  const opened = await openModel(chat, { threads: 1 });
  try {
    const served = createApp({
      opened,
      apiKey: "k1",
      extraRoutes: (a, ctx) =>
        a.route("/lab", labRoutes({ runsDir: join(dir, "runs"), guard: ctx.requireKey })),
    });
    const no = await served.request("/lab/api/runs");
    assert.equal(no.status, 401);
    assert.equal(((await no.json()) as { error: { code: string } }).error.code, "invalid_api_key");
    const wrong = await served.request("/lab/api/run/events?id=group/one", {
      headers: { authorization: "Bearer k2" },
    });
    assert.equal(wrong.status, 401);
    const yes = await served.request("/lab/api/runs", { headers: { authorization: "Bearer k1" } });
    assert.equal(yes.status, 200);
    assert.equal(((await yes.json()) as unknown[]).length, 1);
    if (existsSync(join(defaultWebDir(), "index.html")))
      assert.equal((await served.request("/lab/")).status, 200);
  } finally {
    await opened.engine.dispose();
  }
});
