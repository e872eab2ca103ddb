/**
 * Causal self-attention with a KV cache, from standard ONNX ops, so that left padding, arbitrary additive masks
 * and grouped-query attention (several query heads per KV head) all work. RoPE uses cos/sin rows the caller
 * gathers by position id, so positions continue correctly across cached calls.
 */
import type { ModelConfig } from "../config.js";
import type { GraphBuilder, Value } from "./builder.js";
import { fusedLinear, linear, type WeightFn } from "./layers.js";

/** Graph inputs shared by every block of one call. */
export interface AttnInputs {
  /** [B, 1, T, S] additive mask: 0 = attend, large negative = not (causal + padding). S = past + T. */
  mask: Value;
  /** [B, T, 1, hd] cos(pos * freq) with halves duplicated; null for learned positions. */
  cos: Value | null;
  /** [B, T, 1, hd] sin(pos * freq) with the first half negated (rotate_half folded in); null likewise. */
  sin: Value | null;
}

/**
 * HF rotate_half RoPE on x [B, T, H, hd]:
 *   x ─► Split(hd/2, hd/2) ─► Concat(x2, x1) ─► * sin ─┐
 *   x ───────────────────────────────────────► * cos ─(+)─► y
 */
export function rope(g: GraphBuilder, x: Value, cos: Value, sin: Value, headDim: number): Value {
  const half = g.ints("half", [headDim / 2, headDim / 2]);
  const [x1, x2] = g.opN("Split", [x, half], 2, { axis: -1 });
  const rot = g.op("Concat", [x2!, x1!], { axis: -1 });
  return g.op("Add", [g.op("Mul", [x, cos], {}, "MulCos"), g.op("Mul", [rot, sin], {}, "MulSin")]);
}

/**
 * x [B,T,D] ─► q/k/v proj ─► reshape [B,T,heads,hd] ─► rope(q,k) ─► transpose [B,heads,T,hd]
 *   k, v: Concat(past, new) ─► present K [B,KV,hd,S] (kept transposed), V [B,KV,S,hd] (graph outputs)
 *   q [B,KV,G,T,hd] @ k^T [B,KV,1,hd,S] + mask ─► softmax ─► @ v [B,KV,1,S,hd] ─► [B,T,H*hd] ─► o proj ─► y [B,T,D]
 * The 1/sqrt(hd) score scale is folded into the q weights.
 */
export function attention(
  g: GraphBuilder,
  x: Value,
  c: ModelConfig,
  hasQkvBias: boolean,
  hasOBias: boolean,
  w: WeightFn,
  prefix: string,
  io: AttnInputs,
  /** past K [B, KV, hd, P] (transposed) and past V [B, KV, P, hd]. */
  past: { k: Value; v: Value },
): { out: Value; k: Value; v: Value } {
  const { nHeads: H, nKvHeads: KV, headDim: hd } = c;
  const G = H / KV;
  const [q, k, v] = fusedLinear(
    g.scope("qkv_proj"),
    x,
    w,
    `${prefix}.qkv`,
    [
      { prefix: `${prefix}.q`, scale: 1 / Math.sqrt(hd) },
      { prefix: `${prefix}.k` },
      { prefix: `${prefix}.v` },
    ],
    hasQkvBias,
  ) as [Value, Value, Value];

  const heads = (s: GraphBuilder, t: Value, n: number) =>
    s.op("Reshape", [t, s.ints("shape", [0, 0, n, hd])]); // [B, T, n, hd]
  let q4 = heads(g.scope("q_heads"), q, H);
  let k4 = heads(g.scope("k_heads"), k, KV);
  if (io.cos && io.sin) {
    q4 = rope(g.scope("q_rope"), q4, io.cos, io.sin, hd);
    k4 = rope(g.scope("k_rope"), k4, io.cos, io.sin, hd);
  }
  const v4 = heads(g.scope("v_heads"), v, KV);
  const toBHTD = (s: GraphBuilder, t: Value) => s.op("Transpose", [t], { perm: [0, 2, 1, 3] });

  const cache = g.scope("cache");
  // K is cached transposed, [B, KV, hd, S], so Q K^T needs no per-call transpose of the whole cache.
  const kNew = g.scope("k_heads").op("Transpose", [k4], { perm: [0, 2, 3, 1] }); // [B, KV, hd, T]
  const kT = cache.op("Concat", [past.k, kNew], { axis: 3 }, "ConcatK"); // [B, KV, hd, S]
  const vAll = cache.op("Concat", [past.v, toBHTD(g.scope("v_heads"), v4)], { axis: 2 }, "ConcatV");

  const s = g.scope("sdpa");
  const qT = toBHTD(g.scope("q_heads"), q4); // [B, H, T, hd]
  let ctx: Value;
  if (G === 1) {
    const scores = s.op("Add", [s.op("MatMul", [qT, kT], {}, "QK"), io.mask], {}, "Mask"); // [B, H, T, S]
    const p = s.op("Softmax", [scores], { axis: -1 });
    ctx = s.op("MatMul", [p, vAll], {}, "PV"); // [B, H, T, hd]
  } else {
    const axis2 = s.ints("axis2", [2]);
    const q5 = s.op("Reshape", [qT, s.ints("q_groups", [0, KV, G, -1, hd])], {}, "GroupQ"); // [B,KV,G,T,hd]
    const k5 = s.op("Unsqueeze", [kT, axis2], {}, "UnsqueezeK"); // [B, KV, 1, hd, S]
    const v5 = s.op("Unsqueeze", [vAll, axis2], {}, "UnsqueezeV"); // [B, KV, 1, S, hd]
    const m5 = s.op("Unsqueeze", [io.mask, s.ints("axis1", [1])], {}, "UnsqueezeMask"); // [B, 1, 1, T, S]
    const scores = s.op("Add", [s.op("MatMul", [q5, k5], {}, "QK"), m5], {}, "Mask"); // [B, KV, G, T, S]
    const p = s.op("Softmax", [scores], { axis: -1 });
    const c5 = s.op("MatMul", [p, v5], {}, "PV"); // [B, KV, G, T, hd]
    ctx = s.op("Reshape", [c5, s.ints("ungroup", [0, H, -1, hd])], {}, "Ungroup"); // [B, H, T, hd]
  }
  const merged = g
    .scope("merge")
    .op("Reshape", [toBHTD(g.scope("merge"), ctx), g.scope("merge").ints("shape", [0, 0, H * hd])]);
  const out = linear(g.scope("o_proj"), merged, w, `${prefix}.o`, hasOBias);
  return { out, k: kT, v: vAll };
}
