import assert from "node:assert/strict";
import { test } from "node:test";
import { randomWeights, TINY_CONFIGS } from "../../src/model/random.js";
import { LlamaTrainer, type Params } from "../../src/train/llama.js";
import { plainMatmul } from "../../src/train/matmul.js";

test("packed documents (docStart) give the same logits as separate rows", async () => {
  const c = TINY_CONFIGS.llama!;
  const params: Params = new Map([...randomWeights(c, 6)].map(([k, t]) => [k, t.data]));
  const tr = new LlamaTrainer(c, plainMatmul);
  const a = [1, 40, 41, 42];
  const b = [1, 7, 8, 9, 10, 11];
  const packed = await tr.forward(
    params,
    Int32Array.from([...a, ...b]),
    1,
    10,
    Int32Array.from([0, 0, 0, 0, 4, 4, 4, 4, 4, 4]),
  );
  const alone = await tr.forward(params, Int32Array.from([...b, 0, 0, 0, 0]), 1, 10);
  const first = await tr.forward(params, Int32Array.from(a), 1, 4);
  const V = c.vocabSize;
  let maxDiff = 0;
  for (let i = 0; i < b.length * V; i++)
    maxDiff = Math.max(maxDiff, Math.abs(packed.logits[4 * V + i]! - alone.logits[i]!));
  for (let i = 0; i < a.length * V; i++)
    maxDiff = Math.max(maxDiff, Math.abs(packed.logits[i]! - first.logits[i]!));
  assert.ok(maxDiff < 1e-4, `max |diff| ${maxDiff}`);
  // and without docStart the second document does see the first
  const leaky = await tr.forward(params, Int32Array.from([...a, ...b]), 1, 10);
  assert.ok(Math.abs(leaky.logits[9 * V]! - alone.logits[5 * V]!) > 1e-3);
});
