/**
 * steerlab's ggml graphs, built from the architecture spec (model/arch/) per call, as model/graph/ builds the
 * ONNX ones. Activations are ggml tensors [D, T, B] (= row-major [B, T, D]); weights are ggml-weights.ts's.
 *
 *   embed:      ids ─► get_rows(tok_embd) (+ get_rows(pos_embd, pos)) ─► [D, T, B]
 *   attention:  x ─► norm ─► q, k, v (+ b) ─► rope(q, k) ─► cpy k, v into the store's slots [P, P+T)
 *               ─► softmax(K[:P+T] q * 1/sqrt(hd) + mask) ─► V^T[:P+T] p ─► o (+ b) ─► attn_out
 *   mlp:        x ─► norm ─► gated-silu: down(silu(gate x) * up x) | gelu-tanh: down(gelu(up x + b)) + b
 *   block:      x ─► attention ─(+)─► mlp ─(+)─► resid_post;   span: blocks a..b in one graph
 *   head:       rows [D, n] ─► final norm ─► lm_head ─► logits [V, n]
 * Grouped-query attention is ggml's mul_mat broadcast (query head h reads KV head h / (H / KV), as HF repeats).
 */
import type { ArchSpec } from "../../model/arch/spec.js";
import type { ModelConfig } from "../../model/config.js";
import { W } from "../../model/weights.js";
import { GGML_TYPE, type GgmlGraph, type GgmlTensor } from "./addon.js";
import { type GgmlKV, kView, vView } from "./ggml-kv.js";
import type { GgmlWeights } from "./ggml-weights.js";

/** ggml's rope modes: NORMAL rotates adjacent pairs (GGUF llama q/k), NEOX the two halves (HF layout). */
const ROPE_NORMAL = 0;
const ROPE_NEOX = 2;

/** One call's inputs, shared by every graph of the call. */
export interface CallIO {
  B: number;
  T: number;
  /** Filled slots of the store before this call; the call's keys and values go to slots [P, P + T). */
  P: number;
  store: GgmlKV;
  /** [B*T] token ids. */
  ids: Int32Array;
  /** [B*T] positions, padding at 0. */
  pos: Int32Array;
  /** [B, T, P+T] additive mask (ggml [P+T, T, 1, B]). */
  mask: Float32Array;
  /** RoPE frequency divisors [hd/2] (scaled RoPE), or null. */
  freqFactors: Float32Array | null;
}

/** One graph under construction: weight refs and call inputs made once per graph. */
export class Build {
  private readonly refs = new Map<GgmlTensor, number>();
  private readonly inputs = new Map<string, number>();

  constructor(
    readonly g: GgmlGraph,
    readonly w: GgmlWeights,
    readonly c: ModelConfig,
    readonly spec: ArchSpec,
  ) {}

  weight(name: string): number {
    const t = this.w.get(name);
    let id = this.refs.get(t);
    if (id === undefined) {
      id = this.g.ref(t);
      this.refs.set(t, id);
    }
    return id;
  }

  input(key: string, type: number, ne: readonly number[], data: ArrayBufferView): number {
    let id = this.inputs.get(key);
    if (id === undefined) {
      id = this.g.input(type, ne, data);
      this.inputs.set(key, id);
    }
    return id;
  }

  op(...a: Parameters<GgmlGraph["op"]>): number {
    return this.g.op(...a);
  }
}

/** x [D, ...] ─► normalized, times w (+ b for layer norm). */
function norm(b: Build, x: number, prefix: string): number {
  const eps = b.c.normEps;
  if (b.spec.norm === "rms") return b.op("mul", [b.op("rms_norm", [x], [eps]), b.weight(`${prefix}.weight`)]);
  const y = b.op("mul", [b.op("norm", [x], [eps]), b.weight(`${prefix}.weight`)]);
  return b.op("add", [y, b.weight(`${prefix}.bias`)]);
}

/** x [in, ...] ─► W x (+ bias) [out, ...]. */
function linear(b: Build, x: number, prefix: string, bias: boolean): number {
  // Activations go in as a [K, rows] matrix, as llama.cpp always passes them: ggml's repacked kernels (AMX,
  // CPU_REPACK) read src1 as 2-D, and a [K, T, B] batch of B > 1 corrupted memory (the addon now refuses it).
  const [K, T, B] = b.g.shape(x) as [number, number, number, number];
  const y = b.op("mul_mat", [b.weight(`${prefix}.weight`), b.op("reshape", [x], [K, T * B])]);
  const out = b.op("reshape", [y], [b.g.shape(y)[0]!, T, B]);
  return bias ? b.op("add", [out, b.weight(`${prefix}.bias`)]) : out;
}

/** gelu with tanh, as HF's gelu_new: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (ggml's own is an f16 table). */
function geluTanh(b: Build, x: number): number {
  const x3 = b.op("mul", [b.op("mul", [x, x]), x]);
  const inner = b.op("scale", [b.op("add", [x, b.op("scale", [x3], [0.044715])])], [Math.sqrt(2 / Math.PI)]);
  const t = b.op("tanh", [inner]);
  // 0.5 x (1 + t) = 0.5 x + 0.5 x t
  const half = b.op("scale", [x], [0.5]);
  return b.op("add", [half, b.op("mul", [half, t])]);
}

/** mlp_out of block l from x = resid_mid [D, T, B]. */
export function mlpPart(b: Build, l: number, x: number): number {
  const h = norm(b, x, W.prefix(l, "mlp_norm"));
  const bias = b.spec.bias.mlp;
  let act: number;
  if (b.spec.mlp === "gated-silu") {
    const gate = linear(b, h, W.prefix(l, "mlp.gate"), bias);
    const up = linear(b, h, W.prefix(l, "mlp.up"), bias);
    act = b.op("mul", [b.op("silu", [gate]), up]);
  } else {
    act = geluTanh(b, linear(b, h, W.prefix(l, "mlp.up"), bias));
  }
  return linear(b, act, W.prefix(l, "mlp.down"), bias);
}

/** attn_out of block l from x = resid_pre [D, T, B]; the call's keys and values are written to the store. */
export function attnPart(b: Build, l: number, x: number, io: CallIO): number {
  const { nHeads: H, nKvHeads: KV, headDim: hd } = b.c;
  const { B, T, P, store } = io;
  const h = norm(b, x, W.prefix(l, "attn_norm"));
  const qkvBias = b.spec.bias.qkv;
  let q = linear(b, h, W.prefix(l, "attn.q"), qkvBias); // [H*hd, T, B]
  let k = linear(b, h, W.prefix(l, "attn.k"), qkvBias); // [KV*hd, T, B]
  const v = linear(b, h, W.prefix(l, "attn.v"), qkvBias); // [KV*hd, T, B]
  if (b.spec.positional === "rope") {
    const pos = b.input("pos", GGML_TYPE.I32, [B * T], io.pos);
    const ff = io.freqFactors ? [b.input("freq_factors", GGML_TYPE.F32, [hd / 2], io.freqFactors)] : [];
    const mode = b.w.interleaved.has(l) ? ROPE_NORMAL : ROPE_NEOX;
    const params = [hd, mode, b.c.maxPositions, b.c.ropeTheta, 1, 0, 1, 32, 1];
    q = b.op("rope", [b.op("reshape", [q], [hd, H, B * T]), pos, ...ff], params);
    k = b.op("rope", [b.op("reshape", [k], [hd, KV, B * T]), pos, ...ff], params);
  }
  const q4 = b.op("reshape", [q], [hd, H, T, B]);
  const k4 = b.op("reshape", [k], [hd, KV, T, B]);
  const v4 = b.op("reshape", [v], [hd, KV, T, B]);

  // This call's keys and values into slots [P, P+T): K as [hd, T, KV, B], V transposed as [T, hd, KV, B].
  const C = store.capacity;
  const es = store.elementBytes;
  const kc = b.g.ref(store.k[l]!);
  const vc = b.g.ref(store.v[l]!);
  const kNew = b.op("permute", [k4], [0, 2, 1, 3]);
  const vNew = b.op("permute", [v4], [1, 2, 0, 3]);
  b.g.expand(b.op("cpy", [kNew, kView(b.g, kc, hd, T, KV, B, C, es, 0, P)]));
  b.g.expand(b.op("cpy", [vNew, vView(b.g, vc, hd, T, KV, B, C, es, 0, P)]));

  // Attention over every filled slot (the past and this call's), read back from the store.
  const n = P + T;
  const mask = b.input("mask", GGML_TYPE.F32, [n, T, 1, B], io.mask);
  const qh = b.op("permute", [q4], [0, 2, 1, 3]); // [hd, T, H, B]
  const scores = b.op("mul_mat", [kView(b.g, kc, hd, n, KV, B, C, es), qh]); // [n, T, H, B]
  const p = b.op("soft_max", [scores, mask], [1 / Math.sqrt(hd), 0]);
  const ctx = b.op("mul_mat", [vView(b.g, vc, hd, n, KV, B, C, es), p]); // [hd, T, H, B]
  const merged = b.op("reshape", [b.op("cont", [b.op("permute", [ctx], [0, 2, 1, 3])])], [H * hd, T, B]);
  return linear(b, merged, W.prefix(l, "attn.o"), b.spec.bias.o);
}

/** resid_post of block l from resid_pre x. */
export function blockPart(b: Build, l: number, x: number, io: CallIO, lastTokens = false): number {
  let mid = b.op("add", [x, attnPart(b, l, x, io)]); // [D, T, B]
  if (lastTokens && io.T > 1) {
    // Each row's last token alone ([D, 1, B]): the MLP of the other tokens would be thrown away.
    const { B, T } = io;
    const row = b.c.hiddenSize * 4; // bytes of one F32 token
    mid = b.op("cont", [
      b.op("view", [mid], [b.c.hiddenSize, 1, B, 1, row, row * T, row * T * B, row * (T - 1)]),
    ]);
  }
  return b.op("add", [mid, mlpPart(b, l, mid)]);
}

/** Token (+ learned position) embeddings [D, T, B]. */
export function embedPart(b: Build, io: CallIO): number {
  const { B, T } = io;
  const ids = b.input("ids", GGML_TYPE.I32, [B * T], io.ids);
  let e = b.op("get_rows", [b.weight(W.tokEmbd), ids]); // [D, B*T]
  if (b.spec.positional === "learned") {
    const pos = b.input("pos", GGML_TYPE.I32, [B * T], io.pos);
    e = b.op("add", [e, b.op("get_rows", [b.weight(W.posEmbd), pos])]);
  }
  return b.op("reshape", [e], [b.c.hiddenSize, T, B]);
}

/** Logits [V, n] of rows [D, n]: final norm, then the head (the embedding when tied). */
export function headPart(b: Build, rows: number): number {
  const h = norm(b, rows, "final_norm");
  return b.op("mul_mat", [b.weight(b.c.tiedEmbeddings ? W.tokEmbd : W.lmHead), h]);
}
