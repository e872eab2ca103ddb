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
import { denseRows, isQuant, type ModelWeights } from "./weights.js";

const SAMPLE_BYTES = 4096;

export function modelFingerprint(config: ModelConfig, weights: ModelWeights): string {
  const h = createHash("sha256");
  const { arch, maxPositions: _ctx, bosTokenId: _bos, eosTokenIds: _eos, ...facts } = config;
  h.update(JSON.stringify({ arch: archIdentity(arch), ...facts }));
  for (const name of [...weights.keys()].sort()) {
    const t = weights.get(name)!;
    h.update(`\n${name}[${t.shape.join(",")}]`);
    const b = isQuant(t) ? quantSample(t.shape, (a, z) => denseRows(t, a, z)) : bytesOf(t.data);
    if (b.length <= 2 * SAMPLE_BYTES) h.update(b);
    else {
      h.update(b.subarray(0, SAMPLE_BYTES));
      h.update(b.subarray(b.length - SAMPLE_BYTES));
    }
  }
  return h.digest("hex");
}

function bytesOf(f: Float32Array): Uint8Array {
  return new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
}

/**
 * The f32 bytes the sample reads (first and last SAMPLE_BYTES) of a quantized matrix, dequantizing only the
 * rows they fall in; the result hashes like the dense tensor would.
 */
function quantSample(
  shape: readonly [number, number],
  rows: (a: number, b: number) => Float32Array,
): Uint8Array {
  const [R, C] = shape;
  const n = SAMPLE_BYTES / 4;
  if (R * C <= 2 * n) return bytesOf(rows(0, R));
  const head = rows(0, Math.ceil(n / C)).subarray(0, n);
  const lastRows = Math.ceil(n / C);
  const tail = rows(R - lastRows, R);
  const out = new Float32Array(2 * n);
  out.set(head);
  out.set(tail.subarray(tail.length - n), n);
  return bytesOf(out);
}
