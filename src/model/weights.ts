/**
 * Canonical weight names and shapes, one scheme for every architecture and format (HF-style [out, in] linears):
 *   tok_embd [V, D]   pos_embd [P, D] (learned positions)   final_norm.weight/.bias [D]   lm_head.weight [V, D]
 *   blocks.{l}.attn_norm.weight/.bias [D]
 *   blocks.{l}.attn.q.weight [H*hd, D]  .k/.v.weight [KV*hd, D]  .o.weight [D, H*hd]  (+ .bias where the spec says)
 *   blocks.{l}.mlp_norm.weight/.bias [D]
 *   blocks.{l}.mlp.gate.weight [F, D] (gated)  .up.weight [F, D]  .down.weight [D, F]  (+ .bias where the spec says)
 * Loaders translate file names into these; the engines only read these.
 */

import os from "node:os";
import { SteerlabError } from "../errors.js";
import { dequantize, GGML_TYPE, ggmlByteSize, ggmlTypeName, quantize } from "../io/gguf-quant.js";
import { fmtShape, numel, shapeEquals, type Tensor, tensor } from "../tensor.js";
import { archSpec } from "./arch/registry.js";
import type { ModelConfig } from "./config.js";

/** The weights of a block, in forward order (each with a .weight and, where the spec says, a .bias). */
export type BlockPart =
  | "attn_norm"
  | "attn.q"
  | "attn.k"
  | "attn.v"
  | "attn.o"
  | "mlp_norm"
  | "mlp.gate"
  | "mlp.up"
  | "mlp.down";
export type Param = "weight" | "bias";
/** A canonical weight name (the scheme above). */
export type WeightName =
  | "tok_embd"
  | "pos_embd"
  | "lm_head.weight"
  | `final_norm.${Param}`
  | `blocks.${number}.${BlockPart}.${Param}`;
/** The prefix the layer functions add ".weight" / ".bias" (or ".q.weight", ...) to. */
export type WeightPrefix = "final_norm" | `blocks.${number}.${BlockPart | "attn" | "mlp"}`;

/** Canonical weight names are built here and nowhere else. */
export const W = {
  tokEmbd: "tok_embd",
  posEmbd: "pos_embd",
  lmHead: "lm_head.weight",
  finalNorm: (p: Param = "weight"): WeightName => `final_norm.${p}`,
  block: (l: number, part: BlockPart, p: Param = "weight"): WeightName => `blocks.${l}.${part}.${p}`,
  prefix: (l: number, part: BlockPart | "attn" | "mlp"): WeightPrefix => `blocks.${l}.${part}`,
  /** Whether a canonical name belongs to block l. */
  inBlock: (name: string, l: number): boolean => name.startsWith(`blocks.${l}.`),
  inAnyBlock: (name: string): boolean => name.startsWith("blocks."),
} as const;

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

/**
 * Where a canonical weight's bytes are in its file, as the file stores them: for backends that use the file's
 * own layout and type (the ggml backend maps or repacks them) instead of the loader's canonical tensor.
 */
export interface FileTensor {
  file: string;
  /** Absolute byte offset of the whole file tensor (`shape`), not of `rows`. */
  offset: number;
  /** ggml / GGUF type of the stored values (safetensors F32 / F16 / BF16: 0 / 1 / 30). */
  ggmlType: number;
  /** The tensor's shape as the file has it, outermost first (row-major). */
  shape: readonly number[];
  /** The canonical weight's range of a fused tensor (GGUF GPT-2 attn_qkv; columns when `transposed`), or null. */
  rows: readonly [number, number] | null;
  /** q/k rows permuted within each head for interleaved RoPE (llama.cpp's converter); the loader un-permutes. */
  interleavedRope: boolean;
  /** Stored [in, out] (HF GPT-2 Conv1D); the loader transposes. */
  transposed: boolean;
}

/**
 * Weights read from the file when asked for, never kept: get(name) reads that tensor (by byte range) and returns
 * a fresh Weight, so an engine that builds block by block holds one block's tensors at a time and the model is
 * never in JS memory whole. Iterating reads every tensor, one at a time. set() pins a weight in memory.
 */
export class LazyWeights extends Map<string, Weight> {
  /** Called with every weight a reader returns (loadModel's non-finite check on the bytes a build reads). */
  private onRead: ((name: string, w: Weight) => void) | null = null;

  constructor(
    private readonly readers: Map<string, () => Weight>,
    /** Shape of each tensor a reader returns (checked against the file at load, no read needed). */
    private readonly shapes: ReadonlyMap<string, readonly number[]>,
    /** ggml type each reader returns, null for f32 (so sizes are known before reading). */
    private readonly types: ReadonlyMap<string, number | null>,
    /**
     * Readers of rows [a, b) of a 2-D tensor, for the loaders that can read part of a tensor by byte range
     * (the fingerprint samples a few rows of every tensor). A tensor without one is read whole and sliced.
     */
    private readonly rowReaders: ReadonlyMap<string, (a: number, b: number) => Weight> = new Map(),
    /** Where each weight is in the file (loaders that know it). */
    private readonly sources: ReadonlyMap<string, FileTensor> = new Map(),
  ) {
    super();
  }

  /** Where `name`'s bytes are in the file, or undefined (not from a file, or pinned in memory by set()). */
  source(name: string): FileTensor | undefined {
    return super.has(name) || !this.readers.has(name) ? undefined : this.sources.get(name);
  }

  /** Check (or otherwise look at) every weight as it is read; replaces an earlier hook. */
  inspectReads(fn: ((name: string, w: Weight) => void) | null): void {
    this.onRead = fn;
  }

  /** Rows [a, b) of `name` (a 2-D tensor), read by byte range where the loader can; not passed to inspectReads. */
  rows(name: string, a: number, b: number): Weight | undefined {
    const pinned = super.get(name);
    if (pinned) return sliceRows(pinned, a, b);
    const r = this.rowReaders.get(name);
    if (r && this.readers.has(name)) return r(a, b);
    const w = this.readers.get(name)?.();
    return w && sliceRows(w, a, b);
  }

  /** ggml type of `name` as get() returns it (null: dense f32), without reading it. */
  typeOf(name: string): number | null {
    const w = super.get(name);
    if (w) return isQuant(w) ? w.ggmlType : null;
    return this.types.get(name) ?? null;
  }

  /** The shape of `name` without reading it. */
  shapeOf(name: string): readonly number[] | undefined {
    return super.get(name)?.shape ?? (this.readers.has(name) ? this.shapes.get(name) : undefined);
  }
  override get(name: string): Weight | undefined {
    const pinned = super.get(name);
    if (pinned) return pinned;
    const w = this.readers.get(name)?.();
    if (w) this.onRead?.(name, w);
    return w;
  }
  override has(name: string): boolean {
    return super.has(name) || this.readers.has(name);
  }
  override delete(name: string): boolean {
    const a = super.delete(name);
    return this.readers.delete(name) || a;
  }
  override get size(): number {
    return new Set([...super.keys(), ...this.readers.keys()]).size;
  }
  override keys(): MapIterator<string> {
    return new Set([...this.readers.keys(), ...super.keys()]).values();
  }
  override *entries(): MapIterator<[string, Weight]> {
    for (const k of this.keys()) yield [k, this.get(k)!];
  }
  override *values(): MapIterator<Weight> {
    for (const k of this.keys()) yield this.get(k)!;
  }
  override [Symbol.iterator](): MapIterator<[string, Weight]> {
    return this.entries();
  }
  override forEach(fn: (value: Weight, key: string, map: Map<string, Weight>) => void): void {
    for (const [k, v] of this.entries()) fn(v, k, this);
  }
}

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

/** Rows [a, b) of a weight (a copy; rows of a 1-D tensor are its values). */
export function sliceRows(t: Weight, a: number, b: number): Weight {
  if (isQuant(t)) return quantRows(t, a, b);
  const cols = t.shape.length > 1 ? t.shape[1]! : 1;
  return tensor([b - a, ...t.shape.slice(1)], t.data.slice(a * cols, b * cols));
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

/**
 * What dense (F32/F16/BF16) matrices are held as: "f32", or quantized at load to Q8_0 ("q8") or Q4_0 ("q4"),
 * ggml's round-to-nearest block types, which the ONNX Runtime engine then computes on quantized. Matrices whose
 * rows are not whole 32-value blocks, norms and biases stay f32. Already-quantized GGUF matrices keep their type.
 */
export type LoadDtype = "f32" | "q8" | "q4";
export const LOAD_DTYPES: readonly LoadDtype[] = ["f32", "q8", "q4"];

/** Bytes the config's weights take as f32. */
export function f32Bytes(c: ModelConfig): number {
  let n = 0;
  for (const shape of expectedWeights(c).values()) n += numel(shape);
  return 4 * n;
}

/** Bytes for people: MiB below 1 GiB. */
export function gib(b: number): string {
  return b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GiB` : `${(b / 2 ** 20).toFixed(1)} MiB`;
}

/**
 * The dtype to load with: the one asked for, else f32 when the weights held that way (`f32Need` bytes) take at
 * most half of this machine's memory, else q8 (said through onInfo).
 */
export function resolveDtype(
  f32Need: number,
  opts: { dtype?: LoadDtype; onInfo?: (message: string) => void },
  totalMemory = os.totalmem(),
): LoadDtype {
  if (opts.dtype !== undefined) {
    if (!LOAD_DTYPES.includes(opts.dtype)) {
      throw new SteerlabError("bad_input", `unknown dtype "${opts.dtype}"`, {
        field: "dtype",
        expected: LOAD_DTYPES.join(" | "),
        got: String(opts.dtype),
      });
    }
    return opts.dtype;
  }
  if (f32Need <= totalMemory / 2) return "f32";
  opts.onInfo?.(
    `weights as f32 would take ${gib(f32Need)}, more than half of this machine's ${gib(totalMemory)}: ` +
      "loading matrices as q8 (pass --dtype f32 to insist, --dtype q4 for less)",
  );
  return "q8";
}

/** The ggml type storeAs gives a dense tensor of this shape, or null when it stays f32. */
export function storedType(shape: readonly number[], dtype: LoadDtype): number | null {
  if (dtype === "f32" || shape.length !== 2 || shape[1]! % 32 !== 0) return null;
  return dtype === "q8" ? GGML_TYPE.Q8_0 : GGML_TYPE.Q4_0;
}

/** A dense matrix as the requested dtype (a no-op for f32, vectors, quantized weights and rows of odd sizes). */
export function storeAs(w: Weight, dtype: LoadDtype): Weight {
  const type = isQuant(w) ? null : storedType(w.shape, dtype);
  if (type === null || isQuant(w)) return w;
  return { shape: [w.shape[0]!, w.shape[1]!], ggmlType: type, bytes: quantize(type, w.data) };
}

/** Every canonical weight the config needs, with its expected shape, in forward order. */
export function expectedWeights(c: ModelConfig): Map<string, number[]> {
  const spec = archSpec(c.arch);
  const D = c.hiddenSize;
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  const F = c.intermediateSize;
  const layerNorm = spec.norm === "layer";
  const m = new Map<WeightName, number[]>();
  m.set(W.tokEmbd, [c.vocabSize, D]);
  if (spec.positional === "learned") m.set(W.posEmbd, [c.maxPositions, D]);
  const bias = {
    attn_norm: layerNorm,
    mlp_norm: layerNorm,
    qkv: spec.bias.qkv,
    o: spec.bias.o,
    mlp: spec.bias.mlp,
  };
  for (let l = 0; l < c.nLayers; l++) {
    const put = (part: BlockPart, shape: number[], hasBias: boolean) => {
      m.set(W.block(l, part), shape);
      if (hasBias) m.set(W.block(l, part, "bias"), [shape[0]!]);
    };
    put("attn_norm", [D], bias.attn_norm);
    // Biases of q, k, v follow all three weights (the order files and graphs expect).
    put("attn.q", [q, D], false);
    put("attn.k", [kv, D], false);
    put("attn.v", [kv, D], false);
    if (bias.qkv)
      for (const [part, n] of [
        ["attn.q", q],
        ["attn.k", kv],
        ["attn.v", kv],
      ] as const)
        m.set(W.block(l, part, "bias"), [n]);
    put("attn.o", [D, q], bias.o);
    put("mlp_norm", [D], bias.mlp_norm);
    if (spec.mlp === "gated-silu") put("mlp.gate", [F, D], false);
    put("mlp.up", [F, D], bias.mlp);
    put("mlp.down", [D, F], bias.mlp);
  }
  m.set(W.finalNorm(), [D]);
  if (layerNorm) m.set(W.finalNorm("bias"), [D]);
  if (!c.tiedEmbeddings) m.set(W.lmHead, [c.vocabSize, D]);
  return m;
}

/** Check that every expected weight is present with the right shape; collect every problem into one error. */
export function checkWeights(c: ModelConfig, w: ModelWeights, file: string): void {
  const problems: string[] = [];
  for (const [name, shape] of expectedWeights(c)) {
    const got = w instanceof LazyWeights ? w.shapeOf(name) : w.get(name)?.shape;
    if (!got) problems.push(`missing tensor ${name} (expected shape ${fmtShape(shape)})`);
    else if (!shapeEquals(got, shape)) {
      problems.push(`tensor ${name} has shape ${fmtShape(got)}, expected ${fmtShape(shape)}`);
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
  return w.get(c.tiedEmbeddings ? W.tokEmbd : W.lmHead)!;
}
