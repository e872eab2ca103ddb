/**
 * Model fingerprint: sha256 over what defines the computation (the architecture identity and the config's
 * shape and numeric facts), the sorted canonical tensor names and shapes, and the first and last 4 KiB of each
 * tensor's f32 data. Computed on canonical weights, so an F32 safetensors folder and an F32 GGUF of the same
 * model give the same fingerprint, also when the GGUF names a Mistral "llama" or states another context length.
 * Left out: the context length (a run limit, often different in GGUF files) and the special-token ids
 * (tokenizer facts). Vector files record it.
 */
import { createHash } from "node:crypto";
import { archIdentity } from "./arch/registry.js";
import type { ModelConfig } from "./config.js";
import type { Weights } from "./weights.js";

const SAMPLE_BYTES = 4096;

export function modelFingerprint(config: ModelConfig, weights: Weights): string {
  const h = createHash("sha256");
  const { arch, maxPositions: _ctx, bosTokenId: _bos, eosTokenIds: _eos, ...facts } = config;
  h.update(JSON.stringify({ arch: archIdentity(arch), ...facts }));
  for (const name of [...weights.keys()].sort()) {
    const t = weights.get(name)!;
    h.update(`\n${name}[${t.shape.join(",")}]`);
    const b = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    if (b.length <= 2 * SAMPLE_BYTES) h.update(b);
    else {
      h.update(b.subarray(0, SAMPLE_BYTES));
      h.update(b.subarray(b.length - SAMPLE_BYTES));
    }
  }
  return h.digest("hex");
}
