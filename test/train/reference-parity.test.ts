import assert from "node:assert/strict";
import { test } from "node:test";
import { randomWeights, TINY_CONFIGS } from "../../src/model/random.js";
import { ReferenceEngine } from "../../src/reference/engine.js";
import { LlamaTrainer, type Params } from "../../src/train/llama.js";
import { plainMatmul } from "../../src/train/matmul.js";

test("the training forward gives the reference engine's logits (GQA llama, random weights)", async () => {
  const c = TINY_CONFIGS.llama!;
  const w = randomWeights(c, 4);
  const params: Params = new Map([...w].map(([k, t]) => [k, t.data]));
  const ids = [
    [1, 17, 250, 3, 99, 5, 42, 7, 300, 11],
    [1, 8, 8, 8, 120, 64, 2, 0, 19, 23],
  ];
  const tr = new LlamaTrainer(c, plainMatmul);
  const acts = await tr.forward(params, Int32Array.from(ids.flat()), 2, 10);
  const ref = await new ReferenceEngine(c, w).forward({ ids }, { logits: "all" });
  assert.equal(ref.logits.length, acts.logits.length);
  let maxDiff = 0;
  for (let i = 0; i < ref.logits.length; i++)
    maxDiff = Math.max(maxDiff, Math.abs(ref.logits[i]! - acts.logits[i]!));
  assert.ok(maxDiff < 1e-3, `max |logit diff| ${maxDiff}`);
});
