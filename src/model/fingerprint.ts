/**
 * Model fingerprint: sha256 over the normalized config, the sorted canonical tensor names and shapes, and the
 * first and last 4 KiB of each tensor's f32 data. Computed on canonical weights, so an F32 safetensors folder and
 * an F32 GGUF of the same model with the same config give the same fingerprint. Vector files record it.
 */
import { createHash } from "node:crypto";
import type { ModelConfig } from "./config.js";
import type { Weights } from "./weights.js";

const SAMPLE_BYTES = 4096;

export function modelFingerprint(config: ModelConfig, weights: Weights): string {
  const h = createHash("sha256");
  h.update(JSON.stringify(config));
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
