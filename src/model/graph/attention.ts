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
  /** [B, 1, T, C+T] additive mask over the C cache slots then the T new tokens: 0 = attend, large negative = not. */
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
 * x [B,T,D] ─► qkv proj ─► reshape [B,T,heads,hd] ─► rope(q,k) ─► new K^T [B,KV,hd,T], new V [B,KV,T,hd] (outputs)
 *   q [B,KV,G,T,hd] ─┬─► @ past K^T [B,KV,1,hd,C] ─┐
 *                    └─► @ new K^T  [B,KV,1,hd,T] ─┴─► Concat ─► + mask ─► softmax ─► Split(C, T)
 *   ─► @ past V [B,KV,1,C,hd] (+) @ new V [B,KV,1,T,hd] ─► [B,T,H*hd] ─► o proj ─► y [B,T,D]
 * G = H / KV query heads share each KV head (GQA). The 1/sqrt(hd) score scale is folded into the q weights.
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
  /** Cached K^T [B, KV, hd, C] and V [B, KV, C, hd]; slots the mask hides may hold anything. */
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

  // New keys transposed, [B, KV, hd, T]: the cache keeps K as K^T so Q K^T needs no transpose of it.
  const kNew = g.scope("k_heads").op("Transpose", [k4], { perm: [0, 2, 3, 1] });
  const vNew = toBHTD(g.scope("v_heads"), v4); // [B, KV, T, hd]

  // Past and new keys are attended separately and never concatenated: the cache stays where the caller keeps
  // it (no per-step copy of the whole cache); only the small score rows are joined for the softmax.
  const s = g.scope("sdpa");
  const axis2 = s.ints("axis2", [2]);
  const qT = toBHTD(g.scope("q_heads"), q4); // [B, H, T, hd]
  const q5 = s.op("Reshape", [qT, s.ints("q_groups", [0, KV, G, -1, hd])], {}, "GroupQ"); // [B,KV,G,T,hd]
  const kp = s.op("Unsqueeze", [past.k, axis2], {}, "UnsqueezePastK"); // [B, KV, 1, hd, C]
  const vp = s.op("Unsqueeze", [past.v, axis2], {}, "UnsqueezePastV"); // [B, KV, 1, C, hd]
  const kn = s.op("Unsqueeze", [kNew, axis2], {}, "UnsqueezeNewK"); // [B, KV, 1, hd, T]
  const vn = s.op("Unsqueeze", [vNew, axis2], {}, "UnsqueezeNewV"); // [B, KV, 1, T, hd]
  const m5 = s.op("Unsqueeze", [io.mask, s.ints("axis1", [1])], {}, "UnsqueezeMask"); // [B, 1, 1, T, C+T]
  const scores = s.op(
    "Concat",
    [s.op("MatMul", [q5, kp], {}, "QKPast"), s.op("MatMul", [q5, kn], {}, "QKNew")],
    { axis: -1 },
    "ConcatScores",
  ); // [B, KV, G, T, C+T]
  const p = s.op("Softmax", [s.op("Add", [scores, m5], {}, "Mask")], { axis: -1 });
  const sizes = s.op(
    "Concat",
    [s.op("Shape", [past.k], { start: 3 }, "PastLen"), s.op("Shape", [kNew], { start: 3 }, "NewLen")],
    { axis: 0 },
    "SplitSizes",
  ); // [C, T]
  const [pp, pn] = s.opN("Split", [p, sizes], 2, { axis: -1 }); // [B,KV,G,T,C], [B,KV,G,T,T]
  const c5 = s.op("Add", [s.op("MatMul", [pp!, vp], {}, "PVPast"), s.op("MatMul", [pn!, vn], {}, "PVNew")]);
  const ctx = s.op("Reshape", [c5, s.ints("ungroup", [0, H, -1, hd])], {}, "Ungroup"); // [B, H, T, hd]
  const merged = g
    .scope("merge")
    .op("Reshape", [toBHTD(g.scope("merge"), ctx), g.scope("merge").ints("shape", [0, 0, H * hd])]);
  const out = linear(g.scope("o_proj"), merged, w, `${prefix}.o`, hasOBias);
  return { out, k: kNew, v: vNew };
}
