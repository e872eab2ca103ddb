/** Pieces shared by the PCA methods: pair differences and the majority-vote sign rule. */
import { dot, type Rows } from "../linalg.js";

/** d_i = pos_i - neg_i: [N, D] float64. */
export function pairDifferences(pos: Rows, neg: Rows): Rows {
  const out = new Float64Array(pos.n * pos.dim);
  for (let k = 0; k < out.length; k++) out[k] = pos.data[k]! - neg.data[k]!;
  return { data: out, n: pos.n, dim: pos.dim };
}

export interface Vote {
  direction: Float64Array;
  /** Pairs whose positive member projects higher on the returned direction. */
  votesFor: number;
  votesAgainst: number;
  flipped: boolean;
}

/**
 * Majority vote: keep v if at least as many pairs have pos . v > neg . v (i.e. d . v > 0) as the reverse, else
 * negate it. A tie (equal counts) is broken by the sign of the summed projection, and kept when that is 0 too.
 */
export function voteSign(d: Rows, v: Float64Array): Vote {
  let up = 0;
  let down = 0;
  let sum = 0;
  for (let i = 0; i < d.n; i++) {
    const p = dot(d.data, v, i * d.dim, 0, d.dim);
    sum += p;
    if (p > 0) up++;
    else if (p < 0) down++;
  }
  const flip = down > up || (down === up && sum < 0);
  const out = flip ? v.map((x) => -x) : v;
  return { direction: out, votesFor: flip ? down : up, votesAgainst: flip ? up : down, flipped: flip };
}

/** Deterministic +-1 for pair i under `seed` (a 32-bit integer hash), the same in memory and when streaming. */
export function pairFlip(seed: number, i: number): 1 | -1 {
  let h = (Math.imul(seed | 0, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return ((h ^ (h >>> 16)) & 1) === 1 ? -1 : 1;
}
