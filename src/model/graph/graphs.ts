/**
 * The graphs the ONNX Runtime engine runs, sized so that TypeScript holds the residual stream at every hook point:
 *   embed+head:  ids [B,T] (+ pos [B,T]) ─► embed [B,T,D];   hidden [N,D] ─► final norm ─► logits [N,V]
 *   attn(l):     resid_pre [B,T,D] ─► norm ─► attention ─► attn_out [B,T,D]  (+ new K^T/V)
 *   mlp(l):      resid_mid [B,T,D] ─► norm ─► mlp ─► mlp_out [B,T,D]
 *   block(l):    resid_pre ─► attn ─(+)─► mlp ─(+)─► resid_post   (fused: only resid hooks can see inside)
 * Graph input/output names are plain (hidden, mask, ...); node and weight names are hierarchical.
 */
import { SteerlabError } from "../../errors.js";
import type { Tensor } from "../../tensor.js";
import { archSpec } from "../arch/registry.js";
import type { ModelConfig } from "../config.js";
import type { Weights } from "../weights.js";
import { attention } from "./attention.js";
import { type Dim, GraphBuilder, type Value } from "./builder.js";
import { mlp, norm, type WeightFn } from "./layers.js";

/** A built graph, not yet encoded: encode it with or without external weights. */
export interface BuiltGraph {
  name: string;
  builder: GraphBuilder;
  weightBytes: number;
}

export function weightFn(w: Weights): WeightFn {
  return (name: string): Tensor => {
    const t = w.get(name);
    if (!t) {
      throw new SteerlabError("bad_tensor", `weight ${name} is missing`, {
        field: name,
        hint: "the weights were released or the checkpoint is incomplete (see checkWeights)",
      });
    }
    return t;
  };
}

const B: Dim = "batch";
const T: Dim = "seq";

function finish(g: GraphBuilder, name: string): BuiltGraph {
  return { name, builder: g, weightBytes: g.initializerBytes };
}

/** Inputs of the attention half: hidden, mask, rope tables (rope archs only), past K/V. */
function attnInputs(g: GraphBuilder, c: ModelConfig) {
  const rope = archSpec(c.arch).positional === "rope";
  const hd = c.headDim;
  return {
    hidden: g.input("hidden", "float32", [B, T, c.hiddenSize]),
    mask: g.input("mask", "float32", [B, 1, T, "slots_plus_seq"]),
    cos: rope ? g.input("cos", "float32", [B, T, 1, hd]) : null,
    sin: rope ? g.input("sin", "float32", [B, T, 1, hd]) : null,
    pastK: g.input("past_k", "float32", [B, c.nKvHeads, hd, "slots"]), // K^T cache [B, KV, hd, C]
    pastV: g.input("past_v", "float32", [B, c.nKvHeads, "slots", hd]), // V cache [B, KV, C, hd]
  };
}

function attnPart(
  g: GraphBuilder,
  c: ModelConfig,
  w: WeightFn,
  l: number,
  x: Value,
  io: ReturnType<typeof attnInputs>,
) {
  const spec = archSpec(c.arch);
  const blk = g.scope(`blocks.${l}`);
  const h = norm(blk, x, spec, w, `blocks.${l}.attn_norm`, c.normEps);
  return attention(blk.scope("attn"), h, c, spec.bias.qkv, spec.bias.o, w, `blocks.${l}.attn`, io, {
    k: io.pastK,
    v: io.pastV,
  });
}

function mlpPart(g: GraphBuilder, c: ModelConfig, w: WeightFn, l: number, x: Value): Value {
  const spec = archSpec(c.arch);
  const blk = g.scope(`blocks.${l}`);
  const h = norm(blk, x, spec, w, `blocks.${l}.mlp_norm`, c.normEps);
  return mlp(blk.scope("mlp"), h, spec, w, `blocks.${l}.mlp`);
}

function kvOutputs(g: GraphBuilder, c: ModelConfig, a: { k: Value; v: Value }): void {
  g.output(a.k, "new_k", "float32", [B, c.nKvHeads, c.headDim, T]);
  g.output(a.v, "new_v", "float32", [B, c.nKvHeads, T, c.headDim]);
}

/** attn(l): hidden=resid_pre ─► attn_out, new_k, new_v. */
export function attnGraph(c: ModelConfig, w: WeightFn, l: number): BuiltGraph {
  const g = GraphBuilder.create();
  const io = attnInputs(g, c);
  const a = attnPart(g, c, w, l, io.hidden, io);
  g.output(a.out, "attn_out", "float32", [B, T, c.hiddenSize]);
  kvOutputs(g, c, a);
  return finish(g, `attn.${l}`);
}

/** mlp(l): hidden=resid_mid ─► mlp_out. */
export function mlpGraph(c: ModelConfig, w: WeightFn, l: number): BuiltGraph {
  const g = GraphBuilder.create();
  const x = g.input("hidden", "float32", [B, T, c.hiddenSize]);
  g.output(mlpPart(g, c, w, l, x), "mlp_out", "float32", [B, T, c.hiddenSize]);
  return finish(g, `mlp.${l}`);
}

/** block(l): hidden=resid_pre ─► resid_post, new_k, new_v (residual adds inside the graph). */
export function blockGraph(c: ModelConfig, w: WeightFn, l: number): BuiltGraph {
  const g = GraphBuilder.create();
  const io = attnInputs(g, c);
  const a = attnPart(g, c, w, l, io.hidden, io);
  const res = g.scope(`blocks.${l}`).scope("residual");
  const mid = res.op("Add", [io.hidden, a.out], {}, "AddAttn");
  const post = res.op("Add", [mid, mlpPart(g, c, w, l, mid)], {}, "AddMlp");
  g.output(post, "resid_post", "float32", [B, T, c.hiddenSize]);
  kvOutputs(g, c, a);
  return finish(g, `block.${l}`);
}

/**
 * embed+head, one graph so a tied embedding is held once:
 *   ids [B,T] ─► Gather(tok_embd) ─(+ Gather(pos_embd, pos))─► embed [B,T,D]
 *   hidden [N,D] ─► final norm ─► Gemm(lm_head, transB) ─► logits [N,V]
 * Run it with one dummy row of ids or hidden when only one half is wanted (never a zero-size tensor).
 */
export function headGraph(c: ModelConfig, w: WeightFn): BuiltGraph {
  const spec = archSpec(c.arch);
  const g = GraphBuilder.create();
  const D = c.hiddenSize;
  const ids = g.input("ids", "int64", [B, T]);
  const tok = w("tok_embd");
  const te = g.weight("tok_embd", tok.shape, tok.data);
  const emb = g.scope("embed");
  let e = emb.op("Gather", [te, ids], { axis: 0 }, "GatherTok");
  if (spec.positional === "learned") {
    const pos = g.input("pos", "int64", [B, T]);
    const pe = g.weight("pos_embd", w("pos_embd").shape, w("pos_embd").data);
    e = emb.op("Add", [e, emb.op("Gather", [pe, pos], { axis: 0 }, "GatherPos")]);
  }
  g.output(e, "embed", "float32", [B, T, D]);

  const hidden = g.input("hidden", "float32", ["rows", D]);
  const h = norm(g, hidden, spec, w, "final_norm", c.normEps);
  const head = c.tiedEmbeddings ? te : g.weight("lm_head.weight", [c.vocabSize, D], w("lm_head.weight").data);
  const logits = g.scope("lm_head").op("Gemm", [h, head], { transB: 1 });
  g.output(logits, "logits", "float32", ["rows", c.vocabSize]);
  return finish(g, "head");
}
