import assert from "node:assert/strict";
import { test } from "node:test";
import type { ModelConfig } from "../../src/model/config.js";
import { rng } from "../../src/model/random.js";
import { initParams, zerosLike } from "../../src/train/adamw.js";
import { LlamaTrainer } from "../../src/train/llama.js";
import { ortMatmul } from "../../src/train/matmul.js";
import { ParallelTrainer, shareParams } from "../../src/train/parallel.js";

const CFG: ModelConfig = {
  arch: "llama",
  vocabSize: 40,
  hiddenSize: 32,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 4,
  headDim: 8,
  intermediateSize: 48,
  normEps: 1e-5,
  maxPositions: 16,
  ropeTheta: 10000,
  ropeScaling: null,
  tiedEmbeddings: false,
  bosTokenId: null,
  eosTokenIds: [],
};

test("worker-thread data parallelism gives the single-thread (weighted) loss and gradient", async () => {
  const B = 5;
  const T = 9;
  const r = rng(4);
  const tokens = Int32Array.from({ length: B * T }, () => Math.floor(r() * CFG.vocabSize));
  // uneven scoring across rows, so the shard weighting matters
  const targets = Int32Array.from({ length: B * T }, (_, i) => (r() < 0.3 * (1 + (i % 3)) ? tokens[i]! : -1));
  const weights = Float32Array.from({ length: B * T }, (_, i) => (i % 4 === 0 ? 5 : 1));
  const params = shareParams(initParams(CFG, 2, 0.2));
  const single = zerosLike(params);
  const tr = new LlamaTrainer(CFG, await ortMatmul(1));
  const l1 = await tr.backward(params, single, await tr.forward(params, tokens, B, T), targets, weights);
  const par = new ParallelTrainer(CFG, params, 2);
  try {
    const multi = zerosLike(params);
    const l2 = await par.step(multi, tokens, targets, B, T, weights);
    assert.ok(Math.abs(l1 - l2) < 1e-5, `${l1} vs ${l2}`);
    for (const [k, g] of single) {
      const h = multi.get(k)!;
      for (let i = 0; i < g.length; i++)
        assert.ok(Math.abs(g[i]! - h[i]!) < 1e-5, `${k}[${i}] ${g[i]} vs ${h[i]}`);
    }
  } finally {
    await par.close();
  }
});
