/**
 * Causal multi-head attention over the KV cache, with grouped-query heads and left-padding masks.
 *
 * Query head h reads KV head floor(h / (H / KV)) (HF repeat_kv). A query at cache slot s sees the real (unpadded)
 * slots 0..s of its row; a padded query sees nothing and outputs zeros.
 */
import type { ReferenceKV } from "./cache.js";
import { softmaxInPlace } from "./ops.js";

export interface AttentionShape {
  batch: number; // B
  seq: number; // T, tokens of this call
  start: number; // cache slot of this call's first token
  nHeads: number; // H
  nKvHeads: number; // KV
  headDim: number; // hd
}

/**
 * out [B, T, H*hd] = softmax(q k^T / sqrt(hd) + mask) v, with q [B, T, H*hd] (after RoPE) and k, v read from
 * cache layer `layer`, whose slots start .. start+T already hold this call's keys and values.
 */
export function attention(
  out: Float32Array,
  q: Float32Array,
  cache: ReferenceKV,
  layer: number,
  s: AttentionShape,
): void {
  const { batch: B, seq: T, start, nHeads: H, nKvHeads: KV, headDim: hd } = s;
  const qDim = H * hd;
  const kvDim = KV * hd;
  const group = H / KV;
  const scale = 1 / Math.sqrt(hd);
  const cap = cache.capacity;
  const keys = cache.keys[layer]!; // [B, cap, KV*hd]
  const values = cache.values[layer]!; // [B, cap, KV*hd]
  const scores = new Float32Array(start + T); // [slots] one query's scores
  const acc = new Float64Array(hd); // [hd] one head's output, accumulated in float64
  out.fill(0);
  for (let b = 0; b < B; b++) {
    const validRow = b * cap; // into cache.valid [B, cap]
    for (let t = 0; t < T; t++) {
      const slot = start + t;
      if (cache.valid[validRow + slot] === 0) continue; // padded query: zeros
      for (let h = 0; h < H; h++) {
        const qo = (b * T + t) * qDim + h * hd;
        const ko = Math.floor(h / group);
        // scores[j] = q . k_j / sqrt(hd) for visible slots j <= slot, -inf otherwise
        for (let j = 0; j <= slot; j++) {
          if (cache.valid[validRow + j] === 0) {
            scores[j] = Number.NEGATIVE_INFINITY;
            continue;
          }
          const kOff = (validRow + j) * kvDim + ko * hd;
          let d = 0;
          for (let i = 0; i < hd; i++) d += q[qo + i]! * keys[kOff + i]!;
          scores[j] = d * scale;
        }
        softmaxInPlace(scores, 0, slot + 1);
        // out_h = sum_j p_j v_j
        const oo = qo;
        acc.fill(0);
        for (let j = 0; j <= slot; j++) {
          const p = scores[j]!;
          if (p === 0) continue;
          const vOff = (validRow + j) * kvDim + ko * hd;
          for (let i = 0; i < hd; i++) acc[i] += p * values[vOff + i]!;
        }
        for (let i = 0; i < hd; i++) out[oo + i] = acc[i]!;
      }
    }
  }
}
