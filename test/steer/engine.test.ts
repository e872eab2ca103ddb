/**
 * Steering through a real forward (the reference engine on a seeded random tiny llama): activations read
 * with activationReader, vectors extracted and applied with steeringHooks. KV-cached steered decoding must
 * equal full recomputation at every step for every position mode; a vector extracted from pairs that differ
 * by a planted token must move the next-token distribution the way that token does.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Batch, Engine, HookBinding } from "../../src/model/engine.js";
import { randomWeights, rng, TINY_CONFIGS } from "../../src/model/random.js";
import { ReferenceEngine } from "../../src/reference/engine.js";
import { createOrtEngine } from "../../src/runtime/ort-engine.js";
import { type PositionSpec, steeringHooks } from "../../src/steer/apply.js";
import { extract } from "../../src/steer/extract.js";
import type { LayerData } from "../../src/steer/methods/method.js";
import { activationReader } from "../../src/steer/read.js";
import { vectorFromExtraction } from "../../src/steer/vector.js";

const config = TINY_CONFIGS.llama!;
const reference = new ReferenceEngine(config, randomWeights(config, 3));
const engine = reference;
const V = config.vocabSize;
const A = 50; // the planted token of positive strings
const B = 60; // ... and of negative ones

/** Left-pad rows of different lengths into one batch. */
function padded(rows: number[][]): Batch {
  const T = Math.max(...rows.map((r) => r.length));
  return {
    ids: rows.map((r) => [...new Array(T - r.length).fill(0), ...r]),
    mask: rows.map((r) => [...new Array(T - r.length).fill(0), ...r.map(() => 1)]),
  };
}

function prefixes(n: number, seed: number): number[][] {
  const u = rng(seed);
  return Array.from({ length: n }, () =>
    Array.from({ length: 3 + Math.floor(u() * 5) }, () => 3 + Math.floor(u() * (V - 3))),
  );
}

async function lastLogits(rows: number[][], hooks: HookBinding[] = []): Promise<Float32Array> {
  const r = await engine.forward(padded(rows), { hooks, logits: "last" });
  return r.logits; // [B, 1, V]
}

function logSoftmaxRows(x: Float32Array, n: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let b = 0; b < n; b++) {
    const row = x.subarray(b * V, (b + 1) * V);
    const m = Math.max(...row);
    let s = 0;
    for (const t of row) s += Math.exp(t - m);
    for (let j = 0; j < V; j++) out[b * V + j] = row[j]! - m - Math.log(s);
  }
  return out;
}

describe("steering through the reference engine", () => {
  it("extracts a planted-token direction and shifts the next-token distribution towards it", async () => {
    const pre = prefixes(24, 11);
    const reader = activationReader([0, 1, 2], "resid_post", { kind: "last" });
    for (const planted of [A, B]) {
      await engine.forward(padded(pre.map((p) => [...p, planted])), {
        hooks: reader.hooks,
        logits: "none",
        stopAfterLayer: reader.maxLayer,
      });
    }
    const rows = reader.take();
    const layers = new Map<number, LayerData>();
    for (const [l, r] of rows) {
      const half = (r.n / 2) * r.dim;
      layers.set(l, {
        kind: "pairs",
        positive: { data: r.data.subarray(0, half), n: r.n / 2, dim: r.dim },
        negative: { data: r.data.subarray(half), n: r.n / 2, dim: r.dim },
      });
    }
    // the target: how the next-token log-probabilities of A-strings differ from those of B-strings
    const lpA = logSoftmaxRows(await lastLogits(pre.map((p) => [...p, A])), pre.length);
    const lpB = logSoftmaxRows(await lastLogits(pre.map((p) => [...p, B])), pre.length);
    const target = new Float64Array(V);
    for (let b = 0; b < pre.length; b++)
      for (let j = 0; j < V; j++) target[j]! += (lpA[b * V + j]! - lpB[b * V + j]!) / pre.length;
    // held-out prompts ending in a neutral token; shift of their log-probs projected on the target
    const test = prefixes(8, 99).map((p) => [...p, 70]);
    const base = logSoftmaxRows(await lastLogits(test), test.length);
    for (const method of ["mean-diff", "repe-pca"]) {
      const r = extract(method, layers, { folds: 3 });
      for (const d of r.diagnostics.values())
        assert.ok(d.trainAccuracy === 1, `${method}: layer ${d.layer} train accuracy ${d.trainAccuracy}`);
      const v = vectorFromExtraction(r, { model: config, readPosition: "last" });
      const shift = async (c: number) => {
        const lp = logSoftmaxRows(
          await lastLogits(test, steeringHooks(v, { coeff: c, layers: [1, 2] })),
          test.length,
        );
        let s = 0;
        for (let b = 0; b < test.length; b++)
          for (let j = 0; j < V; j++) s += (lp[b * V + j]! - base[b * V + j]!) * target[j]!;
        return s / test.length;
      };
      const scale = r.diagnostics.get(1)!.meanDiffNorm;
      const plus = await shift(scale);
      const minus = await shift(-scale);
      assert.ok(
        plus > 0 && minus < 0,
        `${method}: projection on the planted shift ${plus} (+c), ${minus} (-c)`,
      );
      assert.equal(await shift(0), 0, "coefficient 0 is no steering");
    }
  });

  const modes: [string, PositionSpec][] = [
    ["all", "all"],
    ["prompt", { mode: "prompt", promptLength: [4, 6] }],
    ["generated", { mode: "generated", promptLength: [4, 6] }],
    ["after marker", { mode: "after", index: [1, 3] }],
    ["first 3", { mode: "first", k: 3 }],
    ["last 2", { mode: "last", k: 2, promptLength: [4, 6] }],
    ["window 2..7", { mode: "window", start: 2, end: 7 }],
  ];
  const u = rng(4);
  const dirs = new Map(
    [0, 1, 2].map((l) => [l, Float32Array.from({ length: config.hiddenSize }, () => u() - 0.5)]),
  );
  const vec = vectorFromExtraction(
    { method: "manual", directions: dirs, diagnostics: new Map(), info: new Map(), suggestedLayers: [] },
    { model: config },
  );

  // Both engines: the ONNX Runtime one (its own cache and hook dispatch) must keep the same invariant.
  const ort = createOrtEngine({ config, weights: randomWeights(config, 3) }, { threads: 1 });
  for (const [name, positions] of modes)
    for (const kind of ["reference", "onnxruntime"] as const) {
      it(`${name} (${kind}): KV-cached steered decoding equals full recomputation at every step`, async () => {
        const engine: Engine = kind === "reference" ? reference : await ort;
        const prompts = [
          [5, 9, 13, 17],
          [6, 10, 14, 18, 22, 26],
        ];
        const hooks = steeringHooks(vec, { coeff: 3, positions, layers: "all", nLayers: config.nLayers });
        const cache = engine.newCache(2);
        let out = await engine.forward(padded(prompts), { hooks, cache, logits: "last" });
        const seqs = prompts.map((p) => [...p]);
        for (let step = 0; step < 5; step++) {
          const full = await engine.forward(padded(seqs), { hooks, logits: "last" });
          for (let k = 0; k < out.logits.length; k++) {
            assert.ok(
              Math.abs(out.logits[k]! - full.logits[k]!) < 1e-4,
              `step ${step}: cached ${out.logits[k]} vs full ${full.logits[k]} at ${k}`,
            );
          }
          const next = [0, 1].map((b) => {
            const row = out.logits.subarray(b * V, (b + 1) * V);
            return row.indexOf(Math.max(...row));
          });
          for (const [b, t] of next.entries()) seqs[b]!.push(t);
          out = await engine.forward({ ids: next.map((t) => [t]) }, { hooks, cache, logits: "last" });
        }
        // and steering changed something (else the comparison proves nothing)
        const plain = await engine.forward(padded(seqs), { logits: "all" });
        const steered = await engine.forward(padded(seqs), { hooks, logits: "all" });
        assert.ok(
          plain.logits.some((x, k) => Math.abs(x - steered.logits[k]!) > 1e-3),
          "steering had an effect",
        );
      });
    }
});

describe("hook dispatch is the same on both engines", () => {
  const ort = createOrtEngine({ config, weights: randomWeights(config, 3) }, { threads: 1 });
  const batch = { ids: [[5, 9, 13, 17]] };
  for (const kind of ["reference", "onnxruntime"] as const) {
    const get = async (): Promise<Engine> => (kind === "reference" ? reference : await ort);

    it(`${kind}: a hook on an unknown site is an error`, async () => {
      const e = await get();
      const hooks = [{ point: { layer: 0, site: "resid_mid" as never }, fn: () => {} }];
      await assert.rejects(e.forward(batch, { hooks }), /unknown hook site/);
    });

    it(`${kind}: a hook that replaces its buffer is an error`, async () => {
      const e = await get();
      const hooks: HookBinding[] = [
        {
          point: { layer: 1, site: "resid_post" },
          fn: (ctx) => {
            ctx.hidden = new Float32Array(ctx.hidden.length);
          },
        },
      ];
      await assert.rejects(e.forward(batch, { hooks }), /replaced or resized its buffer/);
    });

    it(`${kind}: every hook gets its own positions (one hook's edits do not reach the next)`, async () => {
      const e = await get();
      const seen: number[][] = [];
      const hooks: HookBinding[] = [0, 1].map(() => ({
        point: { layer: 1, site: "resid_post" },
        fn: (ctx) => {
          seen.push([...ctx.positions]);
          ctx.positions.fill(-1);
        },
      }));
      await e.forward(batch, { hooks });
      assert.deepEqual(seen, [
        [0, 1, 2, 3],
        [0, 1, 2, 3],
      ]);
    });
  }
});
