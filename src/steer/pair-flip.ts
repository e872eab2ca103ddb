/**
 * The sign each pair gets when RepE's pairs are shuffled (repe-pca shufflePairs). Its own file because both the
 * in-memory method (methods/pca-common.ts) and the streaming moments (moments.ts) need it.
 */
/** Deterministic +-1 for pair i under `seed` (a 32-bit integer hash), the same in memory and when streaming. */
export function pairFlip(seed: number, i: number): 1 | -1 {
  let h = (Math.imul(seed | 0, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return ((h ^ (h >>> 16)) & 1) === 1 ? -1 : 1;
}
