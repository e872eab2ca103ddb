import { type ArchSpec, ggufNameCommon } from "./spec.js";

/**
 * GPT-2: LayerNorm, learned positions, GELU (tanh) MLP, biases everywhere, tied embeddings.
 * HF stores a fused c_attn as Conv1D [in, out]; the loader splits and transposes it into the canonical
 * q/k/v [out, in] (the names below point at the fused tensor with a ":q|:k|:v" suffix for the loader).
 */
export function gpt2HfName(c: string): string {
  const fixed: Record<string, string> = {
    tok_embd: "wte.weight",
    pos_embd: "wpe.weight",
    "final_norm.weight": "ln_f.weight",
    "final_norm.bias": "ln_f.bias",
    "lm_head.weight": "lm_head.weight",
  };
  if (fixed[c]) return fixed[c];
  const m = /^blocks\.(\d+)\.(.+)$/.exec(c);
  if (!m) throw new Error(`no HF name for canonical weight ${c}`);
  const sub: Record<string, string> = {
    "attn_norm.weight": "ln_1.weight",
    "attn_norm.bias": "ln_1.bias",
    "attn.q.weight": "attn.c_attn.weight:q",
    "attn.k.weight": "attn.c_attn.weight:k",
    "attn.v.weight": "attn.c_attn.weight:v",
    "attn.q.bias": "attn.c_attn.bias:q",
    "attn.k.bias": "attn.c_attn.bias:k",
    "attn.v.bias": "attn.c_attn.bias:v",
    "attn.o.weight": "attn.c_proj.weight",
    "attn.o.bias": "attn.c_proj.bias",
    "mlp_norm.weight": "ln_2.weight",
    "mlp_norm.bias": "ln_2.bias",
    "mlp.up.weight": "mlp.c_fc.weight",
    "mlp.up.bias": "mlp.c_fc.bias",
    "mlp.down.weight": "mlp.c_proj.weight",
    "mlp.down.bias": "mlp.c_proj.bias",
  };
  const s = sub[m[2]!];
  if (!s) throw new Error(`no HF name for canonical weight ${c}`);
  return `h.${m[1]}.${s}`;
}

/** GGUF gpt2 fuses q/k/v into blk.N.attn_qkv (rows q then k then v, [out, in]); ":q|:k|:v" marks the slice. */
function gpt2GgufName(c: string): string {
  const m = /^blocks\.(\d+)\.attn\.([qkv])\.(weight|bias)$/.exec(c);
  if (m) return `blk.${m[1]}.attn_qkv.${m[3]}:${m[2]}`;
  return ggufNameCommon(c);
}

export const gpt2: ArchSpec = {
  name: "gpt2",
  norm: "layer",
  mlp: "gelu-tanh",
  positional: "learned",
  bias: { qkv: true, o: true, mlp: true },
  hfName: gpt2HfName,
  ggufName: gpt2GgufName,
  ggufArch: "gpt2",
  hf: {
    className: "GPT2LMHeadModel",
    linears: "conv1d",
    keys: {
      hidden: ["n_embd"],
      layers: ["n_layer"],
      heads: ["n_head"],
      kvHeads: null,
      headDim: null,
      ffn: ["n_inner"],
      eps: ["layer_norm_epsilon"],
      positions: ["n_positions", "n_ctx"],
    },
    defaults: { ffnPerHidden: 4, eps: 1e-5, tied: true },
    extra: { activation_function: "gelu_new" },
  },
};
