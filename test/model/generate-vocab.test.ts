/** A model whose embedding is padded past its tokenizer's vocabulary (as Qwen2's is) never emits those ids. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { byteLevelTokenizerJson } from "../../src/io/bpe-train.js";
import { tokenizerFromJson } from "../../src/io/tokenizer.js";
import { generate } from "../../src/model/generate.js";
import { randomWeights, TINY_CONFIGS } from "../../src/model/random.js";
import { ReferenceEngine } from "../../src/reference/engine.js";

test("sampling stays inside the tokenizer's vocabulary", async () => {
  const c = TINY_CONFIGS.llama!; // vocab 320
  const tok = tokenizerFromJson(byteLevelTokenizerJson(280));
  assert.equal(tok.vocabSize, 280);
  const e = new ReferenceEngine(c, randomWeights(c, 9));
  // Make the padded ids the most likely ones: without the restriction, greedy would pick them.
  const head = (e.model.head as Float32Array).subarray(280 * c.hiddenSize);
  for (let i = 0; i < head.length; i++) head[i] = head[i]! * 40;
  for (const temperature of [0, 1.5]) {
    const r = await generate(e, tok, "hello", { maxNewTokens: 24, temperature, seed: 3, stopTokens: [] });
    assert.equal(r.ids.length, 24);
    assert.ok(
      r.ids.every((id) => id < 280),
      `ids ${r.ids.join(",")}`,
    );
  }
});
