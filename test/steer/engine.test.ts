/**
 * Steering through a real forward (the reference engine on a seeded random tiny llama): activations read
 * with activationReader, vectors extracted and applied with steeringHooks: a vector extracted from pairs that
 * differ by a planted token must move the next-token distribution the way that token does.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Batch, HookBinding } from "../../src/model/engine.js";
import { randomWeights, rng, TINY_CONFIGS } from "../../src/model/random.js";
import { ReferenceEngine } from "../../src/reference/engine.js";
import { steeringHooks } from "../../src/steer/apply.js";
import { extract } from "../../src/steer/extract.js";
import type { LayerData } from "../../src/steer/methods/method.js";
import { activationReader } from "../../src/steer/read.js";
import { vectorFromExtraction } from "../../src/steer/vector.js";

const config = TINY_CONFIGS.llama!;
const engine = new ReferenceEngine(config, randomWeights(config, 3));
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
});

// KV-cached steered decoding = full recomputation for every position mode, and the hook dispatch rules, run on
// every backend in test/model/backends.test.ts.
