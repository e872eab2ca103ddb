import assert from "node:assert/strict";
import { test } from "node:test";
import type { ModelConfig } from "../../src/model/config.js";
import { gaussian, rng } from "../../src/model/random.js";
import { initParams, zerosLike } from "../../src/train/adamw.js";
import { LlamaTrainer, type Params } from "../../src/train/llama.js";
import { ortMatmul, plainMatmul } from "../../src/train/matmul.js";

// Tiny llama with grouped-query attention, so the backward of repeat_kv is checked too.
const CFG: ModelConfig = {
  arch: "llama",
  vocabSize: 19,
  hiddenSize: 16,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  headDim: 4,
  intermediateSize: 24,
  normEps: 1e-5,
  maxPositions: 16,
  ropeTheta: 10000,
  ropeScaling: null,
  tiedEmbeddings: false,
  bosTokenId: 1,
  eosTokenIds: [2],
};
const B = 2;
const T = 7;

/** Weights with enough spread that every gradient is well above float32 noise. */
function params(): Params {
  const p = initParams(CFG, 3, 0.3);
  const g = gaussian(rng(9));
  for (const [name, v] of p)
    if (name.endsWith("norm.weight")) for (let i = 0; i < v.length; i++) v[i] = 1 + 0.3 * g();
  return p;
}

function batch(): { tokens: Int32Array; targets: Int32Array; weights: Float32Array } {
  const r = rng(5);
  const tokens = Int32Array.from({ length: B * T }, () => Math.floor(r() * CFG.vocabSize));
  const targets = Int32Array.from({ length: B * T }, (_, i) =>
    i % T === 0 ? -1 : Math.floor(r() * CFG.vocabSize),
  );
  const weights = Float32Array.from({ length: B * T }, (_, i) => (i % 5 === 2 ? 4 : 1)); // per-target loss weights
  return { tokens, targets, weights };
}

async function lossOf(tr: LlamaTrainer, p: Params): Promise<number> {
  const { tokens, targets, weights } = batch();
  const acts = await tr.forward(p, tokens, B, T);
  return tr.backward(p, zerosLike(p), acts, targets, weights);
}

test("gradients match central finite differences for every tensor kind", async () => {
  const tr = new LlamaTrainer(CFG, plainMatmul);
  const p = params();
  const grads = zerosLike(p);
  const { tokens, targets, weights } = batch();
  await tr.backward(p, grads, await tr.forward(p, tokens, B, T), targets, weights);
  const names = [
    "tok_embd",
    "blocks.0.attn_norm.weight",
    "blocks.0.attn.q.weight",
    "blocks.0.attn.k.weight",
    "blocks.0.attn.v.weight",
    "blocks.0.attn.o.weight",
    "blocks.1.mlp_norm.weight",
    "blocks.1.mlp.gate.weight",
    "blocks.1.mlp.up.weight",
    "blocks.1.mlp.down.weight",
    "final_norm.weight",
    "lm_head.weight",
  ];
  const eps = 1e-2;
  for (const name of names) {
    const w = p.get(name)!;
    const g = grads.get(name)!;
    // the 3 entries with the largest gradient (tokens that occur, rows that matter) and one arbitrary entry
    const order = [...g.keys()].sort((a, b) => Math.abs(g[b]!) - Math.abs(g[a]!));
    for (const i of [order[0]!, order[1]!, order[2]!, tokens[3]! * CFG.hiddenSize + 1]) {
      if (i >= w.length) continue;
      const orig = w[i]!;
      w[i] = orig + eps;
      const up = await lossOf(tr, p);
      w[i] = orig - eps;
      const down = await lossOf(tr, p);
      w[i] = orig;
      const fd = (up - down) / (2 * eps);
      const tol = 2e-3 + 0.03 * Math.abs(fd);
      assert.ok(Math.abs(fd - g[i]!) <= tol, `${name}[${i}]: analytic ${g[i]} vs numeric ${fd}`);
    }
  }
});

test("the onnxruntime matmul backend gives the same loss and gradients as plain TypeScript", async () => {
  const p = params();
  const { tokens, targets } = batch();
  const ga = zerosLike(p);
  const gb = zerosLike(p);
  const a = new LlamaTrainer(CFG, plainMatmul);
  const b = new LlamaTrainer(CFG, await ortMatmul(1));
  const la = await a.backward(p, ga, await a.forward(p, tokens, B, T), targets);
  const lb = await b.backward(p, gb, await b.forward(p, tokens, B, T), targets);
  assert.ok(Math.abs(la - lb) < 1e-4, `${la} vs ${lb}`);
  for (const [name, g] of ga) {
    const h = gb.get(name)!;
    let maxErr = 0;
    let maxAbs = 0;
    for (let i = 0; i < g.length; i++) {
      maxErr = Math.max(maxErr, Math.abs(g[i]! - h[i]!));
      maxAbs = Math.max(maxAbs, Math.abs(g[i]!));
    }
    assert.ok(maxErr <= 1e-4 * (1 + maxAbs), `${name}: max diff ${maxErr} (max |g| ${maxAbs})`);
  }
});
