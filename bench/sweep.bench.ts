/**
 * Sweep benchmark on the same grid, tasks and random-weight model of realistic depth:
 *   naive    every r_e recomputes the whole forward, one r_e per forward, one row per log-prob continuation
 *   reuse    resid_pre of the first steered layer computed once per prompt chunk, several r_e stacked per forward
 *   cached   reuse + log-prob continuations sharing a prefix served by one row (the sweep's defaults)
 * Then a few-shot MCQ task (--shots solved examples before every question, 0 skips it):
 *   naive    as above
 *   reuse    resid_pre of the first steered layer once per chunk, stacked r_e (no shared prompt prefix)
 *   cached   the few-shot prefix run once per r_e and its cache forked to every question (the sweep's defaults)
 * Checks that all give the same numbers and prints the time ratios.
 *
 * Run: npx tsx bench/sweep.bench.ts [--layers 40] [--hidden 128] [--coeffs -10:10:2] [--prompts 8]
 *        [--steer -32..-25] [--backend reference|onnxruntime] [--shots 5] [--few-only]
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
    shots: { type: "string", default: "5" },
    "few-only": { type: "boolean", default: false },
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
  maxPositions: 2048,
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
  const time = async (name: string, opts: Parameters<typeof runSweep>[4], p: SweepPlan = plan) => {
    const store = ResultStore.open(join(dir, name), { bench: name });
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const stats = await runSweep(m.engine, m.tokenizer, p, store, { batchSize: 8, ...opts });
    const wall = (performance.now() - t0) / 1000;
    const c1 = process.cpuUsage(c0);
    // CPU seconds of this process: robust when other jobs share the cores (wall time is printed too)
    const s = (c1.user + c1.system) / 1e6;
    const recs = store.records();
    store.close();
    return { s, wall, stats, recs };
  };
  const key = (r: SweepRecord) => `${r.task}/${r.item}/${r.r}`;
  /** Largest |difference| of any score between `runs` and `base`, cell by cell (dNorm relative to its size). */
  const maxDiffOf = (base: readonly SweepRecord[], runs: readonly SweepRecord[]) => {
    const ref = new Map(base.map((r) => [key(r), r]));
    let d = 0;
    for (const r of runs) {
      const q = ref.get(key(r))!;
      for (const f of ["pFull", "pRelative", "margin", "soft", "dNorm"] as const) {
        if (r[f] !== undefined)
          d = Math.max(d, Math.abs(r[f]! - q[f]!) / (f === "dNorm" ? Math.max(1, Math.abs(q[f]!)) : 1));
      }
    }
    return d;
  };
  if (!a["few-only"]) {
    const naive = await time("naive", { reuse: false, maxRows: 1, mergeRows: false });
    const reuseOnly = await time("reuse", { reuse: true, maxRows: 64, mergeRows: false });
    const cached = await time("cached", { reuse: true, maxRows: 64 });
    const maxDiff = maxDiffOf(naive.recs, [...reuseOnly.recs, ...cached.recs]);
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
  }

  const shots = Number(a.shots);
  if (shots > 0) {
    // Few-shot MCQ: every question of the task follows the same `shots` solved examples (file rows 0..shots-1).
    const few = Array.from(
      { length: n + shots },
      (_, i) =>
        `Question number ${i}: which of these is right?${" really".repeat(i % 3)},first ${i},second,third,fourth,${"ABCD"[i % 4]}`,
    );
    writeFileSync(join(dir, "few.csv"), `${few.join("\n")}\n`);
    const fewPlan = await planSweep(
      parseSweepConfig(
        {
          model: join(dir, "model"),
          backend,
          vectors: [{ name: "rnd", source: "random:1" }],
          layers: [steer],
          coeffs: parseCoeffs(a.coeffs!),
          tasks: [{ id: "few", kind: "mcq", data: "few.csv", shots }],
        },
        dir,
      ),
      m.engine,
      m.tokenizer,
    );
    const lens = fewPlan.tasks[0]!.items.map((it) => m.tokenizer!.encode(it.prompt).length);
    const fNaive = await time("few-naive", { reuse: false, maxRows: 1 }, fewPlan);
    const fReuse = await time("few-reuse", { reuse: true, maxRows: 64, sharePrefix: false }, fewPlan);
    const fCached = await time("few-cached", { reuse: true, maxRows: 64 }, fewPlan);
    const fDiff = maxDiffOf(fNaive.recs, [...fReuse.recs, ...fCached.recs]);
    process.stdout.write(
      `${[
        ``,
        `few-shot mcq: ${shots} shots, ${n} questions of ${Math.min(...lens)}..${Math.max(...lens)} tokens (batch 8), ${fewPlan.coeffs.length} r_e values`,
        `naive : ${fNaive.s.toFixed(2)} s CPU (${fNaive.wall.toFixed(2)} s wall), ${fNaive.stats.forwards} forwards`,
        `prefix reuse + stacked r_e: ${fReuse.s.toFixed(2)} s CPU (${fReuse.wall.toFixed(2)} s wall), ${fReuse.stats.forwards} forwards  -> ${(fNaive.s / fReuse.s).toFixed(2)}x`,
        `shared few-shot prefix (once per r_e, forked): ${fCached.s.toFixed(2)} s CPU (${fCached.wall.toFixed(2)} s wall), ${fCached.stats.forwards} forwards, used: ${fCached.stats.sharedPrefix}  -> ${(fNaive.s / fCached.s).toFixed(2)}x`,
        `ratio naive/cached, few-shot (the sweep's defaults): ${(fNaive.s / fCached.s).toFixed(2)}x CPU, ${(fNaive.wall / fCached.wall).toFixed(2)}x wall`,
        `max |difference| of any score (dNorm relative): ${fDiff.toExponential(2)}`,
      ].join("\n")}\n`,
    );
  }
  await m.engine.dispose();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
