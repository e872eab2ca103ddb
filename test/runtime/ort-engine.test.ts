import assert from "node:assert/strict";
import { describe, test } from "node:test";
import v8 from "node:v8";
import vm from "node:vm";
import { isSteerlabError } from "../../src/errors.js";
import type { ModelConfig } from "../../src/model/config.js";
import type { Engine, HookBinding } from "../../src/model/engine.js";
import { SITES } from "../../src/model/hooks.js";
import { randomWeights, rng, TINY_CONFIGS } from "../../src/model/random.js";
import { ReferenceEngine } from "../../src/reference/engine.js";
import { createOrtEngine } from "../../src/runtime/ort-engine.js";

const TOL = 1e-4;

function randomIds(n: number, vocab: number, seed: number): number[] {
  const u = rng(seed);
  return Array.from({ length: n }, () => Math.floor(u() * vocab));
}

/** max |a - b| divided by max(1, max |b|): the tolerance is relative to the values' scale. */
function relDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length, "lengths differ");
  let m = 0;
  let s = 1;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(a[i]! - b[i]!));
    s = Math.max(s, Math.abs(b[i]!));
  }
  return m / s;
}

/** Hooks that copy every site of every layer: "layer.site" -> [B, T, D] copy. */
function recorder(c: ModelConfig): { hooks: HookBinding[]; seen: Map<string, Float32Array> } {
  const seen = new Map<string, Float32Array>();
  const hooks: HookBinding[] = [];
  for (let layer = 0; layer < c.nLayers; layer++) {
    for (const site of SITES) {
      hooks.push({
        point: { layer, site },
        fn: (ctx) => seen.set(`${layer}.${site}`, Float32Array.from(ctx.hidden)),
      });
    }
  }
  return { hooks, seen };
}

/** [B, T, V] logits of row b at token t. */
function at(logits: Float32Array, T: number, V: number, b: number, t: number): Float32Array {
  return logits.subarray((b * T + t) * V, (b * T + t + 1) * V);
}

for (const [name, c] of Object.entries(TINY_CONFIGS)) {
  describe(`OrtEngine vs reference: ${name}`, () => {
    const w = randomWeights(c, 7);
    const ref = new ReferenceEngine(c, w);
    let ortE: Engine;
    const engine = async () => {
      ortE ??= await createOrtEngine({ config: c, weights: w }, { threads: 1 });
      return ortE;
    };

    test("logits and every hook site match", async () => {
      const e = await engine();
      const ids = [randomIds(9, c.vocabSize, 1), randomIds(9, c.vocabSize, 2)];
      const r1 = recorder(c);
      const r2 = recorder(c);
      const a = await e.forward({ ids }, { logits: "all", hooks: r1.hooks });
      const b = await ref.forward({ ids }, { logits: "all", hooks: r2.hooks });
      assert.equal(a.seq, 9);
      assert.ok(relDiff(a.logits, b.logits) <= TOL, `logits differ by ${relDiff(a.logits, b.logits)}`);
      assert.equal(r1.seen.size, c.nLayers * SITES.length);
      for (const [k, v] of r2.seen) {
        const d = relDiff(r1.seen.get(k)!, v);
        assert.ok(d <= TOL, `${k} differs by ${d}`);
      }
    });

    test("cached decode equals full recompute (chunks, single steps, cache growth)", async () => {
      const e = await engine();
      const N = 40; // past the cache's first capacity (16) and its first doubling (32)
      const ids = randomIds(N, c.vocabSize, 3);
      const V = c.vocabSize;
      const full = await e.forward({ ids: [ids] }, { logits: "all" });
      const cache = e.newCache(1);
      const pre = await e.forward({ ids: [ids.slice(0, 6)] }, { cache, logits: "last" });
      assert.ok(relDiff(pre.logits, at(full.logits, N, V, 0, 5)) <= TOL);
      const chunk = await e.forward({ ids: [ids.slice(6, 11)] }, { cache, logits: "all" });
      for (let t = 6; t < 11; t++)
        assert.ok(relDiff(at(chunk.logits, 5, V, 0, t - 6), at(full.logits, N, V, 0, t)) <= TOL);
      for (let t = 11; t < N; t++) {
        const step = await e.forward({ ids: [[ids[t]!]] }, { cache, logits: "last" });
        const d = relDiff(step.logits, at(full.logits, N, V, 0, t));
        assert.ok(d <= TOL, `step ${t} differs by ${d}`);
      }
      assert.equal(cache.length, N);
      const r = await ref.forward({ ids: [ids] }, { logits: "all" });
      assert.ok(relDiff(full.logits, r.logits) <= TOL);
    });

    test("left-padded batch equals rows alone, also across cached steps", async () => {
      const e = await engine();
      const long = randomIds(7, c.vocabSize, 4);
      const short = randomIds(4, c.vocabSize, 5);
      const next = [randomIds(2, c.vocabSize, 6), randomIds(2, c.vocabSize, 8)];
      const cache = e.newCache(2);
      const batch = await e.forward(
        {
          ids: [long, [9, 9, 9, ...short]],
          mask: [
            [1, 1, 1, 1, 1, 1, 1],
            [0, 0, 0, 1, 1, 1, 1],
          ],
        },
        { cache, logits: "all" },
      );
      const step = await e.forward({ ids: [[next[0]![0]!], [next[1]![0]!]] }, { cache, logits: "last" });
      const aloneLong = await e.forward({ ids: [[...long, next[0]![0]!]] }, { logits: "all" });
      const aloneShort = await e.forward({ ids: [[...short, next[1]![0]!]] }, { logits: "all" });
      // Ten more steps (the cache grows past 16 slots), the short row with a padding step in the middle.
      const more = [randomIds(10, c.vocabSize, 14), randomIds(10, c.vocabSize, 15)];
      let last = step;
      for (let i = 0; i < 10; i++) {
        last = await e.forward(
          { ids: [[more[0]![i]!], [more[1]![i]!]], mask: [[1], [i === 4 ? 0 : 1]] },
          { cache, logits: "last" },
        );
      }
      const tailShort = more[1]!.filter((_, i) => i !== 4);
      const endLong = await e.forward({ ids: [[...long, next[0]![0]!, ...more[0]!]] }, { logits: "last" });
      const endShort = await e.forward({ ids: [[...short, next[1]![0]!, ...tailShort]] }, { logits: "last" });
      assert.ok(relDiff(at(last.logits, 1, c.vocabSize, 0, 0), endLong.logits) <= TOL);
      assert.ok(relDiff(at(last.logits, 1, c.vocabSize, 1, 0), endShort.logits) <= TOL);
      const V = c.vocabSize;
      for (let t = 0; t < 7; t++)
        assert.ok(relDiff(at(batch.logits, 7, V, 0, t), at(aloneLong.logits, 8, V, 0, t)) <= TOL);
      for (let t = 0; t < 4; t++) {
        assert.ok(relDiff(at(batch.logits, 7, V, 1, t + 3), at(aloneShort.logits, 5, V, 0, t)) <= TOL);
      }
      assert.ok(relDiff(at(step.logits, 1, V, 0, 0), at(aloneLong.logits, 8, V, 0, 7)) <= TOL);
      assert.ok(relDiff(at(step.logits, 1, V, 1, 0), at(aloneShort.logits, 5, V, 0, 4)) <= TOL);
    });

    test("writes at resid_post and attn_out take effect like the reference's", async () => {
      const e = await engine();
      const ids = [randomIds(6, c.vocabSize, 9)];
      const u = rng(11);
      const vec = Float32Array.from({ length: c.hiddenSize }, () => 4 * (u() - 0.5));
      const steer = (layer: number, site: "resid_post" | "attn_out"): HookBinding => ({
        point: { layer, site },
        fn: (ctx) => {
          for (let i = 0; i < ctx.hidden.length; i++) ctx.hidden[i]! += vec[i % ctx.dim]!;
        },
      });
      const hooks = [steer(0, "resid_post"), steer(c.nLayers - 1, "attn_out")];
      const base = await e.forward({ ids }, { logits: "all" });
      const a = await e.forward({ ids }, { logits: "all", hooks });
      const b = await ref.forward({ ids }, { logits: "all", hooks });
      assert.ok(relDiff(a.logits, base.logits) > 1e-2, "the write changed nothing");
      assert.ok(
        relDiff(a.logits, b.logits) <= TOL,
        `steered logits differ by ${relDiff(a.logits, b.logits)}`,
      );
    });

    test("stopAfterLayer runs the first blocks only; logits need every block", async () => {
      const e = await engine();
      const seen: number[] = [];
      const hooks: HookBinding[] = Array.from({ length: c.nLayers }, (_, layer) => ({
        point: { layer, site: "resid_post" as const },
        fn: () => seen.push(layer),
      }));
      const r = await e.forward({ ids: [[1, 2, 3]] }, { stopAfterLayer: 0, logits: "none", hooks });
      assert.deepEqual(seen, [0]);
      assert.equal(r.logits.length, 0);
      await assert.rejects(e.forward({ ids: [[1, 2]] }, { stopAfterLayer: 0 }), (err) =>
        isSteerlabError(err, "bad_input"),
      );
      await e.dispose();
    });
  });
}

describe("OrtEngine options", () => {
  const c = TINY_CONFIGS.llama!;

  test('granularity "block" equals "site" and rejects inner-site hooks', async () => {
    const w = randomWeights(c, 3);
    const site = await createOrtEngine({ config: c, weights: w }, { threads: 1 });
    const block = await createOrtEngine({ config: c, weights: w }, { threads: 1, granularity: "block" });
    const ids = [randomIds(8, c.vocabSize, 12)];
    const a = await site.forward({ ids }, { logits: "all" });
    const b = await block.forward({ ids }, { logits: "all" });
    assert.ok(relDiff(b.logits, a.logits) <= TOL);
    const steer: HookBinding[] = [
      {
        point: { layer: 1, site: "resid_post" },
        fn: (ctx) => {
          for (let i = 0; i < ctx.hidden.length; i += ctx.dim) ctx.hidden[i]! += 5;
        },
      },
    ];
    const sa = await site.forward({ ids }, { logits: "all", hooks: steer });
    const sb = await block.forward({ ids }, { logits: "all", hooks: steer });
    assert.ok(relDiff(sa.logits, a.logits) > 1e-3, "the write changed nothing");
    assert.ok(relDiff(sb.logits, sa.logits) <= TOL);
    await assert.rejects(
      block.forward({ ids }, { hooks: [{ point: { layer: 0, site: "mlp_out" }, fn: () => {} }] }),
      (err) => isSteerlabError(err, "unsupported"),
    );
    await Promise.all([site.dispose(), block.dispose()]);
  });

  test("consumeWeights empties the caller's map and the engine still matches", async () => {
    const w = randomWeights(c, 5);
    const ref = new ReferenceEngine(c, w);
    const ids = [randomIds(5, c.vocabSize, 13)];
    const expected = await ref.forward({ ids });
    const e = await createOrtEngine({ config: c, weights: w }, { threads: 1, consumeWeights: true });
    assert.equal(w.size, 0);
    // Collect whatever JS buffers the build dropped and scribble over freed memory: ORT must own its weights.
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc") as () => void;
    gc();
    const junk = Array.from({ length: 64 }, () => new Float32Array(64 * 1024).fill(Number.NaN));
    assert.equal(junk.length, 64);
    const got = await e.forward({ ids });
    assert.ok(relDiff(got.logits, expected.logits) <= TOL);
    await e.dispose();
  });

  test("a tied head without prepacking (prepackTiedHead: false) gives the same logits", async () => {
    const g = TINY_CONFIGS.gpt2!;
    const w = randomWeights(g, 4);
    const ids = [randomIds(6, g.vocabSize, 16)];
    const expected = await new ReferenceEngine(g, w).forward({ ids }, { logits: "all" });
    const e = await createOrtEngine({ config: g, weights: w }, { threads: 1, prepackTiedHead: false });
    const got = await e.forward({ ids }, { logits: "all" });
    assert.ok(relDiff(got.logits, expected.logits) <= TOL);
    await e.dispose();
  });

  test("missing weights are all reported in one error before any graph is built", async () => {
    const w = randomWeights(c, 5);
    w.delete("blocks.1.attn.q.weight");
    w.delete("final_norm.weight");
    await assert.rejects(createOrtEngine({ config: c, weights: w }), (err) => {
      assert.ok(isSteerlabError(err, "bad_tensor"));
      assert.equal(err.details.problems?.length, 2);
      return true;
    });
  });

  test("a cache from another engine and out-of-range tokens are refused", async () => {
    const w = randomWeights(c, 5);
    const e = await createOrtEngine({ config: c, weights: w }, { threads: 1 });
    const ref = new ReferenceEngine(c, w);
    await assert.rejects(e.forward({ ids: [[1]] }, { cache: ref.newCache(1) }), (err) =>
      isSteerlabError(err, "bad_input"),
    );
    await assert.rejects(e.forward({ ids: [[c.vocabSize]] }), (err) => isSteerlabError(err, "bad_input"));
    await assert.rejects(e.forward({ ids: [[1, 2], [3]] }), (err) => isSteerlabError(err, "bad_input"));
    await e.dispose();
  });
});
