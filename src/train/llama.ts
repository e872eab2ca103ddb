/**
 * Training forward and backward for the Llama architecture (the demo model): token embedding, per block
 * RMSNorm -> q/k/v -> RoPE -> causal attention -> o (+ residual), RMSNorm -> SwiGLU MLP (+ residual); final RMSNorm;
 * lm_head; mean cross-entropy. Rows are independent sequences of length T starting at position 0, or packed
 * documents (docStart) (no padding:
 * targets of -1 are simply not scored). Weights use the canonical names of src/model/weights.ts.
 *
 * The forward keeps what the backward needs in `Acts`; the backward walks the same steps in reverse.
 * Matrix products go through a MatmulBackend (see matmul.ts).
 */
import { SteerlabError } from "../errors.js";
import type { ModelConfig } from "../model/config.js";
import { type RopeTable, ropeTable } from "../model/rope.js";
import type { MatmulBackend } from "./matmul.js";
import {
  addTo,
  causalSoftmaxBackward,
  causalSoftmaxForward,
  crossEntropyForwardBackward,
  rmsnormBackward,
  rmsnormForward,
  rope,
  splitHeads,
  swigluBackward,
  swigluForward,
} from "./ops.js";

/** Parameters or their gradients, by canonical weight name. */
export type Params = Map<string, Float32Array>;

interface LayerActs {
  x: Float32Array; // [N, D] block input
  rstd1: Float32Array; // [N]
  xn1: Float32Array; // [N, D]
  qh: Float32Array; // [B, H, T, hd] after RoPE
  kh: Float32Array; // [B, H, T, hd] after RoPE, KV heads repeated
  vh: Float32Array; // [B, H, T, hd]
  p: Float32Array; // [B, H, T, T] attention probabilities
  att: Float32Array; // [N, H*hd] attention output before o
  x2: Float32Array; // [N, D] after the attention residual
  rstd2: Float32Array; // [N]
  xn2: Float32Array; // [N, D]
  g: Float32Array; // [N, F]
  u: Float32Array; // [N, F]
  sig: Float32Array; // [N, F] sigmoid(g)
  h: Float32Array; // [N, F] silu(g) * u
}

export interface Acts {
  batch: number;
  seq: number;
  tokens: Int32Array; // [N]
  docStart: Int32Array | null; // [N] where each token's document starts in its row (null: at 0)
  layers: LayerActs[];
  xL: Float32Array; // [N, D] last block output
  rstdF: Float32Array; // [N]
  xf: Float32Array; // [N, D] final norm output
  logits: Float32Array; // [N, V]
}

export class LlamaTrainer {
  readonly rope: RopeTable;

  constructor(
    readonly config: ModelConfig,
    readonly mm: MatmulBackend,
  ) {
    if (config.arch !== "llama" || config.tiedEmbeddings) {
      throw new SteerlabError("unsupported", "the trainer handles untied llama models only", {
        field: "arch/tie_word_embeddings",
        expected: "llama, untied",
        got: `${config.arch}, tied ${config.tiedEmbeddings}`,
      });
    }
    this.rope = ropeTable(config, config.maxPositions);
  }

  /** y [N, Out] = x [N, In] W^T for W [Out, In]. */
  private linear(x: Float32Array, w: Float32Array, n: number, nIn: number, nOut: number) {
    return this.mm.bmm({ a: x, b: w, batch: 1, m: n, k: nIn, n: nOut, transB: true });
  }

  /** Backward of y = x W^T: dW += dy^T x, returns dx = dy W. */
  private async linearBackward(
    dy: Float32Array,
    x: Float32Array,
    w: Float32Array,
    dw: Float32Array,
    n: number,
    nIn: number,
    nOut: number,
  ): Promise<Float32Array> {
    addTo(dw, await this.mm.bmm({ a: dy, b: x, batch: 1, m: nOut, k: n, n: nIn, transA: true }));
    return this.mm.bmm({ a: dy, b: w, batch: 1, m: n, k: nOut, n: nIn });
  }

  /**
   * The forward over tokens [B*T]; keeps every activation the backward needs. With docStart [B*T], each row holds
   * several packed documents: a token attends only within its document and its position counts from the
   * document's start, exactly as if each document were its own sequence.
   */
  async forward(
    p: Params,
    tokens: Int32Array,
    batch: number,
    seq: number,
    docStart: Int32Array | null = null,
  ): Promise<Acts> {
    const c = this.config;
    const { hiddenSize: D, nHeads: H, nKvHeads: KV, headDim: hd, intermediateSize: F, vocabSize: V } = c;
    const N = batch * seq;
    if (tokens.length !== N || seq > c.maxPositions) {
      throw new SteerlabError("bad_input", "token batch does not match its shape", {
        expected: `${N} tokens, seq <= ${c.maxPositions}`,
        got: `${tokens.length} tokens, seq ${seq}`,
      });
    }
    const emb = p.get("tok_embd")!;
    let x: Float32Array = new Float32Array(N * D); // [N, D]
    for (let r = 0; r < N; r++) {
      const t = tokens[r]!;
      if (!(t >= 0 && t < V)) {
        throw new SteerlabError("bad_input", `token id ${t} is outside the vocabulary`, {
          expected: `< ${V}`,
        });
      }
      x.set(emb.subarray(t * D, (t + 1) * D), r * D);
    }
    const layers: LayerActs[] = [];
    for (let l = 0; l < c.nLayers; l++) {
      const w = (s: string) => p.get(`blocks.${l}.${s}`)!;
      const rstd1 = new Float32Array(N);
      const xn1 = new Float32Array(N * D);
      rmsnormForward(xn1, rstd1, x, w("attn_norm.weight"), N, D, c.normEps);
      const q = await this.linear(xn1, w("attn.q.weight"), N, D, H * hd);
      const k = await this.linear(xn1, w("attn.k.weight"), N, D, KV * hd);
      const v = await this.linear(xn1, w("attn.v.weight"), N, D, KV * hd);
      rope(q, N, seq, H, hd, this.rope, 1, docStart);
      rope(k, N, seq, KV, hd, this.rope, 1, docStart);
      const qh = new Float32Array(N * H * hd);
      const kh = new Float32Array(N * H * hd);
      const vh = new Float32Array(N * H * hd);
      splitHeads(qh, q, batch, seq, H, hd, true);
      splitHeads(kh, repeatKv(k, N, KV, H, hd), batch, seq, H, hd, true);
      splitHeads(vh, repeatKv(v, N, KV, H, hd), batch, seq, H, hd, true);
      const BH = batch * H;
      const probs = await this.mm.bmm({ a: qh, b: kh, batch: BH, m: seq, k: hd, n: seq, transB: true });
      causalSoftmaxForward(probs, BH, seq, 1 / Math.sqrt(hd), docStart, H);
      const oh = await this.mm.bmm({ a: probs, b: vh, batch: BH, m: seq, k: seq, n: hd });
      const att = new Float32Array(N * H * hd);
      splitHeads(att, oh, batch, seq, H, hd, false);
      const x2 = await this.linear(att, w("attn.o.weight"), N, H * hd, D);
      addTo(x2, x);
      const rstd2 = new Float32Array(N);
      const xn2 = new Float32Array(N * D);
      rmsnormForward(xn2, rstd2, x2, w("mlp_norm.weight"), N, D, c.normEps);
      const g = await this.linear(xn2, w("mlp.gate.weight"), N, D, F);
      const u = await this.linear(xn2, w("mlp.up.weight"), N, D, F);
      const h = new Float32Array(N * F);
      const sig = new Float32Array(N * F);
      swigluForward(h, sig, g, u);
      const x3 = await this.linear(h, w("mlp.down.weight"), N, F, D);
      addTo(x3, x2);
      layers.push({ x, rstd1, xn1, qh, kh, vh, p: probs, att, x2, rstd2, xn2, g, u, sig, h });
      x = x3;
    }
    const rstdF = new Float32Array(N);
    const xf = new Float32Array(N * D);
    rmsnormForward(xf, rstdF, x, p.get("final_norm.weight")!, N, D, c.normEps);
    const logits = await this.linear(xf, p.get("lm_head.weight")!, N, D, V);
    return { batch, seq, tokens, docStart, layers, xL: x, rstdF, xf, logits };
  }

  /**
   * Mean cross-entropy of next tokens (targets [B*T], -1 = not scored; optional per-target weights [B*T]) and its
   * gradient, added into `grads`.
   * Consumes acts.logits (turned into dlogits).
   */
  async backward(
    p: Params,
    grads: Params,
    acts: Acts,
    targets: Int32Array,
    weights: Float32Array | null = null,
  ): Promise<number> {
    const c = this.config;
    const { hiddenSize: D, nHeads: H, nKvHeads: KV, headDim: hd, intermediateSize: F, vocabSize: V } = c;
    const { batch, seq } = acts;
    const N = batch * seq;
    const BH = batch * H;
    const scale = 1 / Math.sqrt(hd);
    const loss = crossEntropyForwardBackward(acts.logits, targets, weights, N, V);
    const dxf = await this.linearBackward(
      acts.logits,
      acts.xf,
      p.get("lm_head.weight")!,
      grads.get("lm_head.weight")!,
      N,
      D,
      V,
    );
    let dx = new Float32Array(N * D); // [N, D] gradient of the residual stream
    rmsnormBackward(
      dx,
      grads.get("final_norm.weight")!,
      dxf,
      acts.xL,
      acts.rstdF,
      p.get("final_norm.weight")!,
      N,
      D,
    );
    for (let l = c.nLayers - 1; l >= 0; l--) {
      const a = acts.layers[l]!;
      const w = (s: string) => p.get(`blocks.${l}.${s}`)!;
      const dw = (s: string) => grads.get(`blocks.${l}.${s}`)!;
      // MLP: x3 = x2 + down(silu(gate(xn2)) * up(xn2))
      const dh = await this.linearBackward(dx, a.h, w("mlp.down.weight"), dw("mlp.down.weight"), N, F, D);
      const dg = new Float32Array(N * F);
      const du = new Float32Array(N * F);
      swigluBackward(dg, du, dh, a.g, a.u, a.sig);
      const dxn2 = await this.linearBackward(dg, a.xn2, w("mlp.gate.weight"), dw("mlp.gate.weight"), N, D, F);
      addTo(dxn2, await this.linearBackward(du, a.xn2, w("mlp.up.weight"), dw("mlp.up.weight"), N, D, F));
      const dx2 = dx; // residual path, then the norm's contribution
      rmsnormBackward(dx2, dw("mlp_norm.weight"), dxn2, a.x2, a.rstd2, w("mlp_norm.weight"), N, D);
      // attention: x2 = x + o(attn(rope(q(xn1)), rope(k(xn1)), v(xn1)))
      const datt = await this.linearBackward(
        dx2,
        a.att,
        w("attn.o.weight"),
        dw("attn.o.weight"),
        N,
        H * hd,
        D,
      );
      const doh = new Float32Array(N * H * hd);
      splitHeads(doh, datt, batch, seq, H, hd, true);
      const dprobs = await this.mm.bmm({ a: doh, b: a.vh, batch: BH, m: seq, k: hd, n: seq, transB: true });
      const dvh = await this.mm.bmm({ a: a.p, b: doh, batch: BH, m: seq, k: seq, n: hd, transA: true });
      causalSoftmaxBackward(dprobs, a.p, BH, seq, scale);
      const dqh = await this.mm.bmm({ a: dprobs, b: a.kh, batch: BH, m: seq, k: seq, n: hd });
      const dkh = await this.mm.bmm({ a: dprobs, b: a.qh, batch: BH, m: seq, k: seq, n: hd, transA: true });
      const dq = new Float32Array(N * H * hd);
      const dkRep = new Float32Array(N * H * hd);
      const dvRep = new Float32Array(N * H * hd);
      splitHeads(dq, dqh, batch, seq, H, hd, false);
      splitHeads(dkRep, dkh, batch, seq, H, hd, false);
      splitHeads(dvRep, dvh, batch, seq, H, hd, false);
      const dk = sumKv(dkRep, N, KV, H, hd);
      const dv = sumKv(dvRep, N, KV, H, hd);
      rope(dq, N, seq, H, hd, this.rope, -1, acts.docStart);
      rope(dk, N, seq, KV, hd, this.rope, -1, acts.docStart);
      const dxn1 = await this.linearBackward(
        dq,
        a.xn1,
        w("attn.q.weight"),
        dw("attn.q.weight"),
        N,
        D,
        H * hd,
      );
      addTo(
        dxn1,
        await this.linearBackward(dk, a.xn1, w("attn.k.weight"), dw("attn.k.weight"), N, D, KV * hd),
      );
      addTo(
        dxn1,
        await this.linearBackward(dv, a.xn1, w("attn.v.weight"), dw("attn.v.weight"), N, D, KV * hd),
      );
      rmsnormBackward(dx2, dw("attn_norm.weight"), dxn1, a.x, a.rstd1, w("attn_norm.weight"), N, D);
      dx = dx2;
    }
    const demb = grads.get("tok_embd")!;
    for (let r = 0; r < N; r++) {
      const o = acts.tokens[r]! * D;
      for (let i = 0; i < D; i++) demb[o + i] += dx[r * D + i]!;
    }
    return loss;
  }
}

/** [N, KV*hd] -> [N, H*hd]: query head h reads KV head floor(h / (H/KV)) (HF repeat_kv). */
function repeatKv(x: Float32Array, n: number, kv: number, h: number, hd: number): Float32Array {
  if (kv === h) return x;
  const group = h / kv;
  const out = new Float32Array(n * h * hd);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < h; i++) {
      const src = (r * kv + Math.floor(i / group)) * hd;
      out.set(x.subarray(src, src + hd), (r * h + i) * hd);
    }
  }
  return out;
}

/** Backward of repeatKv: [N, H*hd] -> [N, KV*hd], summing each group. */
function sumKv(x: Float32Array, n: number, kv: number, h: number, hd: number): Float32Array {
  if (kv === h) return x;
  const group = h / kv;
  const out = new Float32Array(n * kv * hd);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < h; i++) {
      const dst = (r * kv + Math.floor(i / group)) * hd;
      const src = (r * h + i) * hd;
      for (let j = 0; j < hd; j++) out[dst + j] += x[src + j]!;
    }
  }
  return out;
}
