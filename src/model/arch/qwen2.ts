import { llama } from "./llama.js";
import type { ArchSpec } from "./spec.js";

/** Qwen2: the Llama layout with biases on q, k and v. */
export const qwen2: ArchSpec = {
  ...llama,
  name: "qwen2",
  bias: { qkv: true, o: false, mlp: false },
  ggufArch: "qwen2",
  hf: { ...llama.hf, className: "Qwen2ForCausalLM" },
};
