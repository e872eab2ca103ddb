/**
 * `pca-center` (repeng's "pca_center"): each pair is centred on its midpoint, so its two members become
 * +d_i/2 and -d_i/2; the first principal component of these 2N points (their mean is 0, so no further
 * centring) is the top eigenvector of sum d_i d_i^T. Unlike repe-pca the shared part of the contrast is kept.
 * Sign by the same majority vote, unit norm.
 */
import { SteerlabError } from "../../errors.js";
import { topEigen } from "../linalg.js";
import type { PairMoments } from "../moments.js";
import { checkLayerData, type ExtractionMethod, type LayerData, type MethodOptions } from "./method.js";
import { fitPairPc } from "./pca-common.js";

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
  return fitPairPc(
    data,
    idx,
    {
      sign: null,
      centre: false,
      flat: () => new SteerlabError("bad_input", "pca-center: every pair has identical members"),
    },
    opts,
  );
}
