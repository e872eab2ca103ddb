import { SteerlabError } from "../../errors.js";
import { gpt2 } from "./gpt2.js";
import { llama } from "./llama.js";
import { mistral } from "./mistral.js";
import { qwen2 } from "./qwen2.js";
import type { ArchName, ArchSpec } from "./spec.js";

export const ARCHS: Record<ArchName, ArchSpec> = { llama, mistral, qwen2, gpt2 };

export function isArchName(s: string): s is ArchName {
  return Object.hasOwn(ARCHS, s);
}

export function archSpec(name: string, file?: string): ArchSpec {
  if (!isArchName(name)) {
    throw new SteerlabError("unsupported", `unsupported architecture "${name}"`, {
      file,
      field: "model_type",
      expected: Object.keys(ARCHS).join(" | "),
      got: name,
    });
  }
  return ARCHS[name];
}

/**
 * The architecture identity of a model: llama.cpp's architecture name, i.e. the computation. A Mistral folder
 * (model_type "mistral") and its GGUF (written as "llama") are one identity; vector files and fingerprints
 * compare identities, not format-specific names. Unknown names are their own identity.
 */
export function archIdentity(name: string): string {
  return isArchName(name) ? ARCHS[name].ggufArch : name;
}
