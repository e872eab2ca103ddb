import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isSteerlabError } from "../../src/errors.js";
import type { ModelConfig } from "../../src/model/config.js";
import type { HookBinding } from "../../src/model/engine.js";
import { SITES, type Site } from "../../src/model/hooks.js";
import { randomWeights, rng, TINY_CONFIGS } from "../../src/model/random.js";
import { ReferenceEngine } from "../../src/reference/engine.js";

function randomIds(n: number, vocab: number, seed: number): number[] {
  const u = rng(seed);
  return Array.from({ length: n }, () => Math.floor(u() * vocab));
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Hooks that copy every site of every layer: key "l.site" -> list of [B, T, D] copies, one per call. */
function recorder(c: ModelConfig): { hooks: HookBinding[]; seen: Map<string, Float32Array[]> } {
  const seen = new Map<string, Float32Array[]>();
  const hooks: HookBinding[] = [];
  for (let layer = 0; layer < c.nLayers; layer++) {
    for (const site of SITES) {
      hooks.push({
        point: { layer, site },
        fn: (ctx) => {
          const k = `${layer}.${site}`;
          if (!seen.has(k)) seen.set(k, []);
          seen.get(k)!.push(Float32Array.from(ctx.hidden));
        },
      });
    }
  }
  return { hooks, seen };
}

/** Concatenate per-call [B, Ti, D] chunks along T into [B, sum Ti, D]. */
function concatT(chunks: Float32Array[], B: number, D: number): Float32Array {
  const Ts = chunks.map((c) => c.length / (B * D));
  const T = Ts.reduce((a, b) => a + b, 0);
  const out = new Float32Array(B * T * D);
  let t0 = 0;
  chunks.forEach((c, i) => {
    const Ti = Ts[i]!;
    for (let b = 0; b < B; b++) out.set(c.subarray(b * Ti * D, (b + 1) * Ti * D), (b * T + t0) * D);
    t0 += Ti;
  });
  return out;
}

const TOL = 2e-5;

for (const [name, c] of Object.entries(TINY_CONFIGS)) {
  describe(`reference forward: ${name}`, () => {
    const engine = new ReferenceEngine(c, randomWeights(c, 7));
    const D = c.hiddenSize;
    const V = c.vocabSize;
    // Row 0: 10 real tokens. Row 1: 3 padding + 7 real tokens.
    const T = 10;
    const row0 = randomIds(T, V, 11);
    const row1 = [0, 0, 0, ...randomIds(T - 3, V, 12)];
    const mask = [Array(T).fill(1), [0, 0, 0, ...Array(T - 3).fill(1)]];

    test("logits are not near-uniform (the test model can tell engines apart)", async () => {
      const r = await engine.forward({ ids: [row0] }, { logits: "last" });
      let s = 0;
      for (const v of r.logits) s += v * v;
      assert.ok(Math.sqrt(s / V) > 1, `logit rms ${Math.sqrt(s / V)}`);
    });

    test("KV-cached decoding equals full recomputation (logits and every hook site)", async () => {
      const full = recorder(c);
      const ref = await engine.forward({ ids: [row0, row1], mask }, { logits: "all", hooks: full.hooks });

      const inc = recorder(c);
      const cache = engine.newCache(2);
      const splits = [4, 3, 1, 1, 1];
      const logits: Float32Array[] = [];
      let t0 = 0;
      for (const n of splits) {
        const ids = [row0.slice(t0, t0 + n), row1.slice(t0, t0 + n)];
        const m = mask.map((r) => r.slice(t0, t0 + n));
        const r = await engine.forward({ ids, mask: m }, { logits: "all", hooks: inc.hooks, cache });
        logits.push(r.logits);
        t0 += n;
      }
      assert.equal(cache.length, T);
      assert.ok(maxDiff(concatT(logits, 2, V), ref.logits) < TOL);
      for (const [k, chunks] of inc.seen) {
        const whole = full.seen.get(k)![0]!;
        // Padded positions carry no meaning; compare real tokens only.
        const got = concatT(chunks, 2, D);
        for (let b = 0; b < 2; b++) {
          for (let t = 0; t < T; t++) {
            if (mask[b]![t] === 0) continue;
            const o = (b * T + t) * D;
            const d = maxDiff(got.subarray(o, o + D), whole.subarray(o, o + D));
            assert.ok(d < TOL, `${k} b${b} t${t}: ${d}`);
          }
        }
      }
    });

    test("left-padded batch rows equal the same rows run alone", async () => {
      const both = await engine.forward({ ids: [row0, row1], mask }, { logits: "last" });
      const a = await engine.forward({ ids: [row0] }, { logits: "last" });
      const b = await engine.forward({ ids: [row1.slice(3)] }, { logits: "last" });
      assert.ok(maxDiff(both.logits.subarray(0, V), a.logits) < TOL);
      assert.ok(maxDiff(both.logits.subarray(V), b.logits) < TOL);
    });

    test("hook positions count real tokens and continue across cached calls", async () => {
      const cache = engine.newCache(2);
      let pos: Int32Array | null = null;
      const hooks: HookBinding[] = [
        { point: { layer: 0, site: "resid_pre" }, fn: (x) => (pos = Int32Array.from(x.positions)) },
      ];
      await engine.forward(
        { ids: [row0.slice(0, 5), row1.slice(0, 5)], mask: mask.map((r) => r.slice(0, 5)) },
        { cache, hooks },
      );
      assert.deepEqual([...pos!], [0, 1, 2, 3, 4, -1, -1, -1, 0, 1]);
      await engine.forward({ ids: [[row0[5]!], [row1[5]!]] }, { cache, hooks });
      assert.deepEqual([...pos!], [5, 2]);
    });

    test("writing r at resid_post[l] leaves layers <= l alone and equals adding r to the input of block l+1", async () => {
      const l = 0;
      const u = rng(5);
      const r = Float32Array.from({ length: D }, () => u() * 2 - 1);
      const add = (ctx: { hidden: Float32Array }) => {
        for (let i = 0; i < ctx.hidden.length; i++) ctx.hidden[i] = ctx.hidden[i]! + r[i % D]!;
      };
      const base = recorder(c);
      const baseOut = await engine.forward({ ids: [row0] }, { logits: "all", hooks: base.hooks });
      const rec1 = recorder(c);
      // The recorder's resid_post[l] hook runs before the write (hooks run in the order given).
      const out1 = await engine.forward(
        { ids: [row0] },
        { logits: "all", hooks: [...rec1.hooks, { point: { layer: l, site: "resid_post" }, fn: add }] },
      );
      const rec2 = recorder(c);
      const out2 = await engine.forward(
        { ids: [row0] },
        { logits: "all", hooks: [{ point: { layer: l + 1, site: "resid_pre" }, fn: add }, ...rec2.hooks] },
      );
      for (let layer = 0; layer <= l; layer++) {
        for (const site of SITES) {
          const k = `${layer}.${site}`;
          assert.equal(maxDiff(rec1.seen.get(k)![0]!, base.seen.get(k)![0]!), 0, k);
        }
      }
      assert.ok(maxDiff(out1.logits, baseOut.logits) > 1e-2, "the write changed nothing downstream");
      assert.equal(maxDiff(out1.logits, out2.logits), 0);
      for (let layer = l + 1; layer < c.nLayers; layer++) {
        for (const site of ["attn_out", "mlp_out", "resid_post"] as Site[]) {
          const k = `${layer}.${site}`;
          assert.equal(maxDiff(rec1.seen.get(k)![0]!, rec2.seen.get(k)![0]!), 0, k);
        }
      }
    });

    test("writes at attn_out and mlp_out propagate; hooks do not persist after a call", async () => {
      const before = await engine.forward({ ids: [row0] }, { logits: "all" });
      for (const site of ["attn_out", "mlp_out"] as Site[]) {
        const zero: HookBinding = { point: { layer: c.nLayers - 1, site }, fn: (ctx) => ctx.hidden.fill(0) };
        const steered = await engine.forward({ ids: [row0] }, { logits: "all", hooks: [zero] });
        assert.ok(maxDiff(steered.logits, before.logits) > 1e-2, site);
      }
      const after = await engine.forward({ ids: [row0] }, { logits: "all" });
      assert.equal(maxDiff(after.logits, before.logits), 0);
    });

    test("logits modes and stopAfterLayer", async () => {
      const all = await engine.forward({ ids: [row0, row1], mask }, { logits: "all" });
      const last = await engine.forward({ ids: [row0, row1], mask }, { logits: "last" });
      assert.deepEqual([all.batch, all.seq, all.vocab], [2, T, V]);
      assert.deepEqual([last.batch, last.seq], [2, 1]);
      assert.equal(maxDiff(all.logits.subarray((T - 1) * V, T * V), last.logits.subarray(0, V)), 0);
      const none = await engine.forward({ ids: [row0] }, { logits: "none" });
      assert.equal(none.logits.length, 0);
      const fired: number[] = [];
      const hooks: HookBinding[] = Array.from({ length: c.nLayers }, (_, layer) => ({
        point: { layer, site: "resid_post" as Site },
        fn: () => fired.push(layer),
      }));
      await engine.forward({ ids: [row0] }, { logits: "none", stopAfterLayer: 0, hooks });
      assert.deepEqual(fired, [0]);
      await assert.rejects(engine.forward({ ids: [row0] }, { logits: "last", stopAfterLayer: 0 }), (e) =>
        isSteerlabError(e, "bad_input"),
      );
    });
  });
}

describe("reference forward: input checks", () => {
  const c = TINY_CONFIGS.llama!;
  const engine = new ReferenceEngine(c, randomWeights(c, 1));
  const bad = (e: unknown) => isSteerlabError(e, "bad_input");
  test("rejects bad ids, ragged rows, bad masks, foreign caches, bad hook layers, too-long sequences", async () => {
    await assert.rejects(engine.forward({ ids: [[1, c.vocabSize]] }), bad);
    await assert.rejects(engine.forward({ ids: [[1, 2.5]] }), bad);
    await assert.rejects(engine.forward({ ids: [[1, 2], [3]] }), bad);
    await assert.rejects(engine.forward({ ids: [[1, 2]], mask: [[1, 2]] }), bad);
    await assert.rejects(engine.forward({ ids: [[1, 2]] }, { cache: engine.newCache(2) }), bad);
    const other = new ReferenceEngine(c, randomWeights(c, 2));
    await assert.rejects(engine.forward({ ids: [[1, 2]] }, { cache: { ...other.newCache(1) } }), bad);
    await assert.rejects(
      engine.forward(
        { ids: [[1]] },
        { hooks: [{ point: { layer: c.nLayers, site: "resid_pre" }, fn: () => {} }] },
      ),
      bad,
    );
    await assert.rejects(
      engine.forward({ ids: [Array(c.maxPositions + 1).fill(1)] }, { logits: "none" }),
      bad,
    );
    const site = "resid_mid" as Site;
    await assert.rejects(
      engine.forward({ ids: [[1]] }, { hooks: [{ point: { layer: 0, site }, fn: () => {} }] }),
      bad,
    );
    await assert.rejects(engine.forward({ ids: [[]] }), bad);
  });
  test("rejects a checkpoint with missing or misshapen tensors, naming each", () => {
    const w = randomWeights(c, 1);
    w.delete("blocks.0.attn.q.weight");
    w.set("final_norm.weight", { shape: [3], data: new Float32Array(3) });
    assert.throws(
      () => new ReferenceEngine(c, w),
      (e) => isSteerlabError(e, "bad_tensor") && e.details.problems!.length === 2,
    );
  });
  test("a 64-token forward of the 3-layer 64-dim model takes milliseconds", async () => {
    const ids = [randomIds(64, c.vocabSize, 3)];
    await engine.forward({ ids }, { logits: "all" });
    const t0 = performance.now();
    await engine.forward({ ids }, { logits: "all" });
    const ms = performance.now() - t0;
    assert.ok(ms < 250, `${ms.toFixed(1)} ms`);
  });
});
