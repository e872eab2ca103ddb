/**
 * The invariants every backend of the forward driver keeps, run once per backend (helpers/engines.ts: the
 * reference, ONNX Runtime with every hook site, ONNX Runtime with one graph per block):
 * KV-cached decoding = full recomputation (plain, padded, steered at every position mode), left-padded rows =
 * rows alone, hook semantics (positions, writes, nothing persists), backend = reference at every hook site it
 * serves (reading and writing), HF = GGUF of the same weights, and the same errors on every backend.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { isSteerlabError } from "../../src/errors.js";
import type { ModelConfig } from "../../src/model/config.js";
import type { Engine, ForwardOptions, HookBinding } from "../../src/model/engine.js";
import { SITES, type Site } from "../../src/model/hooks.js";
import { loadModel } from "../../src/model/load.js";
import { openModel } from "../../src/model/open.js";
import { randomWeights, rng, TINY_CONFIGS } from "../../src/model/random.js";
import { ReferenceEngine } from "../../src/reference/engine.js";
import { createOrtEngine, type OrtEngine, spansFor } from "../../src/runtime/ort-engine.js";
import { type PositionSpec, steeringHooks } from "../../src/steer/apply.js";
import { vectorFromExtraction } from "../../src/steer/vector.js";
import {
  at,
  BACKENDS,
  maxDiff,
  padded,
  randomIds,
  recorder,
  relDiff,
  servedPoints,
} from "../helpers/engines.js";
import { writeTinyModels } from "../helpers/tiny-models.js";

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

/** A hook adding `vec` (cycled over D) to every token at `point`. */
function adder(layer: number, site: Site, vec: Float32Array): HookBinding {
  return {
    point: { layer, site },
    fn: (ctx) => {
      for (let i = 0; i < ctx.hidden.length; i++) ctx.hidden[i] = ctx.hidden[i]! + vec[i % ctx.dim]!;
    },
  };
}

for (const b of BACKENDS)
  for (const [name, c] of Object.entries(TINY_CONFIGS)) {
    describe(`${b.name}, ${name}: driver invariants`, () => {
      const w = randomWeights(c, 7);
      const pts = servedPoints(b, c);
      let engine: Promise<Engine> | undefined;
      const e = () => {
        engine ??= b.make(c, w);
        return engine;
      };
      after(async () => (await engine)?.dispose());
      const D = c.hiddenSize;
      const V = c.vocabSize;
      const close = (x: Float32Array, y: Float32Array, what: string) => {
        const d = b.diff(x, y);
        assert.ok(d < b.tol, `${what} differs by ${d}`);
      };
      // Row 0: 10 real tokens. Row 1: 3 padding + 7 real tokens.
      const T = 10;
      const row0 = randomIds(T, V, 11);
      const row1 = [0, 0, 0, ...randomIds(T - 3, V, 12)];
      const mask = [Array(T).fill(1), [0, 0, 0, ...Array(T - 3).fill(1)]];

      test("KV-cached decoding equals full recomputation (logits and every hook site, padded rows)", async () => {
        const en = await e();
        const full = recorder(c, pts);
        const ref = await en.forward({ ids: [row0, row1], mask }, { logits: "all", hooks: full.hooks });
        const inc = recorder(c, pts);
        const cache = en.newCache(2);
        const logits: Float32Array[] = [];
        let t0 = 0;
        for (const n of [4, 3, 1, 1, 1]) {
          const ids = [row0.slice(t0, t0 + n), row1.slice(t0, t0 + n)];
          const m = mask.map((r) => r.slice(t0, t0 + n));
          const r = await en.forward({ ids, mask: m }, { logits: "all", hooks: inc.hooks, cache });
          logits.push(r.logits);
          t0 += n;
        }
        assert.equal(cache.length, T);
        close(concatT(logits, 2, V), ref.logits, "logits");
        assert.equal(inc.seen.size, pts.length);
        for (const [k, chunks] of inc.seen) {
          const whole = full.seen.get(k)![0]!;
          // Padded positions carry no meaning; compare real tokens only.
          const got = concatT(chunks, 2, D);
          for (let r = 0; r < 2; r++)
            for (let t = 0; t < T; t++) {
              if (mask[r]![t] === 0) continue;
              const o = (r * T + t) * D;
              close(got.subarray(o, o + D), whole.subarray(o, o + D), `${k} b${r} t${t}`);
            }
        }
      });

      test("cached decode equals full recompute (chunks, single steps, cache growth past 16 and 32 slots)", async () => {
        const en = await e();
        const N = 40;
        const ids = randomIds(N, V, 3);
        const full = await en.forward({ ids: [ids] }, { logits: "all" });
        const cache = en.newCache(1);
        const pre = await en.forward({ ids: [ids.slice(0, 6)] }, { cache, logits: "last" });
        close(pre.logits, at(full.logits, N, V, 0, 5), "prefill");
        const chunk = await en.forward({ ids: [ids.slice(6, 11)] }, { cache, logits: "all" });
        for (let t = 6; t < 11; t++)
          close(at(chunk.logits, 5, V, 0, t - 6), at(full.logits, N, V, 0, t), "chunk");
        for (let t = 11; t < N; t++) {
          const step = await en.forward({ ids: [[ids[t]!]] }, { cache, logits: "last" });
          close(step.logits, at(full.logits, N, V, 0, t), `step ${t}`);
        }
        assert.equal(cache.length, N);
      });

      test("left-padded batch rows equal the same rows alone, also across cached steps", async () => {
        const en = await e();
        const both = await en.forward({ ids: [row0, row1], mask }, { logits: "last" });
        const a = await en.forward({ ids: [row0] }, { logits: "last" });
        const a1 = await en.forward({ ids: [row1.slice(3)] }, { logits: "last" });
        close(both.logits.subarray(0, V), a.logits, "row 0");
        close(both.logits.subarray(V), a1.logits, "row 1");

        const long = randomIds(7, V, 4);
        const short = randomIds(4, V, 5);
        const next = [randomIds(2, V, 6), randomIds(2, V, 8)];
        const cache = en.newCache(2);
        const batch = await en.forward(
          { ids: [long, [9, 9, 9, ...short]], mask: [Array(7).fill(1), [0, 0, 0, 1, 1, 1, 1]] },
          { cache, logits: "all" },
        );
        const step = await en.forward({ ids: [[next[0]![0]!], [next[1]![0]!]] }, { cache, logits: "last" });
        const aloneLong = await en.forward({ ids: [[...long, next[0]![0]!]] }, { logits: "all" });
        const aloneShort = await en.forward({ ids: [[...short, next[1]![0]!]] }, { logits: "all" });
        // Ten more steps (the cache grows past 16 slots), the short row with a padding step in the middle.
        const more = [randomIds(10, V, 14), randomIds(10, V, 15)];
        let last = step;
        for (let i = 0; i < 10; i++) {
          last = await en.forward(
            { ids: [[more[0]![i]!], [more[1]![i]!]], mask: [[1], [i === 4 ? 0 : 1]] },
            { cache, logits: "last" },
          );
        }
        const tailShort = more[1]!.filter((_, i) => i !== 4);
        const endLong = await en.forward({ ids: [[...long, next[0]![0]!, ...more[0]!]] }, { logits: "last" });
        const endShort = await en.forward(
          { ids: [[...short, next[1]![0]!, ...tailShort]] },
          { logits: "last" },
        );
        close(at(last.logits, 1, V, 0, 0), endLong.logits, "long row after 10 steps");
        close(at(last.logits, 1, V, 1, 0), endShort.logits, "short row after 10 steps");
        for (let t = 0; t < 7; t++)
          close(at(batch.logits, 7, V, 0, t), at(aloneLong.logits, 8, V, 0, t), "long");
        for (let t = 0; t < 4; t++)
          close(at(batch.logits, 7, V, 1, t + 3), at(aloneShort.logits, 5, V, 0, t), "short");
        close(at(step.logits, 1, V, 0, 0), at(aloneLong.logits, 8, V, 0, 7), "long step");
        close(at(step.logits, 1, V, 1, 0), at(aloneShort.logits, 5, V, 0, 4), "short step");
      });

      test("hook positions count real tokens and continue across cached calls", async () => {
        const en = await e();
        const cache = en.newCache(2);
        let pos: Int32Array | null = null;
        const hooks: HookBinding[] = [
          { point: { layer: 0, site: "resid_pre" }, fn: (x) => (pos = Int32Array.from(x.positions)) },
        ];
        await en.forward(
          { ids: [row0.slice(0, 5), row1.slice(0, 5)], mask: mask.map((r) => r.slice(0, 5)) },
          { cache, hooks },
        );
        assert.deepEqual([...pos!], [0, 1, 2, 3, 4, -1, -1, -1, 0, 1]);
        await en.forward({ ids: [[row0[5]!], [row1[5]!]] }, { cache, hooks });
        assert.deepEqual([...pos!], [5, 2]);
      });

      test("writing r at resid_post[l] leaves layers <= l alone and equals adding r to the input of block l+1", async () => {
        const en = await e();
        const l = 0;
        const u = rng(5);
        const r = Float32Array.from({ length: D }, () => u() * 2 - 1);
        const base = recorder(c, pts);
        const baseOut = await en.forward({ ids: [row0] }, { logits: "all", hooks: base.hooks });
        const rec1 = recorder(c, pts);
        // The recorder's resid_post[l] hook runs before the write (hooks run in the order given).
        const out1 = await en.forward(
          { ids: [row0] },
          { logits: "all", hooks: [...rec1.hooks, adder(l, "resid_post", r)] },
        );
        const rec2 = recorder(c, pts);
        const out2 = await en.forward(
          { ids: [row0] },
          { logits: "all", hooks: [adder(l + 1, "resid_pre", r), ...rec2.hooks] },
        );
        for (const { layer, site } of pts.filter((p) => p.layer <= l)) {
          const k = `${layer}.${site}`;
          assert.equal(maxDiff(rec1.seen.get(k)![0]!, base.seen.get(k)![0]!), 0, k);
        }
        assert.ok(maxDiff(out1.logits, baseOut.logits) > 1e-2, "the write changed nothing downstream");
        assert.equal(maxDiff(out1.logits, out2.logits), 0);
        for (const { layer, site } of pts.filter((p) => p.layer > l && p.site !== "resid_pre")) {
          const k = `${layer}.${site}`;
          assert.equal(maxDiff(rec1.seen.get(k)![0]!, rec2.seen.get(k)![0]!), 0, k);
        }
      });

      test("a write at every served site propagates; hooks do not persist after a call", async () => {
        const en = await e();
        const before = await en.forward({ ids: [row0] }, { logits: "all" });
        for (const site of b.sites) {
          const layer = Math.max(...pts.filter((p) => p.site === site).map((p) => p.layer)); // the last served
          const zero: HookBinding = {
            point: { layer, site },
            fn: (ctx) => ctx.hidden.fill(0),
          };
          const steered = await en.forward({ ids: [row0] }, { logits: "all", hooks: [zero] });
          assert.ok(maxDiff(steered.logits, before.logits) > 1e-2, site);
        }
        const after = await en.forward({ ids: [row0] }, { logits: "all" });
        assert.equal(maxDiff(after.logits, before.logits), 0);
      });

      test("logits modes and stopAfterLayer", async (t) => {
        const en = await e();
        const all = await en.forward({ ids: [row0, row1], mask }, { logits: "all" });
        const last = await en.forward({ ids: [row0, row1], mask }, { logits: "last" });
        assert.deepEqual([all.batch, all.seq, all.vocab], [2, T, V]);
        assert.deepEqual([last.batch, last.seq], [2, 1]);
        const d = b.diff(all.logits.subarray((T - 1) * V, T * V), last.logits.subarray(0, V));
        if (b.lastVsAll === 0) assert.equal(d, 0);
        else {
          t.diagnostic(`logits "last" vs "all": ${d.toExponential(2)} (bound ${b.lastVsAll})`);
          assert.ok(d <= b.lastVsAll, `last vs all ${d} > ${b.lastVsAll}`);
        }
        const none = await en.forward({ ids: [row0] }, { logits: "none" });
        assert.equal(none.logits.length, 0);
        const fired: number[] = [];
        const hooks: HookBinding[] = pts
          .filter((p) => p.site === "resid_post")
          .map(({ layer }) => ({ point: { layer, site: "resid_post" }, fn: () => fired.push(layer) }));
        const r = await en.forward({ ids: [row0] }, { logits: "none", stopAfterLayer: 0, hooks });
        assert.deepEqual(fired, [0]);
        assert.equal(r.logits.length, 0);
        await assert.rejects(en.forward({ ids: [row0] }, { logits: "last", stopAfterLayer: 0 }), (x) =>
          isSteerlabError(x, "bad_input"),
        );
      });

      if (b.name !== "reference")
        test("equals the reference at every hook site it serves, reading and writing", async () => {
          const en = await e();
          const ref = new ReferenceEngine(c, w);
          const ids = [randomIds(9, V, 1), randomIds(9, V, 2)];
          // Reading: logits and every served site.
          const r1 = recorder(c, pts);
          const r2 = recorder(c, pts);
          const x = await en.forward({ ids }, { logits: "all", hooks: r1.hooks });
          const y = await ref.forward({ ids }, { logits: "all", hooks: r2.hooks });
          assert.equal(x.seq, 9);
          assert.ok(relDiff(x.logits, y.logits) <= 1e-4, `logits differ by ${relDiff(x.logits, y.logits)}`);
          assert.equal(r1.seen.size, pts.length);
          for (const [k, v] of r2.seen) {
            const d = relDiff(r1.seen.get(k)![0]!, v[0]!);
            assert.ok(d <= 1e-4, `${k} differs by ${d}`);
          }
          // Writing: a vector added at each served site of some block, and read downstream.
          const u = rng(11);
          const vec = Float32Array.from({ length: D }, () => 4 * (u() - 0.5));
          for (const [i, site] of b.sites.entries()) {
            const layers = pts.filter((p) => p.site === site).map((p) => p.layer);
            const layer = layers[(i + 1) % layers.length]!;
            const w1 = recorder(c, pts);
            const w2 = recorder(c, pts);
            const base = await en.forward({ ids }, { logits: "all" });
            const s1 = await en.forward(
              { ids },
              { logits: "all", hooks: [adder(layer, site, vec), ...w1.hooks] },
            );
            const s2 = await ref.forward(
              { ids },
              { logits: "all", hooks: [adder(layer, site, vec), ...w2.hooks] },
            );
            assert.ok(relDiff(s1.logits, base.logits) > 1e-2, `the write at ${site} changed nothing`);
            assert.ok(
              relDiff(s1.logits, s2.logits) <= 1e-4,
              `steered at ${site}: ${relDiff(s1.logits, s2.logits)}`,
            );
            for (const [k, v] of w2.seen)
              assert.ok(relDiff(w1.seen.get(k)![0]!, v[0]!) <= 1e-4, `${site}: ${k}`);
          }
          // Two writes in one call, as the former ONNX Runtime suite did: resid_post[0] and attn_out[L-1].
          const all = [adder(0, "resid_post", vec)];
          if (b.sites.includes("attn_out")) all.push(adder(c.nLayers - 1, "attn_out", vec));
          const a1 = await en.forward({ ids }, { logits: "all", hooks: all });
          const a2 = await ref.forward({ ids }, { logits: "all", hooks: all });
          assert.ok(
            relDiff(a1.logits, a2.logits) <= 1e-4,
            `steered at every site: ${relDiff(a1.logits, a2.logits)}`,
          );
          // The full 40-token forward too.
          const long = [randomIds(40, V, 3)];
          assert.ok(
            relDiff(
              (await en.forward({ ids: long }, { logits: "all" })).logits,
              (await ref.forward({ ids: long }, { logits: "all" })).logits,
            ) <= 1e-4,
          );
        });
    });
  }

describe("steered decoding: KV-cached equals full recomputation for every position mode, on every backend", () => {
  const config = TINY_CONFIGS.llama!;
  const V = config.vocabSize;
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
  const vector = (site: Site) =>
    vectorFromExtraction(
      { method: "manual", directions: dirs, diagnostics: new Map(), info: new Map(), suggestedLayers: [] },
      { model: config, site },
    );
  for (const b of BACKENDS) {
    let engine: Promise<Engine> | undefined;
    const e = () => {
      engine ??= b.make(config, randomWeights(config, 3));
      return engine;
    };
    after(async () => (await engine)?.dispose());
    const siteSets: Site[][] = [["resid_post"], ...(b.sites.length > 2 ? [[...b.sites]] : [])];
    // Every layer where the backend serves all these sites (all layers, but the edges of its spans only).
    const layersFor = (sites: Site[]) =>
      Array.from({ length: config.nLayers }, (_, l) => l).filter((layer) =>
        sites.every((site) => b.serves(config, { layer, site })),
      );
    for (const [name, positions] of modes)
      for (const sites of siteSets)
        test(`${b.name}, ${name}, steering at ${sites.join(" + ")}`, async () => {
          const en = await e();
          const prompts = [
            [5, 9, 13, 17],
            [6, 10, 14, 18, 22, 26],
          ];
          const vectors = sites.map(vector);
          const hooks = steeringHooks(vectors, {
            coeff: 3,
            positions,
            layers: layersFor(sites),
            nLayers: config.nLayers,
          });
          const cache = en.newCache(2);
          let out = await en.forward(padded(prompts), { hooks, cache, logits: "last" });
          const seqs = prompts.map((p) => [...p]);
          for (let step = 0; step < 5; step++) {
            const full = await en.forward(padded(seqs), { hooks, logits: "last" });
            for (let k = 0; k < out.logits.length; k++) {
              assert.ok(
                Math.abs(out.logits[k]! - full.logits[k]!) < 1e-4,
                `step ${step}: cached ${out.logits[k]} vs full ${full.logits[k]} at ${k}`,
              );
            }
            const next = [0, 1].map((r) => {
              const row = out.logits.subarray(r * V, (r + 1) * V);
              return row.indexOf(Math.max(...row));
            });
            for (const [r, t] of next.entries()) seqs[r]!.push(t);
            out = await en.forward({ ids: next.map((t) => [t]) }, { hooks, cache, logits: "last" });
          }
          // and steering changed something (else the comparison proves nothing)
          const plain = await en.forward(padded(seqs), { logits: "all" });
          const steered = await en.forward(padded(seqs), { hooks, logits: "all" });
          assert.ok(
            plain.logits.some((x, k) => Math.abs(x - steered.logits[k]!) > 1e-3),
            "steering had an effect",
          );
        });
  }
});

describe("HF = GGUF: the same weights give the same forward on every backend", () => {
  const dir = mkdtempSync(join(tmpdir(), "steerlab-backends-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  for (const name of Object.keys(TINY_CONFIGS)) {
    let files: ReturnType<typeof writeTinyModels> | undefined;
    for (const b of BACKENDS)
      test(`${b.name}, ${name}: logits and every served hook site are bit-identical (ggml: within its rounding)`, async (t) => {
        files ??= writeTinyModels(mkdtempSync(join(dir, `${name}-`)), name);
        const c: ModelConfig = files.config;
        const pts = servedPoints(b, c);
        const [hf, gguf] = await Promise.all([loadModel(files.hfDir), loadModel(files.ggufFile)]);
        const engines = [await b.fromModel(hf), await b.fromModel(gguf)];
        const u = rng(9);
        const vec = Float32Array.from({ length: c.hiddenSize }, () => u() - 0.5);
        const ids = [randomIds(8, c.vocabSize, 21), [0, 0, ...randomIds(6, c.vocabSize, 22)]];
        const mask = [Array(8).fill(1), [0, 0, 1, 1, 1, 1, 1, 1]];
        const runs = [];
        for (const en of engines) {
          const rec = recorder(c, pts);
          const opts: ForwardOptions = { logits: "all", hooks: [adder(1, "resid_pre", vec), ...rec.hooks] };
          runs.push({ out: await en.forward({ ids, mask }, opts), seen: rec.seen });
          await en.dispose();
        }
        assert.equal(runs[0]!.seen.size, pts.length);
        if (b.hfGguf === 0) {
          assert.deepEqual(runs[1]!.out.logits, runs[0]!.out.logits);
          for (const [k, v] of runs[0]!.seen) assert.deepEqual(runs[1]!.seen.get(k), v, k);
        } else {
          const d = relDiff(runs[1]!.out.logits, runs[0]!.out.logits);
          assert.ok(d <= b.hfGguf, `logits differ by ${d}`);
          let worst = 0;
          for (const [k, v] of runs[0]!.seen) {
            const dk = relDiff(runs[1]!.seen.get(k)![0]!, v[0]!);
            worst = Math.max(worst, dk);
            assert.ok(dk <= b.hfGguf, `${k} differs by ${dk}`);
          }
          t.diagnostic(
            `HF vs GGUF: logits ${d.toExponential(2)}, hook sites ${worst.toExponential(2)} (relDiff)`,
          );
        }
      });
  }
});

test("openModel hands granularity to the ONNX Runtime engine", async () => {
  const dir = mkdtempSync(join(tmpdir(), "steerlab-open-"));
  try {
    const files = writeTinyModels(dir, "llama");
    const m = await openModel(files.hfDir, { granularity: { hookLayers: [1] }, threads: 1 });
    assert.equal((m.engine as OrtEngine).granularity, "span");
    await assert.rejects(
      m.engine.forward(
        { ids: [[1, 2]] },
        { hooks: [{ point: { layer: 0, site: "attn_out" }, fn: () => {} }] },
      ),
      (err) => isSteerlabError(err, "unsupported"),
    );
    await m.engine.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describe("errors are the same on every backend", () => {
  const c = TINY_CONFIGS.llama!;
  const w = randomWeights(c, 1);
  const batch = { ids: [[5, 9, 13, 17]] };
  const noop = () => {};
  /** Bad calls, each with what it must fail with. */
  const cases = (en: Engine, other: Engine, twin: Engine): [string, () => Promise<unknown>][] => [
    [
      "unknown site",
      () => en.forward(batch, { hooks: [{ point: { layer: 0, site: "resid_mid" as Site }, fn: noop }] }),
    ],
    [
      "hook layer = L",
      () => en.forward(batch, { hooks: [{ point: { layer: c.nLayers, site: "resid_pre" }, fn: noop }] }),
    ],
    [
      "hook layer -1",
      () => en.forward(batch, { hooks: [{ point: { layer: -1, site: "resid_pre" }, fn: noop }] }),
    ],
    [
      "replaced buffer",
      () =>
        en.forward(batch, {
          hooks: [
            {
              point: { layer: 0, site: "resid_post" },
              fn: (x) => (x.hidden = new Float32Array(x.hidden.length)),
            },
          ],
        }),
    ],
    [
      "resized buffer",
      () =>
        en.forward(batch, {
          hooks: [{ point: { layer: 0, site: "resid_pre" }, fn: (x) => (x.hidden = x.hidden.subarray(1)) }],
        }),
    ],
    ["stopAfterLayer = L", () => en.forward(batch, { logits: "none", stopAfterLayer: c.nLayers })],
    ["stopAfterLayer -1", () => en.forward(batch, { logits: "none", stopAfterLayer: -1 })],
    ["stopAfterLayer 0.5", () => en.forward(batch, { logits: "none", stopAfterLayer: 0.5 })],
    ["stopAfterLayer with logits", () => en.forward(batch, { stopAfterLayer: 0 })],
    [
      "stopAfterLayer with a cache",
      () => en.forward(batch, { logits: "none", stopAfterLayer: 0, cache: en.newCache(1) }),
    ],
    ["a cache of another backend", () => en.forward(batch, { cache: other.newCache(1) })],
    ["a cache of another engine of this backend", () => en.forward(batch, { cache: twin.newCache(1) })],
    ["a copied cache", () => en.forward(batch, { cache: { ...en.newCache(1) } })],
    ["cache batch", () => en.forward({ ids: [[1, 2]] }, { cache: en.newCache(2) })],
    ["id = vocab", () => en.forward({ ids: [[1, c.vocabSize]] })],
    ["id 2.5", () => en.forward({ ids: [[1, 2.5]] })],
    ["ragged rows", () => en.forward({ ids: [[1, 2], [3]] })],
    ["mask value 2", () => en.forward({ ids: [[1, 2]], mask: [[1, 2]] })],
    ["empty row", () => en.forward({ ids: [[]] })],
    ["too long", () => en.forward({ ids: [Array(c.maxPositions + 1).fill(1)] }, { logits: "none" })],
    ["inputHidden size", () => en.forward(batch, { startLayer: 1, inputHidden: new Float32Array(3) })],
    [
      "startLayer with a cache",
      () =>
        en.forward(batch, {
          startLayer: 1,
          inputHidden: new Float32Array(4 * c.hiddenSize),
          cache: en.newCache(1),
        }),
    ],
    ["newCache(0)", async () => en.newCache(0)],
    ["fork 0 rows", async () => en.forkCache!(en.newCache(1), 0)],
    ["fork room -1", async () => en.forkCache!(en.newCache(1), 2, -1)],
    ["fork a foreign cache", async () => en.forkCache!(other.newCache(1), 2)],
  ];

  /** What some messages must say (the rest: the same words on every backend, and code bad_input). */
  const says: Record<string, RegExp> = {
    "unknown site": /unknown hook site/,
    "replaced buffer": /replaced or resized its buffer/,
    "resized buffer": /replaced or resized its buffer/,
    "stopAfterLayer = L": /stopAfterLayer/,
    "stopAfterLayer with logits": /stopAfterLayer skips blocks/,
    "a cache of another backend": /not made by this engine/,
    "a cache of another engine of this backend": /not made by this engine/,
    "a copied cache": /not made by this engine/,
    "too long": /beyond the model's context/,
    "inputHidden size": /inputHidden/,
    "startLayer with a cache": /cannot be used with a cache/,
  };

  test("every bad call fails with the same code and message on each backend; nothing is left half-done", async () => {
    const made = await Promise.all(
      BACKENDS.map(async (b) => ({ b, en: await b.make(c, w), twin: await b.make(c, w) })),
    );
    const errors = new Map<string, string[]>();
    for (const [i, { b, en, twin }] of made.entries()) {
      const other = made[(i + 1) % made.length]!.en;
      const got: string[] = [];
      for (const [what, run] of cases(en, other, twin)) {
        await assert.rejects(run(), (err) => {
          assert.ok(isSteerlabError(err, "bad_input"), `${b.name}, ${what}: ${String(err)}`);
          if (says[what]) assert.match(err.message, says[what], `${b.name}, ${what}`);
          got.push(`${what}: ${err.message} (${err.details.field ?? ""})`);
          return true;
        });
      }
      errors.set(b.name, got);
      // The engine still works after all that, and a failed call did not extend a cache.
      const cache = en.newCache(1);
      await assert.rejects(
        en.forward(batch, {
          cache,
          hooks: [{ point: { layer: 0, site: "resid_post" }, fn: (x) => (x.hidden = new Float32Array(1)) }],
        }),
      );
      assert.equal(cache.length, 0);
      const ok = await en.forward(batch, { cache });
      assert.equal(cache.length, 4);
      assert.equal(ok.logits.length, c.vocabSize);
    }
    // Disposed only now: every iteration uses the next backend's engine as "another backend".
    for (const { en, twin } of made) {
      await Promise.all([en.dispose(), twin.dispose()]);
      await assert.rejects(
        en.forward(batch),
        (err) => isSteerlabError(err, "bad_input") && /disposed/.test(err.message),
      );
      assert.throws(
        () => en.newCache(1),
        (err) => isSteerlabError(err, "bad_input") && /disposed/.test(err.message),
      );
    }
    const want = errors.get("reference")!;
    for (const [name, got] of errors) assert.deepEqual(got, want, name);
  });

  for (const b of BACKENDS)
    test(`${b.name}: every hook gets its own positions (one hook's edits do not reach the next)`, async () => {
      const en = await b.make(c, w);
      const seen: number[][] = [];
      const hooks: HookBinding[] = [0, 1].map(() => ({
        point: { layer: 0, site: "resid_post" },
        fn: (ctx) => {
          seen.push([...ctx.positions]);
          ctx.positions.fill(-1);
        },
      }));
      const plain = await en.forward(batch, {});
      const out = await en.forward(batch, { hooks });
      assert.deepEqual(seen, [
        [0, 1, 2, 3],
        [0, 1, 2, 3],
      ]);
      assert.deepEqual(out.logits, plain.logits, "positions edited by a hook reached the forward");
      await en.dispose();
    });

  test("a point the backend cannot serve is refused as unsupported, with how to get it", async () => {
    for (const b of BACKENDS) {
      const en = await b.make(c, w);
      const refused = Array.from({ length: c.nLayers }, (_, layer) => SITES.map((site) => ({ layer, site })))
        .flat()
        .filter((p) => !b.serves(c, p));
      if (b.name.startsWith("onnxruntime ")) assert.ok(refused.length > 0, b.name);
      for (const { layer, site } of refused)
        await assert.rejects(en.forward(batch, { hooks: [{ point: { layer, site }, fn: noop }] }), (err) => {
          assert.ok(isSteerlabError(err, "unsupported"), String(err));
          assert.match(err.message, new RegExp(`blocks\\.${layer}\\.hook_${site}`));
          assert.match(err.details.hint ?? "", /granularity.*"site"/);
          return true;
        });
      await en.dispose();
    }
  });

  test("spans: startLayer and stopAfterLayer inside a span are refused; spans follow the hook layers", async () => {
    assert.deepEqual(spansFor([], 3), [[0, 2]]);
    assert.deepEqual(spansFor([0], 3), [
      [0, 0],
      [1, 2],
    ]);
    assert.deepEqual(spansFor([-1, 1], 4), [
      [0, 0],
      [1, 1],
      [2, 2],
      [3, 3],
    ]);
    assert.deepEqual(spansFor([1], 4), [
      [0, 0],
      [1, 1],
      [2, 3],
    ]);
    assert.throws(
      () => spansFor([3], 3),
      (err) => isSteerlabError(err, "bad_input") && /hookLayers/.test(err.message),
    );
    const en = await createOrtEngine(
      { config: c, weights: w },
      { threads: 1, granularity: { hookLayers: [0] } },
    );
    const inside = (err: unknown) =>
      isSteerlabError(err, "unsupported") && /inside blocks 1\.\.2/.test(err.message);
    await assert.rejects(en.forward(batch, { logits: "none", stopAfterLayer: 1 }), inside);
    const D = c.hiddenSize;
    await assert.rejects(en.forward(batch, { startLayer: 2, inputHidden: new Float32Array(4 * D) }), inside);
    // The whole model as one graph: only its input and output are hookable, and it equals the reference.
    const one = await createOrtEngine(
      { config: c, weights: w },
      { threads: 1, granularity: { hookLayers: [] } },
    );
    assert.equal(one.granularity, "span");
    const ids = [randomIds(12, c.vocabSize, 3)];
    const want = await new ReferenceEngine(c, w).forward({ ids }, { logits: "all" });
    assert.ok(relDiff((await one.forward({ ids }, { logits: "all" })).logits, want.logits) <= 1e-4);
    await assert.rejects(
      one.forward({ ids }, { hooks: [{ point: { layer: 0, site: "resid_post" }, fn: noop }] }),
      (err) => isSteerlabError(err, "unsupported"),
    );
    await Promise.all([en.dispose(), one.dispose()]);
  });
});
