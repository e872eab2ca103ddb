/**
 * `pca-center` (repeng's "pca_center"): each pair is centred on its midpoint, so its two members become
 * +d_i/2 and -d_i/2; the first principal component of these 2N points (their mean is 0, so no further
 * centring) is the top eigenvector of sum d_i d_i^T. Unlike repe-pca the shared part of the contrast is kept.
 * Sign by the same majority vote, unit norm.
 */
import { SteerlabError } from "../../errors.js";
import { firstPc, type Pc1, pickRows, type Rows, topEigen, unit } from "../linalg.js";
import type { PairMoments } from "../moments.js";
import { checkLayerData, type ExtractionMethod, type LayerData, type MethodOptions } from "./method.js";
import { diffsAndGram, pairDifferences, subsetPc, voteSign } from "./pca-common.js";

export const pcaCenter: ExtractionMethod = {
  name: "pca-center",
  description: "first PC of pair members centred on their pair midpoint, sign by majority vote",
  accepts: ["pairs"],
  fitLayer(data: LayerData, opts: MethodOptions = {}) {
    checkLayerData("pca-center", ["pairs"], data);
    if (data.kind !== "pairs") throw new Error("unreachable");
    return fitCenter(
      data,
      Array.from({ length: data.positive.n }, (_, i) => i),
      opts,
    );
  },
  fitSubset(data: LayerData, rows: readonly number[], opts: MethodOptions = {}) {
    checkLayerData("pca-center", ["pairs"], data);
    if (data.kind !== "pairs") throw new Error("unreachable");
    return fitCenter(data, rows, opts);
  },
  fromMoments(m: PairMoments, opts: MethodOptions = {}) {
    const D = m.dim;
    const c = m.scatter();
    let trace = 0;
    for (let a = 0; a < D; a++) trace += c[a * D + a]!;
    const e = topEigen(c, D, opts);
    return {
      direction: e.vector,
      voteSign: true,
      info: {
        explainedVariance: trace > 0 ? e.value / trace : 0,
        iterations: e.iterations,
        converged: e.converged,
        via: "covariance",
      },
    };
  },
};

/** PCA of {+d/2, -d/2}: same directions and variance ratios as the uncentred PCA of the differences d. */
function fitCenter(data: LayerData & { kind: "pairs" }, idx: readonly number[], opts: MethodOptions) {
  const { n, dim } = data.positive;
  let pc: Pc1;
  let d: Rows;
  if (n <= dim) {
    const c = diffsAndGram(data.positive, data.negative, data);
    pc = subsetPc(c.d, c.g, idx, null, false, opts);
    d = idx.length === n ? c.d : pickRows(c.d, idx);
  } else {
    d = pairDifferences(pickRows(data.positive, idx), pickRows(data.negative, idx));
    pc = firstPc(d, opts);
  }
  if (!(pc.explainedVariance > 0)) {
    throw new SteerlabError("bad_input", "pca-center: every pair has identical members");
  }
  const vote = voteSign(d, pc.direction);
  return {
    direction: unit(vote.direction),
    info: {
      explainedVariance: pc.explainedVariance,
      iterations: pc.iterations,
      converged: pc.converged,
      via: pc.via,
      votesFor: vote.votesFor,
      votesAgainst: vote.votesAgainst,
      flipped: vote.flipped,
    },
  };
}
