import { llama } from "./llama.js";
import type { ArchSpec } from "./spec.js";

/** Mistral is the Llama layout (sliding-window attention is ignored: steerlab's contexts are shorter). */
export const mistral: ArchSpec = {
  ...llama,
  name: "mistral",
  ggufArch: "llama",
  hf: { ...llama.hf, className: "MistralForCausalLM" },
};
