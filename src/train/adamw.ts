/**
 * Seeded initialisation, AdamW with decoupled weight decay, a warmup + cosine learning-rate schedule and global
 * gradient-norm clipping, for the trainer's Params maps.
 */
import type { ModelConfig } from "../model/config.js";
import { gaussian, rng } from "../model/random.js";
import { expectedWeights } from "../model/weights.js";
import type { Params } from "./llama.js";

/**
 * GPT-2 style init: norms 1, embeddings and linears N(0, std), the projections that write into the residual
 * stream (attn.o, mlp.down) scaled by 1/sqrt(2 L) so the stream does not grow with depth.
 */
export function initParams(c: ModelConfig, seed: number, std = 0.02): Params {
  const g = gaussian(rng(seed));
  const p: Params = new Map();
  for (const [name, shape] of expectedWeights(c)) {
    const d = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (name.endsWith("norm.weight")) d.fill(1);
    else {
      const s =
        name.endsWith("attn.o.weight") || name.endsWith("mlp.down.weight")
          ? std / Math.sqrt(2 * c.nLayers)
          : std;
      for (let i = 0; i < d.length; i++) d[i] = s * g();
    }
    p.set(name, d);
  }
  return p;
}

/** Zeroed buffers of the same shapes. */
export function zerosLike(p: Params): Params {
  return new Map([...p].map(([k, v]) => [k, new Float32Array(v.length)]));
}

export function zeroGrads(g: Params): void {
  for (const v of g.values()) v.fill(0);
}

export function countParams(p: Params): number {
  let n = 0;
  for (const v of p.values()) n += v.length;
  return n;
}

/** Scale gradients so their global L2 norm is at most maxNorm; returns the norm before clipping. */
export function clipGradNorm(g: Params, maxNorm: number): number {
  let ss = 0;
  for (const v of g.values()) for (let i = 0; i < v.length; i++) ss += v[i]! * v[i]!;
  const norm = Math.sqrt(ss);
  if (norm > maxNorm) {
    const s = maxNorm / norm;
    for (const v of g.values()) for (let i = 0; i < v.length; i++) v[i] = v[i]! * s;
  }
  return norm;
}

/** Linear warmup to `peak` over `warmup` steps, then cosine decay to `peak * minRatio` at `total`. */
export function lrAt(
  step: number,
  o: { peak: number; warmup: number; total: number; minRatio: number },
): number {
  if (step < o.warmup) return (o.peak * (step + 1)) / o.warmup;
  const t = Math.min(1, (step - o.warmup) / Math.max(1, o.total - o.warmup));
  return o.peak * (o.minRatio + (1 - o.minRatio) * 0.5 * (1 + Math.cos(Math.PI * t)));
}

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const DEFAULT_ADAMW: AdamWOptions = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };

/** AdamW; weight decay applies to matrices only (not to norm weights). */
export class AdamW {
  private readonly m: Params;
  private readonly v: Params;
  private t = 0;

  constructor(
    params: Params,
    readonly opts: AdamWOptions = DEFAULT_ADAMW,
  ) {
    this.m = zerosLike(params);
    this.v = zerosLike(params);
  }

  step(params: Params, grads: Params, lr: number): void {
    this.t++;
    const { beta1, beta2, eps, weightDecay } = this.opts;
    const bc1 = 1 - beta1 ** this.t;
    const bc2 = 1 - beta2 ** this.t;
    for (const [name, p] of params) {
      const g = grads.get(name)!;
      const m = this.m.get(name)!;
      const v = this.v.get(name)!;
      const wd = name.endsWith("norm.weight") ? 0 : weightDecay;
      for (let i = 0; i < p.length; i++) {
        const gi = g[i]!;
        m[i] = beta1 * m[i]! + (1 - beta1) * gi;
        v[i] = beta2 * v[i]! + (1 - beta2) * gi * gi;
        const update = m[i]! / bc1 / (Math.sqrt(v[i]! / bc2) + eps);
        p[i] = p[i]! - lr * (update + wd * p[i]!);
      }
    }
  }
}
