import { type ArchSpec, ggufNameCommon } from "./spec.js";

/** Canonical → HF names for the Llama family (also Mistral and Qwen2, which share the layout). */
export function llamaHfName(c: string): string {
  const fixed: Record<string, string> = {
    tok_embd: "model.embed_tokens.weight",
    "final_norm.weight": "model.norm.weight",
    "lm_head.weight": "lm_head.weight",
  };
  if (fixed[c]) return fixed[c];
  const m = /^blocks\.(\d+)\.(.+)$/.exec(c);
  if (!m) throw new Error(`no HF name for canonical weight ${c}`);
  const sub: Record<string, string> = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn.q.weight": "self_attn.q_proj.weight",
    "attn.q.bias": "self_attn.q_proj.bias",
    "attn.k.weight": "self_attn.k_proj.weight",
    "attn.k.bias": "self_attn.k_proj.bias",
    "attn.v.weight": "self_attn.v_proj.weight",
    "attn.v.bias": "self_attn.v_proj.bias",
    "attn.o.weight": "self_attn.o_proj.weight",
    "mlp_norm.weight": "post_attention_layernorm.weight",
    "mlp.gate.weight": "mlp.gate_proj.weight",
    "mlp.up.weight": "mlp.up_proj.weight",
    "mlp.down.weight": "mlp.down_proj.weight",
  };
  const s = sub[m[2]!];
  if (!s) throw new Error(`no HF name for canonical weight ${c}`);
  return `model.layers.${m[1]}.${s}`;
}

export const llama: ArchSpec = {
  name: "llama",
  norm: "rms",
  mlp: "gated-silu",
  positional: "rope",
  bias: { qkv: false, o: false, mlp: false },
  hfName: llamaHfName,
  ggufName: ggufNameCommon,
  ggufArch: "llama",
  hf: {
    className: "LlamaForCausalLM",
    linears: "linear",
    keys: {
      hidden: ["hidden_size"],
      layers: ["num_hidden_layers"],
      heads: ["num_attention_heads"],
      kvHeads: ["num_key_value_heads"],
      headDim: ["head_dim"],
      ffn: ["intermediate_size"],
      eps: ["rms_norm_eps"],
      positions: ["max_position_embeddings"],
    },
    defaults: { eps: 1e-6, positions: 2048, tied: false },
    extra: { hidden_act: "silu" },
  },
};
