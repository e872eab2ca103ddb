/**
 * Per-call inputs shared by every block: token positions, the additive attention mask and the RoPE rows.
 * Positions follow engine.ts: the number of real tokens before a token in its row (HF cumsum(mask) - 1),
 * counted across cached calls; -1 for padding.
 */
import { SteerlabError } from "../errors.js";

export { type CheckedBatch, checkBatch, positionsFor } from "../model/batch.js";

/** Additive mask value for keys a query must not see (exp underflows to exactly 0). */
export const MASKED = -1e9;

/**
 * [B, 1, T, C+T] additive mask over C cache slots then the T new tokens. Query t sees cache slot j < P when it
 * holds a real token (slots P..C-1 are spare), and new token u <= t when it is real. A padding query that would
 * see nothing sees itself, so its (unused) row stays finite.
 */
export function additiveMask(
  pastMask: readonly Uint8Array[],
  newMask: readonly Uint8Array[],
  C: number,
  T: number,
): Float32Array {
  const B = newMask.length;
  const S = C + T;
  const out = new Float32Array(B * T * S).fill(MASKED); // [B, 1, T, C+T]
  for (let b = 0; b < B; b++) {
    const pm = pastMask[b]!;
    const nm = newMask[b]!;
    for (let t = 0; t < T; t++) {
      const row = (b * T + t) * S;
      let any = false;
      for (let j = 0; j < pm.length; j++) {
        if (pm[j]) {
          out[row + j] = 0;
          any = true;
        }
      }
      for (let u = 0; u <= t; u++) {
        if (nm[u]) {
          out[row + C + u] = 0;
          any = true;
        }
      }
      if (!any) out[row + C + t] = 0;
    }
  }
  return out;
}

/**
 * cos and sin rows [B, T, 1, hd] for the graph's rotate_half RoPE: cos halves duplicated, sin as [-sin, sin].
 * Angles are computed per token from rope.ts's inverse frequencies (scaling included) exactly as its tables are
 * (float32 angle, then cos/sin), so no [maxPositions, hd] table is held. Padding (-1) uses position 0.
 */
export function ropeRows(
  pos: Int32Array,
  invFreq: Float32Array,
  maxPositions: number,
): { cos: Float32Array; sin: Float32Array } {
  const h = invFreq.length;
  const hd = 2 * h;
  const cos = new Float32Array(pos.length * hd);
  const sin = new Float32Array(pos.length * hd);
  for (let i = 0; i < pos.length; i++) {
    const p = Math.max(0, pos[i]!);
    if (p >= maxPositions) {
      throw new SteerlabError("bad_input", `position ${p} is beyond the model's context`, {
        field: "positions",
        expected: `positions < ${maxPositions} (max_position_embeddings)`,
        got: String(p),
      });
    }
    for (let k = 0; k < h; k++) {
      const a = Math.fround(p * invFreq[k]!);
      const c = Math.cos(a);
      const s = Math.sin(a);
      cos[i * hd + k] = c;
      cos[i * hd + h + k] = c;
      sin[i * hd + k] = -s;
      sin[i * hd + h + k] = s;
    }
  }
  return { cos, sin };
}
