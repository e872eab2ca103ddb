/**
 * Small pure graph functions for the per-token layers: norms, linears, MLPs. Each takes value names and returns
 * value names; the builder `g` only names and books the nodes. Weights are canonical tensors (weights.ts).
 */
import type { Tensor } from "../../tensor.js";
import type { ArchSpec } from "../arch/spec.js";
import type { GraphBuilder, Value } from "./builder.js";

/** Canonical weight lookup (throws for a missing name). */
export type WeightFn = (name: string) => Tensor;

/**
 * rms:   x ─► SimplifiedLayerNormalization(w) ─► y          (x / rms(x) * w)
 * layer: x ─► LayerNormalization(w, b) ─► y                 ((x - mean) / std * w + b)
 */
export function norm(
  g: GraphBuilder,
  x: Value,
  spec: ArchSpec,
  w: WeightFn,
  prefix: string,
  eps: number,
): Value {
  const s = g.scope(prefix.split(".").at(-1)!);
  const weight = g.weight(`${prefix}.weight`, w(`${prefix}.weight`).shape, w(`${prefix}.weight`).data);
  if (spec.norm === "rms") {
    return s.op("SimplifiedLayerNormalization", [x, weight], { axis: -1, epsilon: { float: eps } });
  }
  const bias = g.weight(`${prefix}.bias`, w(`${prefix}.bias`).shape, w(`${prefix}.bias`).data);
  return s.op("LayerNormalization", [x, weight, bias], { axis: -1, epsilon: { float: eps } });
}

/** [out, in] row-major → [in, out] row-major, optionally scaled (MatMul wants x @ W^T). */
export function transposed(t: Tensor, scale = 1): Float32Array {
  const [o, i] = t.shape as [number, number];
  const src = t.data;
  const dst = new Float32Array(o * i); // [in, out]
  for (let r = 0; r < o; r++) {
    const row = r * i;
    for (let c = 0; c < i; c++) dst[c * o + r] = src[row + c]! * scale;
  }
  return dst;
}

/**
 * x [.., in] ─► MatMul(W^T [in, out]) ─► (+ b) ─► y [.., out]
 * `prefix` is the canonical weight prefix (blocks.3.attn.q); `scale` folds a constant factor into W and b.
 */
export function linear(
  g: GraphBuilder,
  x: Value,
  w: WeightFn,
  prefix: string,
  hasBias: boolean,
  scale = 1,
): Value {
  const W = w(`${prefix}.weight`);
  const wt = g.weight(`${prefix}.weight`, [W.shape[1]!, W.shape[0]!], transposed(W, scale));
  const y = g.op("MatMul", [x, wt]);
  if (!hasBias) return y;
  const B = w(`${prefix}.bias`);
  const bias = g.weight(`${prefix}.bias`, B.shape, scale === 1 ? B.data : B.data.map((v) => v * scale));
  return g.op("Add", [y, bias]);
}

/**
 * gated-silu:  x ─┬─► gate ─► silu ─┐
 *                 └─► up ──────────(*)─► down ─► y
 * gelu-tanh:   x ─► up (+b) ─► gelu_tanh ─► down (+b) ─► y
 */
export function mlp(g: GraphBuilder, x: Value, spec: ArchSpec, w: WeightFn, prefix: string): Value {
  const bias = spec.bias.mlp;
  const up = linear(g.scope("up_proj"), x, w, `${prefix}.up`, bias);
  let act: Value;
  if (spec.mlp === "gated-silu") {
    const gs = g.scope("act");
    const gate = linear(g.scope("gate_proj"), x, w, `${prefix}.gate`, bias);
    const silu = gs.op("Mul", [gate, gs.op("Sigmoid", [gate])], {}, "Silu");
    act = gs.op("Mul", [silu, up]);
  } else {
    act = g.scope("act").op("Gelu", [up], { approximate: "tanh" });
  }
  return linear(g.scope("down_proj"), act, w, `${prefix}.down`, bias);
}
