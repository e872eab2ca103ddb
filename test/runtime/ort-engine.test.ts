import assert from "node:assert/strict";
import { describe, test } from "node:test";
import v8 from "node:v8";
import vm from "node:vm";
import { isSteerlabError } from "../../src/errors.js";
import type { HookBinding } from "../../src/model/engine.js";
import { randomWeights, TINY_CONFIGS } from "../../src/model/random.js";
import { ReferenceEngine } from "../../src/reference/engine.js";
import { createOrtEngine } from "../../src/runtime/ort-engine.js";
import { randomIds, relDiff } from "../helpers/engines.js";

const TOL = 1e-4;

// The invariants every backend keeps, and ONNX Runtime = reference at every hook site, run for both
// granularities in test/model/backends.test.ts; here the engine's build options.
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
});
