import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isSteerlabError } from "../../src/errors.js";
import { randomWeights, TINY_CONFIGS } from "../../src/model/random.js";
import { ReferenceEngine } from "../../src/reference/engine.js";
import { randomIds } from "../helpers/engines.js";

// The invariants every backend keeps (cached = recomputed, padding, hooks, logits modes, input errors) run for
// this engine in test/model/backends.test.ts; here what only the reference promises.
for (const [name, c] of Object.entries(TINY_CONFIGS)) {
  test(`reference forward, ${name}: logits are not near-uniform (the test model can tell engines apart)`, async () => {
    const engine = new ReferenceEngine(c, randomWeights(c, 7));
    const r = await engine.forward({ ids: [randomIds(10, c.vocabSize, 11)] }, { logits: "last" });
    let s = 0;
    for (const v of r.logits) s += v * v;
    assert.ok(Math.sqrt(s / c.vocabSize) > 1, `logit rms ${Math.sqrt(s / c.vocabSize)}`);
  });
}

describe("reference forward: weights and speed", () => {
  const c = TINY_CONFIGS.llama!;
  const engine = new ReferenceEngine(c, randomWeights(c, 1));
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
