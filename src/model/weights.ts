/**
 * Canonical weight names and shapes, one scheme for every architecture and format (HF-style [out, in] linears):
 *   tok_embd [V, D]   pos_embd [P, D] (learned positions)   final_norm.weight/.bias [D]   lm_head.weight [V, D]
 *   blocks.{l}.attn_norm.weight/.bias [D]
 *   blocks.{l}.attn.q.weight [H*hd, D]  .k/.v.weight [KV*hd, D]  .o.weight [D, H*hd]  (+ .bias where the spec says)
 *   blocks.{l}.mlp_norm.weight/.bias [D]
 *   blocks.{l}.mlp.gate.weight [F, D] (gated)  .up.weight [F, D]  .down.weight [D, F]  (+ .bias where the spec says)
 * Loaders translate file names into these; the engines only read these.
 */
import { SteerlabError } from "../errors.js";
import { dequantize, ggmlByteSize, ggmlTypeName } from "../io/gguf-quant.js";
import { fmtShape, shapeEquals, type Tensor, tensor } from "../tensor.js";
import { archSpec } from "./arch/registry.js";
import type { ModelConfig } from "./config.js";

/** Dense f32 weights: what the reference engine, the trainer and the writers compute on. */
export type Weights = Map<string, Tensor>;

/**
 * A [rows, cols] matrix kept in a ggml block-quantized type (GGUF Q4_0, Q8_0, Q4_K, ...): `bytes` holds the rows
 * as the file stores them (each row a whole number of blocks). The ONNX Runtime engine computes on it without
 * expanding it to f32 (model/graph/nbits.ts); anything that wants f32 calls denseWeight.
 */
export interface QuantTensor {
  readonly shape: readonly [number, number];
  readonly ggmlType: number;
  readonly bytes: Uint8Array;
}

export type Weight = Tensor | QuantTensor;

/** A loaded model's weights: dense f32, or quantized where the file was (matrices of a GGUF). */
export type ModelWeights = Map<string, Weight>;

export function isQuant(w: Weight): w is QuantTensor {
  return "ggmlType" in w;
}

/** Bytes of one row of a quantized matrix. */
export function quantRowBytes(q: QuantTensor): number {
  const n = ggmlByteSize(q.ggmlType, q.shape[1]);
  if (n === undefined) {
    throw new SteerlabError(
      "bad_tensor",
      `a row of ${q.shape[1]} values is not whole ${ggmlTypeName(q.ggmlType)} blocks`,
      {
        got: String(q.shape[1]),
      },
    );
  }
  return n;
}

/** Rows [a, b) of a quantized matrix (a copy). */
export function quantRows(q: QuantTensor, a: number, b: number): QuantTensor {
  const rb = quantRowBytes(q);
  return { shape: [b - a, q.shape[1]], ggmlType: q.ggmlType, bytes: q.bytes.slice(a * rb, b * rb) };
}

/** The f32 values of rows [a, b) (default: all) of a weight. */
export function denseRows(w: Weight, a = 0, b = w.shape[0]!): Float32Array {
  const cols = w.shape.length > 1 ? w.shape[1]! : 1;
  if (!isQuant(w)) return w.data.subarray(a * cols, b * cols);
  const rb = quantRowBytes(w);
  return dequantize(w.ggmlType, w.bytes.subarray(a * rb, b * rb), (b - a) * cols);
}

/** A weight as a dense f32 tensor (dequantized when quantized). */
export function denseWeight(w: Weight): Tensor {
  return isQuant(w) ? tensor(w.shape, denseRows(w)) : w;
}

/** All weights dense (quantized matrices dequantized): for the reference engine and the writers. */
export function denseWeights(w: ModelWeights): Weights {
  return new Map([...w].map(([k, t]) => [k, denseWeight(t)]));
}

/** "q" or "k" for the query / key projection weights (RoPE row layouts differ between formats), else null. */
export function qkRole(canonical: string): "q" | "k" | null {
  const m = /^blocks\.\d+\.attn\.([qk])\.weight$/.exec(canonical);
  return m ? (m[1] as "q" | "k") : null;
}

/** Every canonical weight the config needs, with its expected shape, in forward order. */
export function expectedWeights(c: ModelConfig): Map<string, number[]> {
  const spec = archSpec(c.arch);
  const D = c.hiddenSize;
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  const F = c.intermediateSize;
  const layerNorm = spec.norm === "layer";
  const m = new Map<string, number[]>();
  m.set("tok_embd", [c.vocabSize, D]);
  if (spec.positional === "learned") m.set("pos_embd", [c.maxPositions, D]);
  for (let l = 0; l < c.nLayers; l++) {
    const b = `blocks.${l}.`;
    m.set(`${b}attn_norm.weight`, [D]);
    if (layerNorm) m.set(`${b}attn_norm.bias`, [D]);
    m.set(`${b}attn.q.weight`, [q, D]);
    m.set(`${b}attn.k.weight`, [kv, D]);
    m.set(`${b}attn.v.weight`, [kv, D]);
    if (spec.bias.qkv) {
      m.set(`${b}attn.q.bias`, [q]);
      m.set(`${b}attn.k.bias`, [kv]);
      m.set(`${b}attn.v.bias`, [kv]);
    }
    m.set(`${b}attn.o.weight`, [D, q]);
    if (spec.bias.o) m.set(`${b}attn.o.bias`, [D]);
    m.set(`${b}mlp_norm.weight`, [D]);
    if (layerNorm) m.set(`${b}mlp_norm.bias`, [D]);
    if (spec.mlp === "gated-silu") m.set(`${b}mlp.gate.weight`, [F, D]);
    m.set(`${b}mlp.up.weight`, [F, D]);
    if (spec.bias.mlp) m.set(`${b}mlp.up.bias`, [F]);
    m.set(`${b}mlp.down.weight`, [D, F]);
    if (spec.bias.mlp) m.set(`${b}mlp.down.bias`, [D]);
  }
  m.set("final_norm.weight", [D]);
  if (layerNorm) m.set("final_norm.bias", [D]);
  if (!c.tiedEmbeddings) m.set("lm_head.weight", [c.vocabSize, D]);
  return m;
}

/** Check that every expected weight is present with the right shape; collect every problem into one error. */
export function checkWeights(c: ModelConfig, w: ModelWeights, file: string): void {
  const problems: string[] = [];
  for (const [name, shape] of expectedWeights(c)) {
    const t = w.get(name);
    if (!t) problems.push(`missing tensor ${name} (expected shape ${fmtShape(shape)})`);
    else if (!shapeEquals(t.shape, shape)) {
      problems.push(`tensor ${name} has shape ${fmtShape(t.shape)}, expected ${fmtShape(shape)}`);
    }
  }
  if (problems.length) {
    throw new SteerlabError(
      "bad_tensor",
      `checkpoint does not match its config (${problems.length} problems)`,
      {
        file,
        problems,
      },
    );
  }
}

/** The output projection: lm_head, or the embedding when tied. */
export function lmHead<W extends Weight>(c: ModelConfig, w: Map<string, W>): W {
  return w.get(c.tiedEmbeddings ? "tok_embd" : "lm_head.weight")!;
}
