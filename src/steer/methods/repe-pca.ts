/**
 * `repe-pca`: the RepE reading vector exactly as the paper uses it (DESIGN.md section 1). Per layer:
 *   d_i = s_i (pos_i - neg_i)                pair differences [N, D], in shuffled pair order: s_i = +-1
 *                                            seeded (opts.shufflePairs, default on), as RepE's datasets
 *   x_i = d_i - mean(d)                      mean-centred
 *   v   = first principal component of x     (power iteration on the N x N Gram or D x D scatter, the smaller)
 *   sign: flip v when fewer pairs have pos_i . v > neg_i . v than the reverse (majority vote)
 *   v  /= ||v||
 * Note what mean-centring implies without the shuffle (shufflePairs: false): a shift shared equally by every
 * pair is removed, so the direction comes only from how the contrast varies across pairs.
 */
import { SteerlabError } from "../../errors.js";
import { dot, topEigen } from "../linalg.js";
import type { PairMoments } from "../moments.js";
import { pairFlip } from "../pair-flip.js";
import { checkLayerData, type ExtractionMethod, type LayerData, type MethodOptions } from "./method.js";
import { fitPairPc } from "./pca-common.js";

/** The pair-shuffle seed in effect: default 1, null when turned off. */
export function shuffleSeed(opts: MethodOptions): number | null {
  return opts.shufflePairs === false ? null : (opts.shufflePairs ?? 1);
}

export const repePca: ExtractionMethod = {
  name: "repe-pca",
  description:
    "RepE reading vector: first PC of mean-centred pair differences, sign by majority vote (the paper's)",
  accepts: ["pairs"],
  fitLayer(data: LayerData, opts: MethodOptions = {}) {
    checkLayerData("repe-pca", ["pairs"], data);
    if (data.kind !== "pairs") throw new Error("unreachable");
    return fitRepe(data, allRows(data.positive.n), opts);
  },
  fitSubset(data: LayerData, rows: readonly number[], opts: MethodOptions = {}) {
    checkLayerData("repe-pca", ["pairs"], data);
    if (data.kind !== "pairs") throw new Error("unreachable");
    return fitRepe(data, rows, opts);
  },
  fromMoments(m: PairMoments, opts: MethodOptions = {}) {
    if (m.n < 2)
      throw new SteerlabError("bad_input", "repe-pca needs at least 2 pairs", { got: String(m.n) });
    const D = m.dim;
    const c = m.scatter();
    const seed = shuffleSeed(opts);
    if (m.flipSeed !== seed) {
      throw new SteerlabError("bad_input", "repe-pca needs moments accumulated with its pair-shuffle seed", {
        expected: `flipSeed ${seed}`,
        got: `flipSeed ${m.flipSeed}`,
      });
    }
    // the scatter of s_i d_i equals that of d_i (s_i^2 = 1); only the mean changes
    const mu = seed !== null ? m.meanFlippedDiff() : m.meanDiff();
    // centred scatter: sum (d - mu)(d - mu)^T = S - n mu mu^T
    for (let a = 0; a < D; a++) for (let b = 0; b < D; b++) c[a * D + b]! -= m.n * mu[a]! * mu[b]!;
    let trace = 0;
    for (let a = 0; a < D; a++) trace += c[a * D + a]!;
    const e = topEigen(c, D, opts);
    return {
      direction: e.vector,
      voteSign: true,
      info: {
        explainedVariance: trace > 0 ? e.value / trace : 0,
        shuffleSeed: seed ?? "off",
        iterations: e.iterations,
        converged: e.converged,
        via: "covariance",
        meanDiffProjection: dot(mu, e.vector),
      },
    };
  },
};

function allRows(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** repe-pca on the pairs `idx` of `data` (all of them, or a k-fold training set). */
function fitRepe(data: LayerData & { kind: "pairs" }, idx: readonly number[], opts: MethodOptions) {
  if (idx.length < 2) {
    throw new SteerlabError("bad_input", "repe-pca needs at least 2 pairs", {
      got: `${idx.length} pair`,
      hint: "mean-centring one difference leaves nothing; use mean-diff",
    });
  }
  const seed = shuffleSeed(opts);
  const fit = fitPairPc(
    data,
    idx,
    {
      sign: seed === null ? null : (i: number) => pairFlip(seed, i),
      centre: true,
      flat: () =>
        new SteerlabError("bad_input", "repe-pca: every pair difference is the same, nothing varies", {
          hint: "mean-centring removed the whole contrast; use mean-diff",
        }),
    },
    opts,
  );
  return { ...fit, info: { ...fit.info, shuffleSeed: seed ?? "off" } };
}
