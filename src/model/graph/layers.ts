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

/**
 * x [.., in] ─► x @ W^T ─► (+ b) ─► y [.., out]
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

/** Row blocks stacked into one array, each scaled; a single unscaled block is returned as it is. */
function stackRows(parts: readonly { data: Float32Array; scale: number }[]): Float32Array {
  if (parts.length === 1 && parts[0]!.scale === 1) return parts[0]!.data;
  const out = new Float32Array(parts.reduce((n, p) => n + p.data.length, 0));
  let at = 0;
  for (const p of parts) {
    if (p.scale === 1) out.set(p.data, at);
    else for (let i = 0; i < p.data.length; i++) out[at + i] = p.data[i]! * p.scale;
    at += p.data.length;
  }
  return out;
}

/**
 * x [.., in] ─► Reshape [rows, in] ─► Gemm(W [out, in], transB) ─► Reshape [.., out]
 * (Gemm takes 2-D inputs; MLAS packs W^T from W directly, so no transposed copy is ever made.)
 */
function gemmT(g: GraphBuilder, x: Value, w: Value, inDim: number, out: number): Value {
  const s = g.scope("gemm");
  const flat = s.op("Reshape", [x, s.ints("rows_in", [-1, inDim])], {}, "Flatten");
  const y = s.op("Gemm", [flat, w], { transB: 1 });
  const lead = s.op("Shape", [x], { end: -1 }, "Lead");
  const shape = s.op("Concat", [lead, s.ints("out", [out])], { axis: 0 }, "OutShape");
  return s.op("Reshape", [y, shape], {}, "Unflatten");
}

/**
 * Several linears of the same input as one matmul (fewer, larger kernels: faster decode):
 *   x [.., in] ─► x @ [W1; W2; ..]^T (gemmT, or MatMulNBits when quantized) ─► (+ [b1 | b2 | ..]) ─► Split ─► y1, ..
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
    // W stays [out, in] as read (parts stacked along out: one copy at memory speed, none for a single part)
    // and Gemm multiplies by its transpose: a JavaScript transpose of every matrix cost most of an F32 load.
    const wd = stackRows(parts.map((p, k) => ({ data: (Ws[k] as Tensor).data, scale: p.scale ?? 1 })));
    y = gemmT(g, x, g.weight(`${name}.weight`, [total, inDim], wd), inDim, total);
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
