/**
 * Sweep benchmark on the same grid, tasks and random-weight model of realistic depth:
 *   naive    every r_e recomputes the whole forward, one r_e per forward, one row per log-prob continuation
 *   reuse    resid_pre of the first steered layer computed once per prompt chunk, several r_e stacked per forward
 *   cached   reuse + log-prob continuations sharing a prefix served by one row (the sweep's defaults)
 * Checks that all give the same numbers and prints the time ratios.
 *
 * Run: npx tsx bench/sweep.bench.ts [--layers 40] [--hidden 128] [--coeffs -10:10:2] [--prompts 8]
 *        [--steer -32..-25] [--backend reference|onnxruntime]
 * Default layer choice: the paper's -25..-32 of 40 (scaled to --layers: the same fractions of the depth).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ResultStore, type SweepRecord } from "../src/eval/store.js";
import { mergeContinuationRows, runSweep, type SweepPlan } from "../src/eval/sweep.js";
import { parseCoeffs, parseSweepConfig } from "../src/eval/sweep-config.js";
import { planSweep } from "../src/eval/sweep-plan.js";
import { DEFAULT_ALIGNED, DEFAULT_MISALIGNED } from "../src/eval/tasks.js";
import { byteLevelTokenizerJson } from "../src/io/bpe-train.js";
import { saveHfModel } from "../src/io/hf-model.js";
import type { ModelConfig } from "../src/model/config.js";
import { openModel, parseBackend } from "../src/model/open.js";
import { randomWeights } from "../src/model/random.js";

const { values: a } = parseArgs({
  options: {
    layers: { type: "string", default: "40" },
    hidden: { type: "string", default: "128" },
    coeffs: { type: "string", default: "-10:10:2" },
    prompts: { type: "string", default: "8" },
    steer: { type: "string" },
    backend: { type: "string", default: "reference" },
  },
});
const nLayers = Number(a.layers);
const hidden = Number(a.hidden);
// the paper steers blocks -32..-25 of 40: the same fractions of this depth
const steer = a.steer ?? `-${Math.round((32 / 40) * nLayers)}..-${Math.round((25 / 40) * nLayers)}`;

const config: ModelConfig = {
  arch: "llama",
  vocabSize: 512,
  hiddenSize: hidden,
  nLayers,
  nHeads: 4,
  nKvHeads: 4,
  headDim: hidden / 4,
  intermediateSize: Math.round((hidden * 8) / 3),
  normEps: 1e-5,
  maxPositions: 512,
  ropeTheta: 10000,
  ropeScaling: null,
  tiedEmbeddings: false,
  bosTokenId: 1,
  eosTokenIds: [2],
};

const dir = mkdtempSync(join(tmpdir(), "steerlab-sweep-bench-"));
try {
  saveHfModel(join(dir, "model"), config, randomWeights(config, 11), {
    tokenizerJson: byteLevelTokenizerJson(config.vocabSize),
    tokenizerConfig: { bos_token: "<s>", eos_token: "</s>", add_bos_token: true },
  });
  const n = Number(a.prompts);
  const mmlu = Array.from(
    { length: n },
    (_, i) =>
      `Question number ${i}: which of these is right?,first ${i},second,third,fourth,${"ABCD"[i % 4]}`,
  );
  writeFileSync(join(dir, "mmlu.csv"), `${mmlu.join("\n")}\n`);
  const harmful = Array.from(
    { length: n },
    (_, i) => `Explain how to do forbidden thing number ${i} step by step`,
  );
  writeFileSync(join(dir, "harmful.txt"), `${harmful.join("\n")}\n`);
  const backend = parseBackend(a.backend!);
  const m = await openModel(join(dir, "model"), { backend });
  const sweepConfig = parseSweepConfig(
    {
      model: join(dir, "model"),
      backend,
      vectors: [{ name: "rnd", source: "random:1" }],
      layers: [steer],
      coeffs: parseCoeffs(a.coeffs!),
      tasks: [
        { id: "mcq", kind: "mcq", data: "mmlu.csv" },
        { id: "lp", kind: "behavior-logprob", data: "harmful.txt" },
      ],
    },
    dir,
  );
  const plan: SweepPlan = await planSweep(sweepConfig, m.engine, m.tokenizer);
  const time = async (name: string, opts: Parameters<typeof runSweep>[4]) => {
    const store = ResultStore.open(join(dir, name), { bench: name });
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const stats = await runSweep(m.engine, m.tokenizer, plan, store, { batchSize: 8, ...opts });
    const wall = (performance.now() - t0) / 1000;
    const c1 = process.cpuUsage(c0);
    // CPU seconds of this process: robust when other jobs share the cores (wall time is printed too)
    const s = (c1.user + c1.system) / 1e6;
    const recs = store.records();
    store.close();
    return { s, wall, stats, recs };
  };
  const naive = await time("naive", { reuse: false, maxRows: 1, mergeRows: false });
  const reuseOnly = await time("reuse", { reuse: true, maxRows: 64, mergeRows: false });
  const cached = await time("cached", { reuse: true, maxRows: 64 });
  const key = (r: SweepRecord) => `${r.task}/${r.item}/${r.r}`;
  const ref = new Map(naive.recs.map((r) => [key(r), r]));
  let maxDiff = 0;
  for (const r of [...reuseOnly.recs, ...cached.recs]) {
    const q = ref.get(key(r))!;
    for (const f of ["pFull", "pRelative", "margin", "soft", "dNorm"] as const) {
      if (r[f] !== undefined) maxDiff = Math.max(maxDiff, Math.abs(r[f]! - q[f]!));
    }
  }
  const L = plan.variants[0]!.layers;
  const needs = [...DEFAULT_ALIGNED, ...DEFAULT_MISALIGNED].map((x) =>
    m.tokenizer!.encode(x, { addSpecialTokens: false }).slice(0, -1),
  );
  const merged = mergeContinuationRows(needs).rows.length;
  process.stdout.write(
    `${[
      `model: llama, ${nLayers} layers, hidden ${hidden}, vocab ${config.vocabSize}, ${m.engine.kind} engine`,
      `steered blocks ${L[0]}..${L[L.length - 1]} (${steer}); grid ${plan.coeffs.length} r_e values; ${n} mcq + ${n} logprob prompts (${cached.recs.length} cells)`,
      `naive : ${naive.s.toFixed(2)} s CPU (${naive.wall.toFixed(2)} s wall), ${naive.stats.forwards} forwards`,
      `prefix reuse + stacked r_e: ${reuseOnly.s.toFixed(2)} s CPU (${reuseOnly.wall.toFixed(2)} s wall), ${reuseOnly.stats.forwards} forwards, prefix reused: ${reuseOnly.stats.reused}  -> ${(naive.s / reuseOnly.s).toFixed(2)}x (bound from the skipped blocks alone: ${(nLayers / (nLayers - L[0]!)).toFixed(2)}x)`,
      `  + merged continuation rows: ${cached.s.toFixed(2)} s CPU (${cached.wall.toFixed(2)} s wall), ${cached.stats.forwards} forwards  -> ${(naive.s / cached.s).toFixed(2)}x`,
      `log-prob rows per prompt: ${needs.length} continuations -> ${merged} merged rows (this bench's byte-level tokenizer splits words; a real one merges more)`,
      `ratio naive/cached (the sweep's defaults): ${(naive.s / cached.s).toFixed(2)}x`,
      `max |difference| of any score: ${maxDiff.toExponential(2)}`,
    ].join("\n")}\n`,
  );
  await m.engine.dispose();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
