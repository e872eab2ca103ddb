import assert from "node:assert/strict";
import { test } from "node:test";
import type { ModelConfig } from "../../src/model/config.js";
import { rng } from "../../src/model/random.js";
import { AdamW, clipGradNorm, initParams, lrAt, zeroGrads, zerosLike } from "../../src/train/adamw.js";
import { LlamaTrainer } from "../../src/train/llama.js";
import { ortMatmul } from "../../src/train/matmul.js";

const CFG: ModelConfig = {
  arch: "llama",
  vocabSize: 32,
  hiddenSize: 32,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 4,
  headDim: 8,
  intermediateSize: 64,
  normEps: 1e-5,
  maxPositions: 32,
  ropeTheta: 10000,
  ropeScaling: null,
  tiedEmbeddings: false,
  bosTokenId: null,
  eosTokenIds: [],
};

test("a tiny model trained for a few AdamW steps learns a counting sequence (loss falls)", async () => {
  const tr = new LlamaTrainer(CFG, await ortMatmul(1));
  const p = initParams(CFG, 1);
  const g = zerosLike(p);
  const opt = new AdamW(p);
  const B = 8;
  const T = 16;
  const r = rng(2);
  const sched = { peak: 1e-2, warmup: 5, total: 40, minRatio: 0.1 };
  const losses: number[] = [];
  for (let step = 0; step < 40; step++) {
    // each row counts up from a random start (mod V): every next token is determined by the current one
    const tokens = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      const start = Math.floor(r() * CFG.vocabSize);
      for (let t = 0; t < T; t++) tokens[b * T + t] = (start + t) % CFG.vocabSize;
    }
    const targets = new Int32Array(B * T).fill(-1);
    for (let b = 0; b < B; b++) for (let t = 0; t < T - 1; t++) targets[b * T + t] = tokens[b * T + t + 1]!;
    zeroGrads(g);
    losses.push(await tr.backward(p, g, await tr.forward(p, tokens, B, T), targets));
    assert.ok(Number.isFinite(clipGradNorm(g, 1)));
    opt.step(p, g, lrAt(step, sched));
  }
  const first = losses.slice(0, 3).reduce((a, b) => a + b) / 3;
  const last = losses.slice(-3).reduce((a, b) => a + b) / 3;
  assert.ok(first > 3, `initial loss ${first} should be near ln(32) = 3.47`);
  assert.ok(last < 0.6 * first, `loss ${first} -> ${last}`);
});

test("the learning-rate schedule warms up, peaks and decays to its floor", () => {
  const o = { peak: 1, warmup: 10, total: 100, minRatio: 0.1 };
  assert.equal(lrAt(0, o), 0.1);
  assert.equal(lrAt(9, o), 1);
  assert.ok(lrAt(50, o) < 1 && lrAt(50, o) > 0.1);
  assert.ok(Math.abs(lrAt(100, o) - 0.1) < 1e-12);
});

test("gradient clipping caps the global norm", () => {
  const g = new Map([["a", Float32Array.from([3, 4])]]);
  assert.equal(clipGradNorm(g, 1), 5);
  assert.ok(Math.abs(Math.hypot(...g.get("a")!) - 1) < 1e-6);
});
