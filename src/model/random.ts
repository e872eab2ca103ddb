/**
 * Seeded random weights for test and benchmark models. Scaled so that a tiny model is not trivially uniform
 * (DESIGN.md section 4): linears ~ N(0, 1/fan_in), norm weights near 1 with spread, non-zero biases, and an
 * output head whose logits have std ~3, so parity checks can tell engines apart.
 */
import { tensor } from "../tensor.js";
import type { ModelConfig } from "./config.js";
import { expectedWeights, W, type Weights } from "./weights.js";

/** mulberry32: small, fast, seedable; good enough for test weights and sampling. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal samples from a uniform generator (Box-Muller). */
export function gaussian(u: () => number): () => number {
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    const r = Math.sqrt(-2 * Math.log(u() + 1e-300));
    const th = 2 * Math.PI * u();
    spare = r * Math.sin(th);
    return r * Math.cos(th);
  };
}

export function randomWeights(c: ModelConfig, seed = 1): Weights {
  const g = gaussian(rng(seed));
  const w: Weights = new Map();
  for (const [name, shape] of expectedWeights(c)) {
    const t = tensor(shape);
    const d = t.data;
    if (name.endsWith("norm.weight")) {
      for (let i = 0; i < d.length; i++) d[i] = 1 + 0.2 * g();
    } else if (name.endsWith(".bias")) {
      for (let i = 0; i < d.length; i++) d[i] = 0.1 * g();
    } else if (name === W.tokEmbd || name === W.posEmbd) {
      for (let i = 0; i < d.length; i++) d[i] = g();
    } else if (name === W.lmHead) {
      // logits = h_normed . row; h_normed has unit-ish entries, so std(logit) = std(row) * sqrt(D).
      const s = 3 / Math.sqrt(c.hiddenSize);
      for (let i = 0; i < d.length; i++) d[i] = s * g();
    } else {
      const fanIn = shape[shape.length - 1]!;
      const s = 1 / Math.sqrt(fanIn);
      for (let i = 0; i < d.length; i++) d[i] = s * g();
    }
    w.set(name, t);
  }
  if (c.tiedEmbeddings) {
    // The embedding doubles as the output head: scale it so tied logits also have std ~3.
    const e = w.get(W.tokEmbd)!.data;
    const s = 3 / Math.sqrt(c.hiddenSize);
    for (let i = 0; i < e.length; i++) e[i] = e[i]! * s;
  }
  return w;
}

/** Small configs used across the tests: each exercises a different structural branch. */
export const TINY_CONFIGS: Record<string, ModelConfig> = {
  // GQA (4 heads, 2 KV heads), untied embeddings
  llama: {
    arch: "llama",
    vocabSize: 320,
    hiddenSize: 64,
    nLayers: 3,
    nHeads: 4,
    nKvHeads: 2,
    headDim: 16,
    intermediateSize: 160,
    normEps: 1e-5,
    maxPositions: 256,
    ropeTheta: 10000,
    ropeScaling: null,
    tiedEmbeddings: false,
    bosTokenId: 1,
    eosTokenIds: [2],
  },
  // llama3 RoPE scaling, tied embeddings
  llama3: {
    arch: "llama",
    vocabSize: 320,
    hiddenSize: 64,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 1,
    headDim: 16,
    intermediateSize: 128,
    normEps: 1e-5,
    maxPositions: 512,
    ropeTheta: 500000,
    ropeScaling: { type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 64 },
    tiedEmbeddings: true,
    bosTokenId: 1,
    eosTokenIds: [2],
  },
  // QKV biases
  qwen2: {
    arch: "qwen2",
    vocabSize: 320,
    hiddenSize: 64,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    headDim: 16,
    intermediateSize: 128,
    normEps: 1e-6,
    maxPositions: 256,
    ropeTheta: 1000000,
    ropeScaling: null,
    tiedEmbeddings: false,
    bosTokenId: null,
    eosTokenIds: [2],
  },
  // LayerNorm, learned positions, GELU, tied embeddings
  gpt2: {
    arch: "gpt2",
    vocabSize: 320,
    hiddenSize: 64,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 4,
    headDim: 16,
    intermediateSize: 256,
    normEps: 1e-5,
    maxPositions: 128,
    ropeTheta: 0,
    ropeScaling: null,
    tiedEmbeddings: true,
    bosTokenId: 1,
    eosTokenIds: [2],
  },
};
