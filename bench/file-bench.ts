/**
 * The engine bench on model files as users have them: random weights of real shapes (TinyLlama-1.1B, Llama-2-7B)
 * written by steerlab's GGUF writer as F32 / Q8_0 / Q4_0 / Q4_K, then opened from the file by steerlab (ONNX
 * Runtime, quantized weights kept quantized, read block by block) and by llama.cpp (node-llama-cpp), each in its
 * own process, interleaved and repeated. Measured: load time, prefill tok/s on a 512-token prompt, decode tok/s
 * after 16 and after 512 tokens, peak and steady RSS above the process base, against the file size.
 * Run (part of engine.bench.ts): npx tsx bench/engine.bench.ts --files tinyllama --dtypes F32,Q8_0,Q4_0,Q4_K
 */
import { existsSync, mkdirSync, statSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { getLlama, type Token } from "node-llama-cpp";
import { byteLevelTokenizerJson } from "../src/io/bpe-train.js";
import { type GgufWriteDtype, saveGgufModel } from "../src/io/gguf-model.js";
import { ggufTokenizerMetadata } from "../src/io/tokenizer.js";
import type { ModelConfig } from "../src/model/config.js";
import type { Engine } from "../src/model/engine.js";
import { generate } from "../src/model/generate.js";
import { openModel } from "../src/model/open.js";
import { gaussianFrom, lazyRandomWeights } from "../src/model/random.js";
import type { GgmlEngine } from "../src/runtime/ggml/ggml-engine.js";
import { OrtEngine } from "../src/runtime/ort-engine.js";
import { steeringHooks } from "../src/steer/apply.js";
import { makeVector } from "../src/steer/vector.js";
import { collect, ids, MiB, measureSpeed, type SpeedPlan, vmKiB } from "./cases.js";

const llamaShape = (o: Partial<ModelConfig>): ModelConfig => ({
  arch: "llama",
  vocabSize: 32000,
  hiddenSize: 2048,
  nLayers: 22,
  nHeads: 32,
  nKvHeads: 4,
  headDim: 64,
  intermediateSize: 5632,
  normEps: 1e-5,
  maxPositions: 2048,
  ropeTheta: 10000,
  ropeScaling: null,
  tiedEmbeddings: false,
  bosTokenId: 1,
  eosTokenIds: [2],
  ...o,
});

export const FILE_SHAPES: Record<string, ModelConfig> = {
  /** A quick check of the harness (about 120 MB as F32). */
  small: llamaShape({ hiddenSize: 512, nLayers: 4, nHeads: 8, nKvHeads: 4, intermediateSize: 1536 }),
  tinyllama: llamaShape({}),
  llama7b: llamaShape({
    hiddenSize: 4096,
    nLayers: 32,
    nHeads: 32,
    nKvHeads: 32,
    headDim: 128,
    intermediateSize: 11008,
  }),
};

/** 512-token prefill, decode after 16 and after 512 tokens; fewer repetitions than the small-model bench. */
export const FILE_PLAN: SpeedPlan = {
  prompt: 512,
  decodePrompt: 16,
  longPrompt: 512,
  steps: 32,
  prefillReps: 2,
  decodeReps: 2,
  longReps: 1,
};

/**
 * 7B shapes: one timed run each and a short warm-up (a 512-token prefill takes tens of seconds there); rounds
 * (--rounds) give the repetitions instead.
 */
const BIG_PLAN: SpeedPlan = { ...FILE_PLAN, steps: 16, prefillReps: 1, decodeReps: 1, warmupPrompt: 16 };

export function filePlan(c: ModelConfig): SpeedPlan {
  return c.hiddenSize >= 4096 ? BIG_PLAN : FILE_PLAN;
}

/** Greedy generation with and without a steering vector (steerlab rows only). */
export interface SteerCheck {
  /** 0-based block whose output (resid_post) is steered: the middle one. */
  layer: number;
  /** r_e on a random unit vector: sqrt(D), about the norm of the residual stream of these weights. */
  coeff: number;
  baseline: number[];
  steered: number[];
  changed: boolean;
  /** Every logit of every generated step, steered and not, was finite. */
  finite: boolean;
}

export interface FileRow {
  shape: string;
  dtype: string;
  backend: string;
  threads: number;
  fileMiB: number;
  /** Bytes of weights steerlab's engine hands to ONNX Runtime (null for llama.cpp). */
  engineMiB: number | null;
  loadS: number;
  prefillTokS: number;
  decodeTokS: number;
  decodeLongTokS: number;
  peakRssMiB: number;
  steadyRssMiB: number;
  baseRssMiB: number;
  /** Load average (1, 5, 15 min) when the case ended: the machine is shared. */
  loadavg: number[];
  steer?: SteerCheck;
}

/**
 * The model generates and steers: 8 greedy tokens after a 16-token prompt, then the same with a seeded random
 * unit vector added at the middle block's output (r_e = sqrt(D)) through the library's steering hooks.
 */
export async function steerCheck(engine: Engine, c: ModelConfig): Promise<SteerCheck> {
  const layer = Math.floor(c.nLayers / 2);
  const g = gaussianFrom(11, 0);
  const v = Float32Array.from({ length: c.hiddenSize }, g);
  const norm = Math.hypot(...v);
  for (let i = 0; i < v.length; i++) v[i] = v[i]! / norm;
  const coeff = Math.sqrt(c.hiddenSize);
  let finite = true;
  const opts = {
    maxNewTokens: 8,
    stopTokens: [],
    onLogits: (e: { logits: Float32Array }) => {
      if (!e.logits.every(Number.isFinite)) finite = false;
    },
  };
  const prompt = ids(16, c.vocabSize, 5);
  const baseline = (await generate(engine, null, prompt, opts)).ids;
  const hooks = steeringHooks(makeVector(new Map([[layer, v]]), { scale: "unit" }), { coeff });
  const steered = (await generate(engine, null, prompt, { ...opts, hooks })).ids;
  const changed = baseline.some((t, i) => steered[i] !== t);
  return { layer, coeff, baseline, steered, changed, finite };
}

/** The GGUF file of a shape and dtype in `dir`, written once (seeded random weights, all dtypes the same). */
export function benchFile(dir: string, shape: string, dtype: GgufWriteDtype): string {
  return join(dir, `${shape}-${dtype}.gguf`);
}

/**
 * Write the missing files of a shape. Weights are generated tensor by tensor as the writer reaches them
 * (lazyRandomWeights), so a 7B file needs one tensor in memory, not 27 GB; every dtype gets the same values.
 */
export function writeBenchFiles(dir: string, shape: string, dtypes: readonly GgufWriteDtype[]): void {
  const missing = dtypes.filter((d) => !existsSync(benchFile(dir, shape, d)));
  if (!missing.length) return;
  mkdirSync(dir, { recursive: true });
  const c = FILE_SHAPES[shape]!;
  const tok = byteLevelTokenizerJson(c.vocabSize);
  for (const dtype of missing) {
    const t0 = performance.now();
    let last = 0;
    saveGgufModel(benchFile(dir, shape, dtype), c, lazyRandomWeights(c, 1), {
      tokenizerMeta: ggufTokenizerMetadata(tok, { bosTokenId: null, eosTokenId: null }),
      dtype,
      onProgress: (e) => {
        if (performance.now() - last < 10_000 && e.done < e.total) return;
        last = performance.now();
        process.stderr.write(`writing ${shape} ${dtype}: tensor ${e.done}/${e.total}\n`);
      },
    });
    const s = (performance.now() - t0) / 1000;
    const peak = vmKiB("VmHWM") / 1024;
    process.stderr.write(
      `wrote ${shape} ${dtype} in ${s.toFixed(0)} s (process peak RSS ${peak.toFixed(0)} MiB)\n`,
    );
  }
}

function row(
  shape: string,
  dtype: string,
  backend: string,
  threads: number,
  file: string,
  engineBytes: number | null,
  loadS: number,
  speed: { prefillTokS: number; decodeTokS: number; decodeLongTokS: number },
  steadyRssMiB: number,
  baseRssMiB: number,
): FileRow {
  return {
    shape,
    dtype,
    backend,
    threads,
    fileMiB: statSync(file).size / MiB,
    engineMiB: engineBytes === null ? null : engineBytes / MiB,
    loadS,
    ...speed,
    peakRssMiB: vmKiB("VmHWM") / 1024,
    steadyRssMiB,
    baseRssMiB,
    loadavg: loadavg(),
  };
}

export async function benchOrtFile(
  dir: string,
  shape: string,
  dtype: string,
  threads: number,
  backend: "onnxruntime" | "ggml" = "onnxruntime",
): Promise<FileRow> {
  const file = benchFile(dir, shape, dtype as GgufWriteDtype);
  collect();
  const base = vmKiB("VmRSS") / 1024;
  const t0 = performance.now();
  // As a user opens it (openModel: ONNX Runtime checks each tensor as its build reads it, ggml checks the mapped
  // bytes natively); ggml with an F32 key/value cache, as the llama.cpp rows below.
  const { model: m, engine: e } = await openModel(file, { backend, threads, cacheType: "f32" });
  const engine = e as OrtEngine | GgmlEngine;
  const loadS = (performance.now() - t0) / 1000;
  collect();
  let cache = engine.newCache(1);
  const speed = await measureSpeed(
    m.config.vocabSize,
    {
      reset: async () => {
        cache = engine.newCache(1);
      },
      prefill: async (p) => {
        await engine.forward({ ids: [p] }, { cache, logits: "last" });
      },
      step: async (id) => {
        await engine.forward({ ids: [[id]] }, { cache });
      },
    },
    filePlan(m.config),
  );
  cache = engine.newCache(1);
  collect();
  const steady = vmKiB("VmRSS") / 1024;
  const steer = await steerCheck(engine, m.config);
  const held = engineBytes(engine);
  await engine.dispose();
  return {
    ...row(shape, dtype, backend, threads, file, held, loadS, speed, steady, base),
    steer,
  };
}

/** Weight bytes the engine uses (ggml: mapped from the file, repacked and copied). */
function engineBytes(e: OrtEngine | GgmlEngine): number {
  if (e instanceof OrtEngine) return e.weightBytes;
  const w = e.stats().weights;
  return w.mapped + w.repacked + w.copied;
}

export async function benchLlamaCppFile(
  dir: string,
  shape: string,
  dtype: string,
  threads: number,
): Promise<FileRow> {
  const file = benchFile(dir, shape, dtype as GgufWriteDtype);
  const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" as never });
  collect();
  const base = vmKiB("VmRSS") / 1024;
  const t0 = performance.now();
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  const plan = filePlan(FILE_SHAPES[shape]!);
  const ctx = await model.createContext({
    contextSize: plan.longPrompt + plan.steps + 16,
    batchSize: plan.prompt,
    flashAttention: false,
    threads: { ideal: threads, min: threads },
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
  });
  const loadS = (performance.now() - t0) / 1000;
  const seq = ctx.getSequence();
  const speed = await measureSpeed(
    FILE_SHAPES[shape]!.vocabSize,
    {
      reset: () => seq.clearHistory(),
      prefill: (p) => seq.evaluateWithoutGeneratingNewTokens(p as Token[]),
      step: async (id) => {
        await seq.controlledEvaluate([[id as Token, { generateNext: { token: true } }]]);
      },
    },
    plan,
  );
  collect();
  const steady = vmKiB("VmRSS") / 1024;
  await ctx.dispose();
  await model.dispose();
  return row(shape, dtype, "llama.cpp", threads, file, null, loadS, speed, steady, base);
}

export function fileTable(rows: FileRow[]): string {
  const head = [
    "model",
    "file",
    "backend",
    "file MiB",
    "engine MiB",
    "load s",
    "prefill tok/s (512)",
    "decode tok/s (@16)",
    "decode tok/s (@512)",
    "peak RSS / file",
    "steady RSS / file",
    "steady RSS / engine",
    "loadavg 1/5 min",
  ];
  const body = rows.map((r) => [
    r.shape,
    r.dtype,
    r.backend,
    r.fileMiB.toFixed(0),
    r.engineMiB === null ? "-" : r.engineMiB.toFixed(0),
    r.loadS.toFixed(1),
    r.prefillTokS.toFixed(1),
    r.decodeTokS.toFixed(2),
    r.decodeLongTokS.toFixed(2),
    ((r.peakRssMiB - r.baseRssMiB) / r.fileMiB).toFixed(2),
    ((r.steadyRssMiB - r.baseRssMiB) / r.fileMiB).toFixed(2),
    r.engineMiB === null ? "-" : ((r.steadyRssMiB - r.baseRssMiB) / r.engineMiB).toFixed(2),
    r.loadavg ? `${r.loadavg[0]!.toFixed(1)} / ${r.loadavg[1]!.toFixed(1)}` : "-",
  ]);
  const width = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((x, i) => x.padEnd(width[i]!)).join(" | ")} |`;
  return [line(head), line(width.map((n) => "-".repeat(n))), ...body.map(line)].join("\n");
}
