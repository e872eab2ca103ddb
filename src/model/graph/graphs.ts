/**
 * The graphs the ONNX Runtime engine runs, sized so that TypeScript holds the residual stream at every hook point:
 *   embed+head:  ids [B,T] (+ pos [B,T]) ─► embed [B,T,D];   hidden [N,D] ─► final norm ─► logits [N,V]
 *   attn(l):     resid_pre [B,T,D] ─► norm ─► attention ─► attn_out [B,T,D]  (+ new K^T/V)
 *   mlp(l):      resid_mid [B,T,D] ─► norm ─► mlp ─► mlp_out [B,T,D]
 *   block(l):    resid_pre ─► attn ─(+)─► mlp ─(+)─► resid_post   (fused: only resid hooks can see inside)
 *   span(a..b):  blocks a..b fused the same way (hooks only at resid_pre[a] and resid_post[b])
 * Graph input/output names are plain (hidden, mask, ...); node and weight names are hierarchical.
 */
import { SteerlabError } from "../../errors.js";
import { archSpec } from "../arch/registry.js";
import type { ModelConfig } from "../config.js";
import { denseWeight, isQuant, type ModelWeights, W, type Weight } from "../weights.js";
import { attention } from "./attention.js";
import { type Dim, GraphBuilder, type GraphSettings, type Value } from "./builder.js";
import { mlp, norm, type WeightFn } from "./layers.js";
import { type NBitsInits, nbitsGather, nbitsInits, nbitsMatMul, toNBits } from "./nbits.js";

/** A built graph, not yet encoded: encode it with or without external weights. */
export interface BuiltGraph {
  name: string;
  builder: GraphBuilder;
  weightBytes: number;
}

export function weightFn(w: ModelWeights): WeightFn {
  return (name: string): Weight => {
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

/** Inputs of one block's cache: K^T [B, KV, hd, C] and V [B, KV, C, hd] (named past_k, or past_k.l in a span). */
function pastInputs(g: GraphBuilder, c: ModelConfig, suffix = "") {
  return {
    pastK: g.input(`past_k${suffix}`, "float32", [B, c.nKvHeads, c.headDim, "slots"]),
    pastV: g.input(`past_v${suffix}`, "float32", [B, c.nKvHeads, "slots", c.headDim]),
  };
}

/** Inputs every block of a call shares: hidden, mask, rope tables (rope archs only). */
function sharedInputs(g: GraphBuilder, c: ModelConfig) {
  const rope = archSpec(c.arch).positional === "rope";
  const hd = c.headDim;
  return {
    hidden: g.input("hidden", "float32", [B, T, c.hiddenSize]),
    mask: g.input("mask", "float32", [B, 1, T, "slots_plus_seq"]),
    cos: rope ? g.input("cos", "float32", [B, T, 1, hd]) : null,
    sin: rope ? g.input("sin", "float32", [B, T, 1, hd]) : null,
  };
}

/** Inputs of the attention half: the shared ones and one block's past K/V. */
function attnInputs(g: GraphBuilder, c: ModelConfig) {
  return { ...sharedInputs(g, c), ...pastInputs(g, c) };
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
  const h = norm(blk, x, spec, w, W.prefix(l, "attn_norm"), c.normEps);
  return attention(blk.scope("attn"), h, c, spec.bias.qkv, spec.bias.o, w, W.prefix(l, "attn"), io, {
    k: io.pastK,
    v: io.pastV,
  });
}

function mlpPart(g: GraphBuilder, c: ModelConfig, w: WeightFn, l: number, x: Value): Value {
  const spec = archSpec(c.arch);
  const blk = g.scope(`blocks.${l}`);
  const h = norm(blk, x, spec, w, W.prefix(l, "mlp_norm"), c.normEps);
  return mlp(blk.scope("mlp"), h, spec, w, W.prefix(l, "mlp"));
}

/** This call's new K^T and V of a block as outputs new_k/new_v (`suffix` ".l" in a span of blocks). */
function kvOutputs(g: GraphBuilder, c: ModelConfig, a: { k: Value; v: Value }, suffix = ""): void {
  g.output(a.k, `new_k${suffix}`, "float32", [B, c.nKvHeads, c.headDim, T]);
  g.output(a.v, `new_v${suffix}`, "float32", [B, c.nKvHeads, T, c.headDim]);
}

/** Block l inside a graph: resid_pre x ─► attention ─(+)─► MLP ─(+)─► resid_post, with the block's new K^T and V. */
function blockPart(
  g: GraphBuilder,
  c: ModelConfig,
  w: WeightFn,
  l: number,
  x: Value,
  io: ReturnType<typeof attnInputs>,
): { post: Value; k: Value; v: Value } {
  const a = attnPart(g, c, w, l, x, io);
  const res = g.scope(`blocks.${l}`).scope("residual");
  const mid = res.op("Add", [x, a.out], {}, "AddAttn");
  return { post: res.op("Add", [mid, mlpPart(g, c, w, l, mid)], {}, "AddMlp"), k: a.k, v: a.v };
}

/** attn(l): hidden=resid_pre ─► attn_out, new_k, new_v. */
export function attnGraph(
  c: ModelConfig,
  w: WeightFn,
  l: number,
  settings: Partial<GraphSettings> = {},
): BuiltGraph {
  const g = GraphBuilder.create(settings);
  const io = attnInputs(g, c);
  const a = attnPart(g, c, w, l, io.hidden, io);
  g.output(a.out, "attn_out", "float32", [B, T, c.hiddenSize]);
  kvOutputs(g, c, a);
  return finish(g, `attn.${l}`);
}

/** mlp(l): hidden=resid_mid ─► mlp_out. */
export function mlpGraph(
  c: ModelConfig,
  w: WeightFn,
  l: number,
  settings: Partial<GraphSettings> = {},
): BuiltGraph {
  const g = GraphBuilder.create(settings);
  const x = g.input("hidden", "float32", [B, T, c.hiddenSize]);
  g.output(mlpPart(g, c, w, l, x), "mlp_out", "float32", [B, T, c.hiddenSize]);
  return finish(g, `mlp.${l}`);
}

/** block(l): hidden=resid_pre ─► resid_post, new_k, new_v (residual adds inside the graph). */
export function blockGraph(
  c: ModelConfig,
  w: WeightFn,
  l: number,
  settings: Partial<GraphSettings> = {},
): BuiltGraph {
  const g = GraphBuilder.create(settings);
  const io = attnInputs(g, c);
  const b = blockPart(g, c, w, l, io.hidden, io);
  g.output(b.post, "resid_post", "float32", [B, T, c.hiddenSize]);
  kvOutputs(g, c, b);
  return finish(g, `block.${l}`);
}

/**
 * span(a..b): blocks a..b as one graph, resid_pre[a] ─► block(a) ─► ... ─► block(b) ─► resid_post[b], with the
 * new K^T/V of each block l (inputs past_k.l, past_v.l; outputs new_k.l, new_v.l). One run instead of b - a + 1
 * when nothing is hooked between the blocks; each block's weights are in exactly one span.
 */
export function spanGraph(
  c: ModelConfig,
  w: WeightFn,
  from: number,
  to: number,
  settings: Partial<GraphSettings> = {},
): BuiltGraph {
  const g = GraphBuilder.create(settings);
  const shared = sharedInputs(g, c);
  let x = shared.hidden;
  for (let l = from; l <= to; l++) {
    const b = blockPart(g, c, w, l, x, { ...shared, ...pastInputs(g, c, `.${l}`) });
    x = b.post;
    kvOutputs(g, c, b, `.${l}`);
  }
  g.output(x, "resid_post", "float32", [B, T, c.hiddenSize]);
  return finish(g, `span.${from}-${to}`);
}

/**
 * embed+head, one graph so a tied embedding is held once:
 *   ids [B,T] ─► Gather(tok_embd) ─(+ Gather(pos_embd, pos))─► embed [B,T,D]
 *   hidden [N,D] ─► final norm ─► Gemm(lm_head, transB) ─► logits [N,V]
 * Run it with one dummy row of ids or hidden when only one half is wanted (never a zero-size tensor).
 */
export function headGraph(c: ModelConfig, w: WeightFn, settings: Partial<GraphSettings> = {}): BuiltGraph {
  const spec = archSpec(c.arch);
  const g = GraphBuilder.create(settings);
  const D = c.hiddenSize;
  const ids = g.input("ids", "int64", [B, T]);
  const tok = w(W.tokEmbd);
  const emb = g.scope("embed");
  // A quantized embedding is gathered row by row from its blocks; a tied head then shares its codes.
  let tq: NBitsInits | null = null;
  let te: Value | null = null;
  let e: Value;
  if (isQuant(tok)) {
    tq = nbitsInits(g, "tok_embd", toNBits(tok));
    e = nbitsGather(emb, ids, tq, "tok_embd");
  } else {
    te = g.weight("tok_embd", tok.shape, tok.data);
    e = emb.op("Gather", [te, ids], { axis: 0 }, "GatherTok");
  }
  if (spec.positional === "learned") {
    const pos = g.input("pos", "int64", [B, T]);
    const pt = denseWeight(w(W.posEmbd));
    const pe = g.weight("pos_embd", pt.shape, pt.data);
    e = emb.op("Add", [e, emb.op("Gather", [pe, pos], { axis: 0 }, "GatherPos")]);
  }
  g.output(e, "embed", "float32", [B, T, D]);

  const hidden = g.input("hidden", "float32", ["rows", D]);
  const h = norm(g, hidden, spec, w, "final_norm", c.normEps);
  const lm = g.scope("lm_head");
  const acc = g.settings.quantAccuracy;
  let logits: Value;
  if (c.tiedEmbeddings) {
    logits = tq ? nbitsMatMul(lm, h, tq, "lm_head", acc, 2) : lm.op("Gemm", [h, te!], { transB: 1 });
  } else {
    const head = w(W.lmHead);
    logits = isQuant(head)
      ? nbitsMatMul(lm, h, nbitsInits(g, "lm_head.weight", toNBits(head)), "lm_head", acc, 2)
      : lm.op("Gemm", [h, g.weight("lm_head.weight", [c.vocabSize, D], head.data)], { transB: 1 });
  }
  g.output(logits, "logits", "float32", ["rows", c.vocabSize]);
  return finish(g, "head");
}
