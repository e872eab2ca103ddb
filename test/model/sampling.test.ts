import assert from "node:assert/strict";
import { test } from "node:test";
import { isSteerlabError } from "../../src/errors.js";
import { argmax, logSoftmax, makeSampler, samplingDistribution } from "../../src/model/sampling.js";

// probabilities 0.5, 0.3, 0.15, 0.05 in a shuffled order: ids 2, 0, 3, 1
const probs = [0.3, 0.05, 0.5, 0.15];
const logits = Float32Array.from(probs.map(Math.log));

test("greedy picks the argmax, lowest id on ties, and ignores the seed", () => {
  assert.equal(argmax(logits), 2);
  assert.equal(argmax(new Float32Array([1, 3, 3, 0])), 1);
  assert.equal(makeSampler({ seed: 1 }).next(logits), 2);
  assert.equal(makeSampler({ seed: 2, temperature: 0, topK: 3 }).next(logits), 2);
  assert.equal(argmax(new Float32Array([9, 0, 5, 1]), 1, 3), 1); // row offset
});

test("logSoftmax matches log(p) and sums to one", () => {
  const lp = logSoftmax(logits);
  for (const [i, v] of lp.entries()) assert.ok(Math.abs(v - Math.log(probs[i]!)) < 1e-6);
  assert.ok(Math.abs(lp.reduce((s, v) => s + Math.exp(v), 0) - 1) < 1e-12);
});

test("top-k keeps exactly the k most likely tokens, renormalised", () => {
  const d = samplingDistribution(logits, { temperature: 1, topK: 2 });
  assert.deepEqual(d.ids, [2, 0]);
  assert.ok(Math.abs(d.probs[0]! - 0.5 / 0.8) < 1e-6);
  const s = makeSampler({ temperature: 1, topK: 2, seed: 3 });
  const seen = new Set<number>();
  for (let i = 0; i < 2000; i++) seen.add(s.next(logits));
  assert.deepEqual([...seen].sort(), [0, 2]);
});

test("top-p keeps the smallest most-likely set whose mass reaches p", () => {
  const ids = (p: number) => samplingDistribution(logits, { temperature: 1, topP: p }).ids;
  assert.deepEqual(ids(0.5), [2]);
  assert.deepEqual(ids(0.51), [2, 0]);
  assert.deepEqual(ids(0.8), [2, 0]);
  assert.deepEqual(ids(0.81), [2, 0, 3]);
  assert.deepEqual(ids(1), [0, 1, 2, 3]);
  // top-k first, then top-p on the renormalised mass: 0.5/0.8 = 0.625 >= 0.6
  assert.deepEqual(samplingDistribution(logits, { temperature: 1, topK: 2, topP: 0.6 }).ids, [2]);
  const s = makeSampler({ temperature: 1, topP: 0.8, seed: 9 });
  for (let i = 0; i < 2000; i++) assert.ok([0, 2].includes(s.next(logits)));
});

test("temperature sampling follows softmax(logits / T)", () => {
  for (const T of [1, 0.5, 2]) {
    const s = makeSampler({ temperature: T, seed: 11 });
    const counts = [0, 0, 0, 0];
    const n = 40000;
    for (let i = 0; i < n; i++) counts[s.next(logits)]!++;
    const w = probs.map((p) => p ** (1 / T));
    const z = w.reduce((a, b) => a + b, 0);
    counts.forEach((c, i) => {
      const want = w[i]! / z;
      assert.ok(
        Math.abs(c / n - want) < 4 * Math.sqrt((want * (1 - want)) / n) + 1e-3,
        `T=${T} id ${i}: ${c / n} vs ${want}`,
      );
    });
  }
});

test("seeded sampling is reproducible and the seed matters", () => {
  const draw = (seed: number) => {
    const s = makeSampler({ temperature: 1.5, seed });
    return Array.from({ length: 50 }, () => s.next(logits));
  };
  assert.deepEqual(draw(42), draw(42));
  assert.notDeepEqual(draw(42), draw(43));
});

test("bad sampling options are input errors", () => {
  const bad = (e: unknown) => isSteerlabError(e, "bad_input");
  assert.throws(() => makeSampler({ temperature: -1 }), bad);
  assert.throws(() => makeSampler({ topK: 1.5 }), bad);
  assert.throws(() => makeSampler({ topP: 0 }), bad);
  assert.throws(() => samplingDistribution(logits, { topP: 1.2 }), bad);
});
