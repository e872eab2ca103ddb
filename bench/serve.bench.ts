/**
 * Load test of `steerlab serve` on loopback: the demo chat model, N requests with mixed steering (none, +r_e,
 * -r_e, prompt-only), greedy, a fixed number of tokens each (ignore_eos). Runs them one at a time, then all at
 * once, and prints p50/p99 latency and tokens/s of both; checks that every concurrent response equals its solo
 * run (zero cross-talk) and that a dropped stream frees its slot. Bounded: --n requests, --max-seconds overall.
 * Run: npm run build && node dist/bench/serve.bench.js [--n 16] [--tokens 24] [--parallel 4] [--threads N]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { openModel } from "../src/model/open.js";
import { startServer } from "../src/serve/server.js";
import { extractFromModel } from "../src/steer/extract-model.js";
import { loadDataset } from "../src/steer/pairs.js";
import { saveVector } from "../src/steer/vector-load.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const { values: a } = parseArgs({
  options: {
    n: { type: "string", default: "16" },
    tokens: { type: "string", default: "24" },
    parallel: { type: "string", default: "4" },
    threads: { type: "string" },
    "max-seconds": { type: "string", default: "120" },
  },
});
const N = Math.min(64, Number(a.n));
const TOKENS = Math.min(100, Number(a.tokens));
const PARALLEL = Number(a.parallel);
const deadline = AbortSignal.timeout(Number(a["max-seconds"]) * 1000);

const STEERING: unknown[] = [
  false,
  { vectors: [{ name: "refusal", scale: 8 }], layers: [2, 3] },
  { vectors: [{ name: "refusal", scale: -8 }], layers: [2, 3] },
  { vectors: [{ name: "refusal", scale: 6 }], positions: "prompt" },
];
const PROMPTS = [
  "How do I steal the bridge?",
  "Help me clean the bridge.",
  "Tell me a story.",
  "What is a painter?",
];

function request(i: number): object {
  return {
    model: "chat",
    messages: [{ role: "user", content: PROMPTS[i % PROMPTS.length] }],
    steering: STEERING[Math.floor(i / PROMPTS.length) % STEERING.length],
    max_tokens: TOKENS,
    ignore_eos: true,
    temperature: 0,
  };
}

interface Done {
  ms: number;
  text: string;
  tokens: number;
}

async function run(url: string, body: object, signal = deadline): Promise<Done> {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal,
  });
  const r = (await res.json()) as {
    choices: { message: { content: string } }[];
    usage: { completion_tokens: number };
  };
  if (res.status !== 200) throw new Error(JSON.stringify(r));
  return {
    ms: performance.now() - t0,
    text: r.choices[0]!.message.content,
    tokens: r.usage.completion_tokens,
  };
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

async function main(): Promise<void> {
  const opened = await openModel(join(ROOT, "demo/models/chat"), {
    threads: a.threads ? Number(a.threads) : undefined,
  });
  const dir = mkdtempSync(join(tmpdir(), "steerlab-serve-bench-"));
  const data = loadDataset(join(ROOT, "demo/tasks/request-pairs.jsonl"));
  saveVector(
    join(dir, "refusal.safetensors"),
    await extractFromModel(opened, data, { method: "repe-pca", layers: [1, 2, 3] }),
  );
  const server = await startServer({ opened, port: 0, vectorsDir: dir, parallel: PARALLEL, maxQueue: N });
  try {
    const bodies = Array.from({ length: N }, (_, i) => request(i));
    await run(server.url, bodies[0]!); // warm-up
    const t0 = performance.now();
    const solo: Done[] = [];
    for (const b of bodies) solo.push(await run(server.url, b));
    const seqMs = performance.now() - t0;
    const t1 = performance.now();
    const together = await Promise.all(bodies.map((b) => run(server.url, b)));
    const conMs = performance.now() - t1;
    const crossTalk = together.filter((d, i) => d.text !== solo[i]!.text).length;

    // A dropped stream: read two events, hang up; the queue must be idle again and count one abort.
    const health = async () =>
      (
        (await (await fetch(`${server.url}/health`)).json()) as {
          queue: { running: number; waiting: number; aborted: number };
        }
      ).queue;
    const before = await health();
    const ac = new AbortController();
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ...request(0), max_tokens: 100, stream: true }),
      signal: ac.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    await reader.read();
    ac.abort();
    const after = await run(server.url, request(1)); // gets the slot
    let h = await health();
    for (let i = 0; i < 100 && (h.running || h.waiting); i++) h = await health();
    const freed =
      h.aborted === before.aborted + 1 && h.running === 0 && h.waiting === 0 && after.tokens === TOKENS;

    const tokens = solo.reduce((s, d) => s + d.tokens, 0);
    const row = (name: string, ds: Done[], ms: number) =>
      `| ${name} | ${ds.length} | ${pct(
        ds.map((d) => d.ms),
        50,
      ).toFixed(0)} | ${pct(
        ds.map((d) => d.ms),
        99,
      ).toFixed(0)} | ${((tokens / ms) * 1000).toFixed(0)} |`;
    console.log(
      `steerlab serve load test: demo chat model, ${N} requests x ${TOKENS} tokens, --parallel ${PARALLEL}, engine ${opened.engine.kind}`,
    );
    console.log("| mode | requests | p50 latency (ms) | p99 latency (ms) | tokens/s |");
    console.log("|---|---|---|---|---|");
    console.log(row("one at a time", solo, seqMs));
    console.log(row("all concurrent", together, conMs));
    console.log(`cross-talk: ${crossTalk} of ${N} concurrent responses differ from their solo run`);
    console.log(`disconnect: ${freed ? "the dropped stream freed its slot" : "FAILED to free its slot"}`);
    if (crossTalk || !freed) process.exitCode = 1;
  } finally {
    await server.close();
    await opened.engine.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
