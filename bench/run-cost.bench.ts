/**
 * What one ONNX Runtime session.run costs by itself, and how much of an F32 decode step it is (issue 12: decode at
 * 1 thread trails llama.cpp; the engine runs 2 graphs per block at granularity "site", 1 at "block").
 *   1. fixed cost: a graph that only adds a bias to `hidden`, fed like a block graph (hidden, mask, cos/sin, past
 *      K/V with spare slots), and the same graph fed `hidden` only; microseconds per run.
 *   2. decode of a SmolLM-135M-shaped (or GPT-2-small-shaped) F32 model with random weights, 1 token per step
 *      after a 16-token prompt, interleaved: granularity "site" (2 graphs per block), "block" (1), and spans
 *      ({ hookLayers } with 5 middle layers, and with none: the whole model one graph); time inside session.run
 *      and around it.
 *   --model tiny30: 30 blocks of width 64, where a step is nearly all per-run cost.
 * Run: node dist/bench/run-cost.bench.js [--model smollm|tiny30|gpt2|llama] [--threads 1] [--steps 32] [--rounds 3]
 */
import { readFileSync } from "node:fs";
import { type InferenceSession, Tensor } from "onnxruntime-common";
import type { ModelConfig } from "../src/model/config.js";
import { GraphBuilder } from "../src/model/graph/builder.js";
import { randomWeights } from "../src/model/random.js";
import { createOrtEngine, type OrtEngine } from "../src/runtime/ort-engine.js";
import { createSession, sessionOptions } from "../src/runtime/session.js";
import { BENCH_CONFIGS } from "./cases.js";

const SMOLLM: ModelConfig = {
  arch: "llama",
  vocabSize: 49152,
  hiddenSize: 576,
  nLayers: 30,
  nHeads: 9,
  nKvHeads: 3,
  headDim: 64,
  intermediateSize: 1536,
  normEps: 1e-5,
  maxPositions: 2048,
  ropeTheta: 10000,
  ropeScaling: null,
  tiedEmbeddings: true,
  bosTokenId: 1,
  eosTokenIds: [2],
};

/** SmolLM's 30 blocks at toy width: compute is negligible, so a step is the engine's cost per graph run. */
const TINY30: ModelConfig = {
  ...SMOLLM,
  vocabSize: 512,
  hiddenSize: 64,
  nHeads: 4,
  nKvHeads: 2,
  headDim: 16,
  intermediateSize: 128,
};

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : def;
}

function readLoad(): string {
  return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
}

/**
 * Microseconds per run of a bias-add graph: fed like a block graph with new buffers each run (all), with the same
 * buffers every run (reused: as the engine feeds its cache), or with `hidden` only.
 */
async function fixedCost(
  c: ModelConfig,
  threads: number,
  cached: number,
): Promise<{ all: number; reused: number; hiddenOnly: number }> {
  const D = c.hiddenSize;
  const { nKvHeads: KV, headDim: hd } = c;
  const C = Math.max(16, 2 * cached);
  const extra = [
    ["mask", ["batch", 1, "seq", "s"], [1, 1, 1, C + 1]],
    ["cos", ["batch", "seq", 1, hd], [1, 1, 1, hd]],
    ["sin", ["batch", "seq", 1, hd], [1, 1, 1, hd]],
    ["past_k", ["batch", KV, hd, "c"], [1, KV, hd, C]],
    ["past_v", ["batch", KV, "c", hd], [1, KV, C, hd]],
  ] as const;
  const time = async (fedLikeBlock: boolean, reuse = false): Promise<number> => {
    const g = GraphBuilder.create();
    const hidden = g.input("hidden", "float32", ["batch", "seq", D]);
    if (fedLikeBlock) for (const [n, dims] of extra) g.input(n, "float32", dims);
    const bias = g.weight("bias", [D], new Float32Array(D).fill(0.5));
    g.output(g.op("Add", [hidden, bias]), "out", "float32", ["batch", "seq", D]);
    const { bytes, files } = g.encode("tiny", { external: true });
    const s = await createSession(bytes, { ...sessionOptions({ threads }), externalData: files }, "tiny");
    const fresh = () => {
      const f: Record<string, Tensor> = { hidden: new Tensor("float32", new Float32Array(D), [1, 1, D]) };
      if (fedLikeBlock)
        for (const [n, , shape] of extra)
          f[n] = new Tensor("float32", new Float32Array(shape.reduce((a, b) => a * b, 1)), [...shape]);
      return f;
    };
    const kept = fresh();
    const feeds = reuse ? () => kept : fresh;
    for (let i = 0; i < 300; i++) await s.run(feeds());
    const us: number[] = [];
    for (let r = 0; r < 5; r++) {
      const t0 = performance.now();
      for (let i = 0; i < 1000; i++) await s.run(feeds());
      us.push(performance.now() - t0); // ms per 1000 runs = us per run
    }
    countRuns(s); // after timing: the wrapper's own cost stays out of the fixed cost
    await s.release();
    return Math.min(...us);
  };
  return { all: await time(true), reused: await time(true, true), hiddenOnly: await time(false) };
}

/** Runs and time spent inside session.run, counted by wrapping run on the sessions' prototype (once). */
const inRun = { n: 0, ms: 0 };
let wrapped = false;
function countRuns(s: InferenceSession): void {
  if (wrapped) return;
  wrapped = true;
  const proto = Object.getPrototypeOf(s) as { run: InferenceSession["run"] };
  const run0 = proto.run;
  proto.run = async function (this: InferenceSession, ...a: unknown[]) {
    const t0 = performance.now();
    try {
      return await (run0 as (...x: unknown[]) => ReturnType<InferenceSession["run"]>).apply(this, a);
    } finally {
      inRun.ms += performance.now() - t0;
      inRun.n++;
    }
  } as InferenceSession["run"];
}

async function main(): Promise<void> {
  const model = arg("model", "smollm");
  const c = model === "smollm" ? SMOLLM : model === "tiny30" ? TINY30 : BENCH_CONFIGS[model]!;
  const threads = Number(arg("threads", "1"));
  const steps = Number(arg("steps", "32"));
  const rounds = Number(arg("rounds", "3"));
  const say = (s: string) => process.stdout.write(`${s}\n`);
  say(`# ${model}: ${c.nLayers} blocks, D ${c.hiddenSize}, F32, ${threads} thread(s); load ${readLoad()}`);
  const fc = await fixedCost(c, threads, 24);
  say(
    `fixed cost of one session.run (bias-add graph): ${fc.all.toFixed(1)} us fed like a block (new buffers), ${fc.reused.toFixed(1)} us (same buffers), ${fc.hiddenOnly.toFixed(1)} us fed hidden only; load ${readLoad()}`,
  );

  const w = randomWeights(c, 1);
  // Spans: the whole model as one graph, and hooks at 5 middle layers (a sweep steering 5 layers: 7 graphs).
  const mid = Math.floor(c.nLayers / 2) - 2;
  const five = [0, 1, 2, 3, 4].map((i) => mid + i);
  const engines: Record<string, OrtEngine> = {
    site: await createOrtEngine({ config: c, weights: w }, { threads }),
    block: await createOrtEngine({ config: c, weights: w }, { threads, granularity: "block" }),
    "span(5)": await createOrtEngine(
      { config: c, weights: w },
      { threads, granularity: { hookLayers: five } },
    ),
    "span(0)": await createOrtEngine({ config: c, weights: w }, { threads, granularity: { hookLayers: [] } }),
  };
  const prompt = Array.from({ length: 16 }, (_, i) => (i * 7919) % c.vocabSize);
  const next = Array.from({ length: steps }, (_, i) => (i * 104729 + 13) % c.vocabSize);
  for (let r = 0; r < rounds; r++) {
    const msOf: Record<string, number> = {};
    for (const [name, e] of Object.entries(engines)) {
      const cache = e.newCache(1);
      await e.forward({ ids: [prompt] }, { cache });
      inRun.n = 0;
      inRun.ms = 0;
      const t0 = performance.now();
      for (const id of next) await e.forward({ ids: [[id]] }, { cache });
      const ms = (performance.now() - t0) / steps;
      const runs = inRun.n / steps;
      const runMs = inRun.ms / steps;
      msOf[name] = ms;
      say(
        `round ${r + 1} ${name.padEnd(7)}: ${(1000 / ms).toFixed(1)} tok/s, ${ms.toFixed(2)} ms/step, ${runs} runs/step, ` +
          `${runMs.toFixed(2)} ms in run, ${(ms - runMs).toFixed(2)} ms around; fixed cost ~${((runs * fc.all) / 1000).toFixed(2)} ms ` +
          `(${((100 * runs * fc.all) / 1000 / ms).toFixed(1)}%); load ${readLoad()}`,
      );
    }
    const one = msOf["span(0)"]!;
    say(
      `round ${r + 1}: one graph saves ${(msOf.site! - one).toFixed(2)} ms/step against site, ` +
        `${(msOf.block! - one).toFixed(2)} ms/step against block`,
    );
  }
  for (const e of Object.values(engines)) await e.dispose();
}

await main();
