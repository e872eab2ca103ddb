/**
 * Small pure graph functions for the per-token layers: norms, linears, MLPs. Each takes value names and returns
 * value names; the builder `g` only names and books the nodes. Weights are canonical tensors (weights.ts).
 */
import type { Tensor } from "../../tensor.js";
import type { ArchSpec } from "../arch/spec.js";
import { denseWeight, isQuant, type QuantTensor, type Weight } from "../weights.js";
import type { GraphBuilder, Value } from "./builder.js";
import { concatNBits, nbitsInits, nbitsMatMul, sameLayout, toNBits } from "./nbits.js";

/** Canonical weight lookup (throws for a missing name). */
export type WeightFn = (name: string) => Weight;

/** A weight that is always f32 in files (norms, biases, position tables). */
function dense(w: WeightFn, name: string): Tensor {
  return denseWeight(w(name));
}

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
  const nw = dense(w, `${prefix}.weight`);
  const weight = g.weight(`${prefix}.weight`, nw.shape, nw.data);
  if (spec.norm === "rms") {
    return s.op("SimplifiedLayerNormalization", [x, weight], { axis: -1, epsilon: { float: eps } });
  }
  const nb = dense(w, `${prefix}.bias`);
  const bias = g.weight(`${prefix}.bias`, nb.shape, nb.data);
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
  return fusedLinear(g, x, w, prefix, [{ prefix, scale }], hasBias)[0]!;
}

/**
 * Several linears of the same input as one matmul (fewer, larger kernels: faster decode):
 *   x [.., in] ─► MatMul([W1^T | W2^T | ..] [in, sum out]) ─► (+ [b1 | b2 | ..]) ─► Split ─► y1, y2, ..
 * `name` names the fused initializers (blocks.3.attn.qkv); each part may fold a scale into its rows.
 */
export function fusedLinear(
  g: GraphBuilder,
  x: Value,
  w: WeightFn,
  name: string,
  parts: readonly { prefix: string; scale?: number }[],
  hasBias: boolean,
): Value[] {
  const Ws = parts.map((p) => w(`${p.prefix}.weight`));
  const quant = Ws.filter(isQuant);
  if (quant.length && (quant.length < Ws.length || !quant.every((q) => sameLayout(q, quant[0]!)))) {
    // Mixed storage types (a Q4_K_M file keeps some of these Q6_K): one matmul per part.
    return parts.map((p) =>
      linear(g.scope(p.prefix.split(".").at(-1)!), x, w, p.prefix, hasBias, p.scale ?? 1),
    );
  }
  const inDim = Ws[0]!.shape[1]!;
  const outs = Ws.map((W) => W.shape[0]!);
  const total = outs.reduce((a, b) => a + b, 0);
  let y: Value;
  if (quant.length) {
    // Quantized: rows of the parts stacked, scales (and offsets) carry the folded scale.
    const m = concatNBits(quant.map((q: QuantTensor, k) => toNBits(q, parts[k]!.scale ?? 1)));
    y = nbitsMatMul(g, x, nbitsInits(g, `${name}.weight`, m), `${name}.weight`, g.settings.quantAccuracy);
  } else {
    const wt = new Float32Array(inDim * total); // [in, sum out]
    let col = 0;
    parts.forEach((p, k) => {
      const t = transposed(Ws[k] as Tensor, p.scale ?? 1); // [in, out_k]
      for (let r = 0; r < inDim; r++) wt.set(t.subarray(r * outs[k]!, (r + 1) * outs[k]!), r * total + col);
      col += outs[k]!;
    });
    y = g.op("MatMul", [x, g.weight(`${name}.weight`, [inDim, total], wt)]);
  }
  if (hasBias) {
    const b = new Float32Array(total);
    let off = 0;
    parts.forEach((p, k) => {
      b.set(
        dense(w, `${p.prefix}.bias`).data.map((v) => v * (p.scale ?? 1)),
        off,
      );
      off += outs[k]!;
    });
    y = g.op("Add", [y, g.weight(`${name}.bias`, [total], b)]);
  }
  if (parts.length === 1) return [y];
  return g.opN("Split", [y, g.ints("split", outs)], parts.length, { axis: -1 });
}

/**
 * gated-silu:  x ─┬─► gate ─► silu ─┐
 *                 └─► up ──────────(*)─► down ─► y
 * gelu-tanh:   x ─► up (+b) ─► gelu_tanh ─► down (+b) ─► y
 */
export function mlp(g: GraphBuilder, x: Value, spec: ArchSpec, w: WeightFn, prefix: string): Value {
  const bias = spec.bias.mlp;
  let act: Value;
  if (spec.mlp === "gated-silu") {
    const [gate, up] = fusedLinear(
      g.scope("gate_up_proj"),
      x,
      w,
      `${prefix}.gate_up`,
      [{ prefix: `${prefix}.gate` }, { prefix: `${prefix}.up` }],
      bias,
    );
    const gs = g.scope("act");
    const silu = gs.op("Mul", [gate!, gs.op("Sigmoid", [gate!])], {}, "Silu");
    act = gs.op("Mul", [silu, up!]);
  } else {
    const up = linear(g.scope("up_proj"), x, w, `${prefix}.up`, bias);
    act = g.scope("act").op("Gelu", [up], { approximate: "tanh" });
  }
  return linear(g.scope("down_proj"), act, w, `${prefix}.down`, bias);
}
