/**
 * Every canonical weight as a ggml tensor, in the file's own layout and type where ggml can use it:
 *
 *   file location (LazyWeights.source) ─► "map"    norms, biases, embeddings, F32/F16/BF16 matrices: pointers
 *                                                   into the mmapped file, nothing copied
 *                                       ─► "repack" quantized matmul weights: into ggml's extra buffer types
 *                                                   (AMX, CPU_REPACK) as llama.cpp does, the file pages released
 *   no usable location                  ─► "copy"   the loader's canonical tensor (HF layout): HF GPT-2 Conv1D
 *                                                   (stored transposed), a dense Weights map, a misaligned range
 * GGUF llama q/k rows stay permuted for interleaved RoPE (the graphs then use rope mode NORMAL, else NEOX); a
 * layer whose q or k cannot be used as stored takes both canonical, so q and k always share one layout.
 */
import { SteerlabError } from "../../errors.js";
import { nonFiniteWeights, weightProblem } from "../../io/finite.js";
import { ggmlByteSize, ggmlTypeInfo, GGML_TYPE as QUANT_TYPE } from "../../io/gguf-quant.js";
import type { ModelConfig } from "../../model/config.js";
import {
  expectedWeights,
  type FileTensor,
  isQuant,
  LazyWeights,
  type ModelWeights,
  qkRole,
  W,
} from "../../model/weights.js";
import { numel } from "../../tensor.js";
import type { GgmlBackend, GgmlMap, GgmlTensor } from "./addon.js";

/** How quantized matmul weights are held: repacked for ggml's fast kernels (default, as llama.cpp) or mapped. */
export type MatmulWeights = "repack" | "map";

/** Where a weight's bytes come from and how ggml holds them: known before anything is read. */
interface Plan {
  name: string;
  mode: "map" | "repack" | "copy";
  /** File bytes (map/repack/copy of a file range), or null: the loader's canonical tensor is copied. */
  at: { file: string; offset: number; type: number; ne: number[] } | null;
  bytes: number;
}

/** Byte alignment of a mapped range (ggml's TENSOR_ALIGNMENT); GGUF data is aligned so, safetensors may not be. */
const MAP_ALIGN = 32;

/**
 * A matrix only multiplied by activations, so it may be repacked. Not the embedding, even when tied: get_rows
 * reads it as stored (a repacked layout has no rows), as llama.cpp never repacks token_embd.
 */
function isMatmul(name: string): boolean {
  return name === W.lmHead || /^blocks\.\d+\.(attn|mlp)\.\w+\.weight$/.test(name);
}

/** ggml dims (ne[0] contiguous) and byte offset of a file tensor's canonical part. */
function fileRange(s: FileTensor): { offset: number; type: number; ne: number[] } | null {
  const cols = s.shape.length > 1 ? s.shape[1]! : 1;
  const rowBytes = ggmlByteSize(s.ggmlType, s.shape.length > 1 ? cols : 1);
  if (rowBytes === undefined || s.shape.length > 2) return null;
  const [a, b] = s.rows ?? [0, s.shape[0]!];
  const ne = s.shape.length > 1 ? [cols, b - a] : [b - a];
  return { offset: s.offset + a * rowBytes, type: s.ggmlType, ne };
}

function plan(
  c: ModelConfig,
  weights: ModelWeights,
  matmul: MatmulWeights,
): { plans: Plan[]; interleaved: Set<number> } {
  const lazy = weights instanceof LazyWeights ? weights : null;
  const expected = expectedWeights(c);
  // Per layer: q and k both usable as stored and both permuted (rope NORMAL), else neither is used permuted.
  const usable = (s: FileTensor | undefined) => s && !s.transposed && fileRange(s) !== null;
  const interleaved = new Set<number>();
  for (let l = 0; l < c.nLayers; l++) {
    const q = lazy?.source(W.block(l, "attn.q"));
    const k = lazy?.source(W.block(l, "attn.k"));
    if (usable(q) && usable(k) && q!.interleavedRope && k!.interleavedRope) interleaved.add(l);
  }
  const out: Plan[] = [];
  for (const [name, shape] of expected) {
    const s = lazy?.source(name);
    const r = s && usable(s) ? fileRange(s) : null;
    const role = qkRole(name);
    const layer = role ? Number(name.split(".")[1]) : -1;
    const permutedAlone = s?.interleavedRope && !interleaved.has(layer);
    const mm = isMatmul(name);
    const quant = (r && ggmlTypeInfo(r.type)!.block > 1) || (!r && lazy?.typeOf(name) != null);
    // Non-matmul tensors in F16/BF16 (rare: norms of a half-precision checkpoint) are copied as f32, the type
    // ggml's elementwise ops take.
    const elementwiseHalf = r && !mm && name !== W.tokEmbd && name !== W.posEmbd && r.type !== QUANT_TYPE.F32;
    if (r && s && !permutedAlone && !elementwiseHalf) {
      const bytes = ggmlByteSize(r.type, r.ne[0]!)! * (r.ne[1] ?? 1);
      const mode = mm && quant ? matmul : r.offset % MAP_ALIGN === 0 ? "map" : "copy";
      out.push({ name, mode, at: { file: s.file, ...r }, bytes });
    } else {
      const type = lazy?.typeOf(name) ?? null;
      const bytes = type === null ? 4 * numel(shape) : ggmlByteSize(type, shape[1]!)! * shape[0]!;
      out.push({ name, mode: mm && quant ? "repack" : "copy", at: null, bytes });
    }
  }
  return { plans: out, interleaved };
}

/** Bytes by how they are held: mapped from the file, repacked or copied into memory. */
export interface WeightBytes {
  mapped: number;
  repacked: number;
  copied: number;
}

export class GgmlWeights {
  private readonly tensors = new Map<string, GgmlTensor>();
  private readonly maps = new Map<string, GgmlMap>();
  /** Layers whose q/k rows are in llama.cpp's interleaved order (rope mode NORMAL). */
  readonly interleaved: ReadonlySet<number>;
  readonly bytes: WeightBytes;
  private readonly plans: Plan[];

  constructor(
    private readonly be: GgmlBackend,
    readonly config: ModelConfig,
    private readonly weights: ModelWeights,
    matmul: MatmulWeights = "repack",
    /**
     * Check every range taken from the file for NaN/Inf in the addon, before it is mapped or repacked (what
     * loadModel's check does in JS, without JS reading the file). Copied tensors are read through the loader,
     * whose read check (finiteCheck "read") covers them.
     */
    private readonly checkFinite = false,
  ) {
    const { plans, interleaved } = plan(config, weights, matmul);
    this.plans = plans;
    this.interleaved = interleaved;
    const bytes = { mapped: 0, repacked: 0, copied: 0 };
    for (const p of this.plans) {
      if (p.mode === "map") bytes.mapped += p.bytes;
      else if (p.mode === "repack") bytes.repacked += p.bytes;
      else bytes.copied += p.bytes;
    }
    this.bytes = bytes;
  }

  /** Build the tensors of block l (or of the non-block weights with l = -1); `done` after each. */
  load(l: number): void {
    for (const p of this.plans) {
      const inBlock = W.inBlock(p.name, l);
      if (l >= 0 ? !inBlock : W.inAnyBlock(p.name)) continue;
      this.tensors.set(p.name, this.make(p));
    }
  }

  get(name: string): GgmlTensor {
    const t = this.tensors.get(name);
    if (!t)
      throw new SteerlabError("bad_tensor", `weight ${name} is not loaded into ggml`, {
        field: name,
        hint: "the engine was disposed, or the checkpoint is incomplete (see checkWeights)",
      });
    return t;
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  private make(p: Plan): GgmlTensor {
    if (p.at) {
      let m = this.maps.get(p.at.file);
      if (!m) {
        m = this.be.mapFile(p.at.file);
        this.maps.set(p.at.file, m);
      }
      if (this.checkFinite) this.checkRange(m, p.name, p.at);
      return this.be.weight(m, p.at.offset, p.at.type, p.at.ne, p.mode);
    }
    const w = this.weights.get(p.name);
    if (!w)
      throw new SteerlabError("bad_tensor", `weight ${p.name} is missing`, {
        field: p.name,
        hint: "the weights were released or the checkpoint is incomplete (see checkWeights)",
      });
    const ne = [...w.shape].reverse();
    return isQuant(w)
      ? this.be.weight(w.bytes, 0, w.ggmlType, ne, p.mode)
      : this.be.weight(w.data, 0, QUANT_TYPE.F32, ne, p.mode);
  }

  /**
   * A mapped range with a non-finite value (or a block scale) is read through the loader, so the error is the
   * one the loader's check gives (file, tensor, layer, index in the canonical layout): its read check throws it,
   * or weightProblem names it here. A quantized range is judged by its block scales, as blocksAllFinite does.
   */
  private checkRange(m: GgmlMap, name: string, at: NonNullable<Plan["at"]>): void {
    const info = ggmlTypeInfo(at.type)!;
    const count = at.ne.reduce((a, b) => a * b, 1);
    const judged = info.block === 1 || info.halves !== undefined;
    if (judged && m.firstNonFinite(at.offset, at.type, count, info.halves ?? []) < 0) return;
    const w = this.weights.get(name);
    const problem = w && weightProblem(name, w);
    if (problem) throw nonFiniteWeights([problem], at.file);
  }

  /** Free every tensor and mapping (the backend's dispose frees them too). */
  dispose(): void {
    for (const t of this.tensors.values()) t.free();
    this.tensors.clear();
    for (const m of this.maps.values()) m.close();
    this.maps.clear();
  }
}
