/**
 * Model fingerprint: sha256 over what defines the computation (the architecture identity and the config's
 * shape and numeric facts), the sorted canonical tensor names and shapes, and the first and last 4 KiB of each
 * tensor's f32 data. Computed on canonical weights, so an F32 safetensors folder and an F32 GGUF of the same
 * model give the same fingerprint, also when the GGUF names a Mistral "llama" or states another context length.
 * Left out: the context length (a run limit, often different in GGUF files) and the special-token ids
 * (tokenizer facts). Vector files record it.
 * Only the sampled rows are read (by byte range from lazily loaded files), so it costs a few reads per tensor,
 * not a pass over the file.
 */
import { createHash } from "node:crypto";
import { archIdentity } from "./arch/registry.js";
import type { ModelConfig } from "./config.js";
import { denseRows, LazyWeights, type ModelWeights, sliceRows } from "./weights.js";

const SAMPLE_BYTES = 4096;

export function modelFingerprint(config: ModelConfig, weights: ModelWeights): string {
  const h = createHash("sha256");
  const { arch, maxPositions: _ctx, bosTokenId: _bos, eosTokenIds: _eos, ...facts } = config;
  h.update(JSON.stringify({ arch: archIdentity(arch), ...facts }));
  for (const name of [...weights.keys()].sort()) {
    const shape = weights instanceof LazyWeights ? weights.shapeOf(name)! : weights.get(name)!.shape;
    h.update(`\n${name}[${shape.join(",")}]`);
    const rows = (a: number, b: number): Float32Array => {
      if (weights instanceof LazyWeights) return denseRows(weights.rows(name, a, b)!);
      const w = weights.get(name)!;
      return denseRows(sliceRows(w, a, b));
    };
    h.update(sample(shape, rows));
  }
  return h.digest("hex");
}

function bytesOf(f: Float32Array): Uint8Array {
  return new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
}

/**
 * The f32 bytes hashed for a tensor: all of them up to 2 * SAMPLE_BYTES, else the first and last SAMPLE_BYTES,
 * reading (and dequantizing) only the rows they fall in.
 */
function sample(shape: readonly number[], rows: (a: number, b: number) => Float32Array): Uint8Array {
  const R = shape[0] ?? 1;
  const C = shape.length > 1 ? shape.slice(1).reduce((a, b) => a * b, 1) : 1;
  const n = SAMPLE_BYTES / 4;
  if (R * C <= 2 * n) return bytesOf(rows(0, R));
  const k = Math.ceil(n / C);
  const head = rows(0, k).subarray(0, n);
  const tail = rows(R - k, R);
  const out = new Float32Array(2 * n);
  out.set(head);
  out.set(tail.subarray(tail.length - n), n);
  return bytesOf(out);
}
