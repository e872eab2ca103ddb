/**
 * Seeded random weights for test and benchmark models. Scaled so that a tiny model is not trivially uniform
 * (DESIGN.md section 4): linears ~ N(0, 1/fan_in), norm weights near 1 with spread, non-zero biases, and an
 * output head whose logits have std ~3, so parity checks can tell engines apart.
 */
import { numel, type Tensor, tensor } from "../tensor.js";
import type { ModelConfig } from "./config.js";
import { expectedWeights, LazyWeights, W, type Weight, type Weights } from "./weights.js";

/** mulberry32: small, fast, seedable; good enough for test weights and sampling. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + STEP) >>> 0;
    return uniformAt(a);
  };
}

/** Increment of mulberry32's state per draw: its state after k draws is seed + k * STEP (mod 2^32). */
const STEP = 0x6d2b79f5;

/** Uniform draw of mulberry32 whose state has just become `a`. */
function uniformAt(a: number): number {
  let t = a;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
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

/**
 * The stream gaussian(rng(seed)) from its n-th sample on, in O(1): each pair of samples takes two draws, so the
 * generator state after n (even) samples is known without drawing them. Lets a model's tensors be generated one
 * at a time, in any order, with the values of one sequential pass. mulberry32's period is 2^32 draws: a stream
 * longer than that (a 7B model) repeats its values, which is harmless for speed and memory measurements.
 */
export function gaussianFrom(seed: number, n: number): () => number {
  const even = n - (n % 2);
  const g = gaussian(rng(((seed >>> 0) + Math.imul(even % 4294967296, STEP)) >>> 0));
  if (n % 2) g(); // the first of the pair is sample n - 1; its spare is sample n
  return g;
}

/**
 * d[i] = add + mul * (sample n + i of gaussian(rng(seed))) (mul * sample when add is 0): the values gaussianFrom
 * gives one call at a time, in one loop without closures (a 7B model draws 6.7e9 of them).
 */
export function fillGaussian(d: Float32Array, seed: number, n: number, mul: number, add: number): void {
  const even = n - (n % 2);
  let a = ((seed >>> 0) + Math.imul(even % 4294967296, STEP)) >>> 0;
  let i = 0;
  let skip = n % 2 === 1; // an odd start begins with the second sample (the spare) of its pair
  while (i < d.length) {
    a = (a + STEP) >>> 0;
    const u1 = uniformAt(a);
    a = (a + STEP) >>> 0;
    const u2 = uniformAt(a);
    const r = Math.sqrt(-2 * Math.log(u1 + 1e-300));
    const th = 2 * Math.PI * u2;
    if (!skip) {
      const z = r * Math.cos(th);
      d[i++] = add === 0 ? mul * z : add + mul * z;
    }
    skip = false;
    if (i < d.length) {
      const z = r * Math.sin(th);
      d[i++] = add === 0 ? mul * z : add + mul * z;
    }
  }
}

/** Tensor `name` of randomWeights(c, seed): its samples start at `n` in the model's one stream. */
function randomTensor(
  c: ModelConfig,
  name: string,
  shape: readonly number[],
  seed: number,
  n: number,
): Tensor {
  const t = tensor(shape);
  const d = t.data;
  if (name.endsWith("norm.weight")) {
    fillGaussian(d, seed, n, 0.2, 1);
  } else if (name.endsWith(".bias")) {
    fillGaussian(d, seed, n, 0.1, 0);
  } else if (name === W.tokEmbd || name === W.posEmbd) {
    fillGaussian(d, seed, n, 1, 0);
    if (name === W.tokEmbd && c.tiedEmbeddings) {
      // The embedding doubles as the output head: scale it so tied logits also have std ~3.
      const s = 3 / Math.sqrt(c.hiddenSize);
      for (let i = 0; i < d.length; i++) d[i] = d[i]! * s;
    }
  } else if (name === W.lmHead) {
    // logits = h_normed . row; h_normed has unit-ish entries, so std(logit) = std(row) * sqrt(D).
    fillGaussian(d, seed, n, 3 / Math.sqrt(c.hiddenSize), 0);
  } else {
    const fanIn = shape[shape.length - 1]!;
    fillGaussian(d, seed, n, 1 / Math.sqrt(fanIn), 0);
  }
  return t;
}

/** Where each tensor's samples start in the one stream of a model (tensors in expectedWeights order). */
function sampleOffsets(c: ModelConfig): Map<string, [readonly number[], number]> {
  const at = new Map<string, [readonly number[], number]>();
  let n = 0;
  for (const [name, shape] of expectedWeights(c)) {
    at.set(name, [shape, n]);
    n += numel(shape);
  }
  return at;
}

/** Every tensor of the model drawn, in expectedWeights order, from the one stream gaussian(rng(seed)). */
export function randomWeights(c: ModelConfig, seed = 1): Weights {
  const w: Weights = new Map();
  for (const [name, [shape, n]] of sampleOffsets(c)) w.set(name, randomTensor(c, name, shape, seed, n));
  return w;
}

/**
 * The weights of randomWeights(c, seed), value for value, each tensor generated when asked for and not kept:
 * writing a model of any size (saveGgufModel streams tensor by tensor) holds one tensor at a time.
 */
export function lazyRandomWeights(c: ModelConfig, seed = 1): LazyWeights {
  const readers = new Map<string, () => Weight>();
  const shapes = new Map<string, readonly number[]>();
  for (const [name, [shape, n]] of sampleOffsets(c)) {
    readers.set(name, () => randomTensor(c, name, shape, seed, n));
    shapes.set(name, shape);
  }
  return new LazyWeights(readers, shapes, new Map());
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
