/**
 * Every backend of the forward driver, for tests that must hold on each (test/model/backends.test.ts and the
 * other per-engine suites): the reference, ONNX Runtime with a graph per site, per block, and per span of
 * blocks between hook layers, and ggml (F32 key/value cache; present where its addon is built). Each says which
 * hook points it serves and how close two runs of it must agree (its own tolerance, unchanged from its former
 * suite).
 */
import assert from "node:assert/strict";
import type { ModelConfig } from "../../src/model/config.js";
import type { Engine, HookBinding } from "../../src/model/engine.js";
import { type HookPoint, SITES, type Site } from "../../src/model/hooks.js";
import type { LoadedModel } from "../../src/model/model.js";
import { rng } from "../../src/model/random.js";
import type { Weights } from "../../src/model/weights.js";
import { ReferenceEngine } from "../../src/reference/engine.js";
import { ggmlAvailable } from "../../src/runtime/ggml/addon.js";
import { createGgmlEngine } from "../../src/runtime/ggml/ggml-engine.js";
import { createOrtEngine, spansFor } from "../../src/runtime/ort-engine.js";

export interface BackendCase {
  name: "reference" | "onnxruntime" | "onnxruntime block" | "onnxruntime spans" | "ggml";
  make(config: ModelConfig, weights: Weights): Promise<Engine>;
  fromModel(m: LoadedModel): Promise<Engine>;
  /** Hook sites this backend serves (at some layers). */
  sites: readonly Site[];
  /** Whether it serves this point of a model of this config. */
  serves(config: ModelConfig, point: HookPoint): boolean;
  /** Difference of two results of this backend (max |a - b|, relative to scale 1 for ONNX Runtime). */
  diff(a: Float32Array, b: Float32Array): number;
  /** Largest diff allowed between runs that must agree (cached vs recomputed, batched vs alone). */
  tol: number;
  /**
   * Largest relDiff between the HF folder and the GGUF file of the same weights: 0 (bit-identical) where both
   * reach the engine as the same canonical tensors.
   */
  hfGguf: number;
  /**
   * Largest diff between logits "last" and the last row of logits "all": 0 where both run the same rows. ggml's
   * last block runs its MLP on the last tokens alone when only those go on (as llama.cpp does), so its matmuls
   * see other row counts and round in another order.
   */
  lastVsAll: number;
}

export const BACKENDS: readonly BackendCase[] = [
  {
    name: "reference",
    make: async (c, w) => new ReferenceEngine(c, w),
    fromModel: async (m) => ReferenceEngine.fromModel(m),
    sites: SITES,
    serves: () => true,
    diff: maxDiff,
    tol: 2e-5,
    hfGguf: 0,
    lastVsAll: 0,
  },
  {
    name: "onnxruntime",
    make: (c, w) => createOrtEngine({ config: c, weights: w }, { threads: 1 }),
    fromModel: (m) => createOrtEngine(m, { threads: 1 }),
    sites: SITES,
    serves: () => true,
    diff: relDiff,
    tol: 1e-4,
    hfGguf: 0,
    lastVsAll: 0,
  },
  {
    name: "onnxruntime block",
    make: (c, w) => createOrtEngine({ config: c, weights: w }, { threads: 1, granularity: "block" }),
    fromModel: (m) => createOrtEngine(m, { threads: 1, granularity: "block" }),
    sites: ["resid_pre", "resid_post"],
    serves: (_, p) => p.site === "resid_pre" || p.site === "resid_post",
    diff: relDiff,
    tol: 1e-4,
    hfGguf: 0,
    lastVsAll: 0,
  },
  {
    // Hooks at block 0: spans [0] and [1..L-1] (blocks 1 and 2 are one graph in the 3-block llama).
    name: "onnxruntime spans",
    make: (c, w) =>
      createOrtEngine({ config: c, weights: w }, { threads: 1, granularity: { hookLayers: [0] } }),
    fromModel: (m) => createOrtEngine(m, { threads: 1, granularity: { hookLayers: [0] } }),
    sites: ["resid_pre", "resid_post"],
    serves: (c, p) => {
      const spans = spansFor([0], c.nLayers);
      if (p.site === "resid_pre") return spans.some(([from]) => from === p.layer);
      return p.site === "resid_post" && spans.some(([, to]) => to === p.layer);
    },
    diff: relDiff,
    tol: 1e-4,
    hfGguf: 0,
    lastVsAll: 0,
  },
  ...(ggmlAvailable().ok
    ? [
        {
          name: "ggml",
          make: (c: ModelConfig, w: Weights) =>
            createGgmlEngine({ config: c, weights: w }, { threads: 1, cacheType: "f32" }),
          fromModel: (m: LoadedModel) => createGgmlEngine(m, { threads: 1, cacheType: "f32" }),
          sites: SITES,
          serves: () => true,
          diff: relDiff,
          tol: 1e-4,
          // ggml uses each file's own layout: GGUF llama q/k rows interleaved (rope NORMAL) sum q.k over a head's
          // dims in another order than the HF halves (NEOX). Same values, other f32 rounding (measured 5e-7).
          hfGguf: 2e-6,
          // Measured 1.2e-7 .. 1.6e-7 (relDiff) on the tiny models.
          lastVsAll: 1e-5,
        } satisfies BackendCase,
      ]
    : []),
];

/** The points of a model this backend serves, in forward order. */
export function servedPoints(b: BackendCase, c: ModelConfig): HookPoint[] {
  const out: HookPoint[] = [];
  for (let layer = 0; layer < c.nLayers; layer++)
    for (const site of SITES) if (b.serves(c, { layer, site })) out.push({ layer, site });
  return out;
}

export function randomIds(n: number, vocab: number, seed: number): number[] {
  const u = rng(seed);
  return Array.from({ length: n }, () => Math.floor(u() * vocab));
}

export function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length, "lengths differ");
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** max |a - b| divided by max(1, max |b|): the tolerance is relative to the values' scale. */
export function relDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length, "lengths differ");
  let m = 0;
  let s = 1;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(a[i]! - b[i]!));
    s = Math.max(s, Math.abs(b[i]!));
  }
  return m / s;
}

/** Hooks that copy every point (default: every site of every layer): key "l.site" -> a [B, T, D] copy per call. */
export function recorder(
  c: ModelConfig,
  points: readonly HookPoint[] = Array.from({ length: c.nLayers }, (_, layer) =>
    SITES.map((site) => ({ layer, site })),
  ).flat(),
): { hooks: HookBinding[]; seen: Map<string, Float32Array[]> } {
  const seen = new Map<string, Float32Array[]>();
  const hooks: HookBinding[] = [];
  for (const { layer, site } of points) {
    hooks.push({
      point: { layer, site },
      fn: (ctx) => {
        const k = `${layer}.${site}`;
        if (!seen.has(k)) seen.set(k, []);
        seen.get(k)!.push(Float32Array.from(ctx.hidden));
      },
    });
  }
  return { hooks, seen };
}

/** [B, T, V] logits of row b at token t. */
export function at(logits: Float32Array, T: number, V: number, b: number, t: number): Float32Array {
  return logits.subarray((b * T + t) * V, (b * T + t + 1) * V);
}

/** Left-pad rows of different lengths into one batch. */
export function padded(rows: readonly number[][]): { ids: number[][]; mask: number[][] } {
  const T = Math.max(...rows.map((r) => r.length));
  return {
    ids: rows.map((r) => [...new Array<number>(T - r.length).fill(0), ...r]),
    mask: rows.map((r) => [...new Array<number>(T - r.length).fill(0), ...r.map(() => 1)]),
  };
}

/** Softmax of each of T rows of V logits. */
export function softmaxRows(logits: Float32Array, T: number, V: number): Float32Array[] {
  return Array.from({ length: T }, (_, t) => {
    const row = logits.subarray(t * V, (t + 1) * V);
    const m = Math.max(...row);
    let s = 0;
    for (const x of row) s += Math.exp(x - m);
    return Float32Array.from(row, (x) => Math.exp(x - m) / s);
  });
}

/** Next-token probabilities at every position of one row. */
export async function positionProbs(e: Engine, ids: number[]): Promise<Float32Array[]> {
  const r = await e.forward({ ids: [ids] }, { logits: "all" });
  return softmaxRows(r.logits, r.seq, r.vocab);
}

/** max |a - b| over rows of probabilities. */
export function maxDp(a: Float32Array[], b: Float32Array[]): number {
  let m = 0;
  for (let t = 0; t < a.length; t++)
    for (let i = 0; i < a[t]!.length; i++) m = Math.max(m, Math.abs(a[t]![i]! - b[t]![i]!));
  return m;
}
