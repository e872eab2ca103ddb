/**
 * An architecture is data: the structural choices a forward pass needs and the weight-name maps of the formats.
 * Shared code asks structural questions (spec.mlp === "gated-silu"), never "is this Qwen?".
 */
export type ArchName = "llama" | "mistral" | "qwen2" | "gpt2";

export interface ArchSpec {
  name: ArchName;
  /** rms: x / rms(x) * w.  layer: (x - mean) / std * w + b. */
  norm: "rms" | "layer";
  /** gated-silu: down(silu(gate(x)) * up(x)).  gelu-tanh: down(gelu_tanh(up(x) + b) + b). */
  mlp: "gated-silu" | "gelu-tanh";
  /** rope: rotary on q and k (HF rotate_half layout).  learned: an absolute position embedding table. */
  positional: "rope" | "learned";
  /** Which linear layers carry a bias. */
  bias: { qkv: boolean; o: boolean; mlp: boolean };
  /** Maps a canonical weight name (see weights.ts) to the Hugging Face safetensors name. */
  hfName(canonical: string): string;
  /** Maps a canonical weight name to the GGUF tensor name llama.cpp uses. */
  ggufName(canonical: string): string;
  /** GGUF `general.architecture` value. */
  ggufArch: string;
  /** How a Hugging Face folder of this architecture spells its config.json and stores its linears. */
  hf: HfLayout;
}

/** config.json keys of each config field (the first present wins; the first is written) and defaults. */
export interface HfLayout {
  className: string;
  /** "conv1d": linears stored [in, out] (GPT-2's Conv1D); "linear": [out, in]. */
  linears: "linear" | "conv1d";
  keys: {
    hidden: string[];
    layers: string[];
    heads: string[];
    /** null: no grouped-query attention in this format (kv heads = heads). */
    kvHeads: string[] | null;
    /** null: head dim is always hidden / heads. */
    headDim: string[] | null;
    ffn: string[];
    eps: string[];
    positions: string[];
  };
  defaults: {
    /** intermediate size = ffnPerHidden * hidden when absent (or null); undefined: required. */
    ffnPerHidden?: number;
    eps: number;
    /** undefined: required. */
    positions?: number;
    /** tie_word_embeddings when absent. */
    tied: boolean;
  };
  /** Fixed fields written to config.json (activation names). */
  extra: Record<string, string>;
}

/** Canonical → GGUF names, shared by every llama.cpp architecture (llama.cpp uses one naming scheme). */
export function ggufNameCommon(c: string): string {
  const fixed: Record<string, string> = {
    tok_embd: "token_embd.weight",
    pos_embd: "position_embd.weight",
    "final_norm.weight": "output_norm.weight",
    "final_norm.bias": "output_norm.bias",
    "lm_head.weight": "output.weight",
  };
  if (fixed[c]) return fixed[c];
  const m = /^blocks\.(\d+)\.(.+)$/.exec(c);
  if (!m) throw new Error(`no GGUF name for canonical weight ${c}`);
  const sub: Record<string, string> = {
    "attn_norm.weight": "attn_norm.weight",
    "attn_norm.bias": "attn_norm.bias",
    "attn.q.weight": "attn_q.weight",
    "attn.q.bias": "attn_q.bias",
    "attn.k.weight": "attn_k.weight",
    "attn.k.bias": "attn_k.bias",
    "attn.v.weight": "attn_v.weight",
    "attn.v.bias": "attn_v.bias",
    "attn.o.weight": "attn_output.weight",
    "attn.o.bias": "attn_output.bias",
    "mlp_norm.weight": "ffn_norm.weight",
    "mlp_norm.bias": "ffn_norm.bias",
    "mlp.gate.weight": "ffn_gate.weight",
    "mlp.up.weight": "ffn_up.weight",
    "mlp.up.bias": "ffn_up.bias",
    "mlp.down.weight": "ffn_down.weight",
    "mlp.down.bias": "ffn_down.bias",
  };
  const s = sub[m[2]!];
  if (!s) throw new Error(`no GGUF name for canonical weight ${c}`);
  return `blk.${m[1]}.${s}`;
}
