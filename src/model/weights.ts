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
import { fmtShape, shapeEquals, type Tensor } from "../tensor.js";
import { archSpec } from "./arch/registry.js";
import type { ModelConfig } from "./config.js";

export type Weights = Map<string, Tensor>;

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
export function checkWeights(c: ModelConfig, w: Weights, file: string): void {
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
export function lmHead(c: ModelConfig, w: Weights): Tensor {
  return w.get(c.tiedEmbeddings ? "tok_embd" : "lm_head.weight")!;
}
