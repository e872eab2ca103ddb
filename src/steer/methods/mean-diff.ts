/**
 * `mean-diff` (CAA, contrastive activation addition): v = mean(positive) - mean(negative), unit norm. For
 * pairs this is the mean pair difference; for a labelled set the difference of the two class means. The
 * positive side projects higher on average by construction, so no sign vote is needed.
 */
import { colMean, unit } from "../linalg.js";
import type { PairMoments } from "../moments.js";
import { checkLayerData, type ExtractionMethod, type LayerData, splitByLabel } from "./method.js";

export const meanDiff: ExtractionMethod = {
  name: "mean-diff",
  description: "difference of the positive and negative means (CAA)",
  accepts: ["pairs", "labelled"],
  fitLayer(data: LayerData) {
    checkLayerData("mean-diff", ["pairs", "labelled"], data);
    const { pos, neg } = splitByLabel(data);
    const a = colMean(pos);
    const b = colMean(neg);
    const diff = a.map((x, j) => x - b[j]!);
    let n = 0;
    for (const x of diff) n += x * x;
    return { direction: unit(diff, "mean difference"), info: { rawNorm: Math.sqrt(n) } };
  },
  fromMoments(m: PairMoments) {
    const mu = m.meanDiff();
    let n = 0;
    for (const x of mu) n += x * x;
    return { direction: mu, voteSign: false, info: { rawNorm: Math.sqrt(n) } };
  },
};
