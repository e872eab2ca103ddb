/**
 * One transformer block, pre-norm, as every supported architecture has it:
 *
 *   x ─► norm ─► q,k,v ─► RoPE ─► attention ─► o ─► [attn_out] ─(+x)─► norm ─► mlp ─► [mlp_out] ─(+)─► x'
 *
 * The driver (model/driver.ts) runs the two sublayers, the hooks at the bracketed sites and the residual adds.
 */
import type { ArchSpec } from "../model/arch/spec.js";
import type { ModelConfig } from "../model/config.js";
import { applyRope, type RopeTable } from "../model/rope.js";
import { type BlockPart, type Param, W, type Weights } from "../model/weights.js";
import { attention } from "./attention.js";
import type { ReferenceKV } from "./cache.js";
import {
  geluGgmlF16InPlace,
  geluTanhInPlace,
  layernorm,
  linear,
  mulInPlace,
  rmsnorm,
  siluInPlace,
} from "./ops.js";

/** The tensors of block l, looked up once. Shapes are the canonical ones of model/weights.ts. */
export interface BlockWeights {
  attnNorm: Float32Array; // [D]
  attnNormBias: Float32Array | null; // [D]
  q: Float32Array; // [H*hd, D]
  qBias: Float32Array | null; // [H*hd]
  k: Float32Array; // [KV*hd, D]
  kBias: Float32Array | null; // [KV*hd]
  v: Float32Array; // [KV*hd, D]
  vBias: Float32Array | null; // [KV*hd]
  o: Float32Array; // [D, H*hd]
  oBias: Float32Array | null; // [D]
  mlpNorm: Float32Array; // [D]
  mlpNormBias: Float32Array | null; // [D]
  gate: Float32Array | null; // [F, D] (gated MLP only)
  up: Float32Array; // [F, D]
  upBias: Float32Array | null; // [F]
  down: Float32Array; // [D, F]
  downBias: Float32Array | null; // [D]
}

export function blockWeights(w: Weights, l: number): BlockWeights {
  const get = (part: BlockPart): Float32Array => w.get(W.block(l, part))!.data;
  const opt = (part: BlockPart, p: Param = "bias"): Float32Array | null =>
    w.get(W.block(l, part, p))?.data ?? null;
  return {
    attnNorm: get("attn_norm"),
    attnNormBias: opt("attn_norm"),
    q: get("attn.q"),
    qBias: opt("attn.q"),
    k: get("attn.k"),
    kBias: opt("attn.k"),
    v: get("attn.v"),
    vBias: opt("attn.v"),
    o: get("attn.o"),
    oBias: opt("attn.o"),
    mlpNorm: get("mlp_norm"),
    mlpNormBias: opt("mlp_norm"),
    gate: opt("mlp.gate", "weight"),
    up: get("mlp.up"),
    upBias: opt("mlp.up"),
    down: get("mlp.down"),
    downBias: opt("mlp.down"),
  };
}

/** Everything a block needs besides its weights and the residual stream. */
export interface BlockContext {
  config: ModelConfig;
  spec: ArchSpec;
  batch: number; // B
  seq: number; // T
  /** [B, T] absolute positions, -1 for padding. */
  positions: Int32Array;
  /** RoPE cos/sin, null for learned positions. */
  rope: RopeTable | null;
  cache: ReferenceKV;
  /** Cache slot of this call's first token; slots start..start+T are written by this block. */
  start: number;
  /** GELU kernel: exact tanh GELU, or llama.cpp's fp16 table (for parity checks against llama.cpp). */
  gelu: "exact" | "ggml-f16-table";
}

/** y = norm(x) with the spec's norm kind.   x, y [N, D] */
export function norm(
  spec: ArchSpec,
  y: Float32Array,
  x: Float32Array,
  w: Float32Array,
  b: Float32Array | null,
  n: number,
  d: number,
  eps: number,
): void {
  if (spec.norm === "rms") rmsnorm(y, x, w, n, d, eps);
  else layernorm(y, x, w, b!, n, d, eps);
}

/** Attention sublayer: returns attn_out [N, D] (after o-proj and its bias, before the residual add). */
export function attentionSublayer(
  x: Float32Array,
  l: number,
  w: BlockWeights,
  ctx: BlockContext,
): Float32Array {
  const c = ctx.config;
  const { batch: B, seq: T } = ctx;
  const N = B * T;
  const D = c.hiddenSize;
  const hd = c.headDim;
  const qDim = c.nHeads * hd;
  const kvDim = c.nKvHeads * hd;

  const h = new Float32Array(N * D); // [N, D] normed input
  norm(ctx.spec, h, x, w.attnNorm, w.attnNormBias, N, D, c.normEps);
  const q = new Float32Array(N * qDim); // [B, T, H*hd]
  const k = new Float32Array(N * kvDim); // [B, T, KV*hd]
  const v = new Float32Array(N * kvDim); // [B, T, KV*hd]
  linear(q, h, w.q, w.qBias, N, D, qDim);
  linear(k, h, w.k, w.kBias, N, D, kvDim);
  linear(v, h, w.v, w.vBias, N, D, kvDim);

  if (ctx.rope) {
    for (let r = 0; r < N; r++) {
      const pos = Math.max(0, ctx.positions[r]!); // padding: any position, its key is masked out
      for (let hh = 0; hh < c.nHeads; hh++) applyRope(q, r * qDim + hh * hd, pos, ctx.rope);
      for (let hh = 0; hh < c.nKvHeads; hh++) applyRope(k, r * kvDim + hh * hd, pos, ctx.rope);
    }
  }

  // Append this call's keys and values to the cache at slots start..start+T of each row.
  const cache = ctx.cache;
  for (let b = 0; b < B; b++) {
    const dst = (b * cache.capacity + ctx.start) * kvDim;
    cache.keys[l]!.set(k.subarray(b * T * kvDim, (b + 1) * T * kvDim), dst);
    cache.values[l]!.set(v.subarray(b * T * kvDim, (b + 1) * T * kvDim), dst);
  }

  const att = new Float32Array(N * qDim); // [B, T, H*hd]
  attention(att, q, cache, l, {
    batch: B,
    seq: T,
    start: ctx.start,
    nHeads: c.nHeads,
    nKvHeads: c.nKvHeads,
    headDim: hd,
  });
  const out = new Float32Array(N * D); // [N, D]
  linear(out, att, w.o, w.oBias, N, qDim, D);
  return out;
}

/** MLP sublayer: returns mlp_out [N, D] (before the residual add). */
export function mlpSublayer(x: Float32Array, w: BlockWeights, ctx: BlockContext): Float32Array {
  const c = ctx.config;
  const N = ctx.batch * ctx.seq;
  const D = c.hiddenSize;
  const F = c.intermediateSize;
  const h = new Float32Array(N * D); // [N, D] normed input
  norm(ctx.spec, h, x, w.mlpNorm, w.mlpNormBias, N, D, c.normEps);
  const up = new Float32Array(N * F); // [N, F]
  linear(up, h, w.up, w.upBias, N, D, F);
  if (ctx.spec.mlp === "gated-silu") {
    const gate = new Float32Array(N * F); // [N, F]
    linear(gate, h, w.gate!, null, N, D, F);
    siluInPlace(gate);
    mulInPlace(up, gate); // up = silu(gate) * up
  } else if (ctx.gelu === "ggml-f16-table") {
    geluGgmlF16InPlace(up);
  } else {
    geluTanhInPlace(up);
  }
  const out = new Float32Array(N * D); // [N, D]
  linear(out, up, w.down, w.downBias, N, F, D);
  return out;
}
