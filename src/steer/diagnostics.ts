/**
 * Per-layer diagnostics, the same for every method, and the suggested layer set.
 *
 *   heldOutAccuracy   k-fold: refit on the other folds, then for pairs the fraction of held-out pairs whose
 *                     positive member projects higher; for labelled rows the accuracy of thresholding the
 *                     projection at the midpoint of the training class means. null when too few samples.
 *   trainAccuracy     the same on the data the direction was fitted on
 *   explainedVariance largest eigenvalue / trace for the centred pair differences (labelled: centred rows),
 *                     i.e. the explained variance ratio of their first PC, whatever the method
 *   directionVariance the share of that variance along the chosen direction (= explainedVariance for repe-pca)
 *   projectionGap     mean(pos . v) - mean(neg . v)
 *   meanDiffNorm      ||mean(pos) - mean(neg)||, the raw contrast before normalising
 *   residNorm         mean ||h|| over all rows: the scale a coefficient r_e is compared with
 *   cosMeanDiff       cosine between v and the raw mean difference
 */
import { colMean, dot, firstPc, project, type Rows } from "./linalg.js";
import { type LayerData, splitByLabel } from "./methods/method.js";
import { diffsAndGram, pairDifferences, subsetPc } from "./methods/pca-common.js";

export interface LayerDiagnostics {
  layer: number;
  /** Pairs (pair data) or rows (labelled data). */
  n: number;
  heldOutAccuracy: number | null;
  heldOutKind: "pair" | "threshold";
  folds: number;
  trainAccuracy: number;
  explainedVariance: number;
  directionVariance: number;
  projectionGap: number;
  meanDiffNorm: number;
  residNorm: number;
  cosMeanDiff: number;
}

function meanRowNorm(m: Rows): number {
  let s = 0;
  for (let i = 0; i < m.n; i++) s += Math.sqrt(dot(m.data, m.data, i * m.dim, i * m.dim, m.dim));
  return s;
}

/** Fraction of pairs with pos_i . v > neg_i . v. */
export function pairAccuracy(pos: Rows, neg: Rows, v: ArrayLike<number>): number {
  const a = project(pos, v);
  const b = project(neg, v);
  let k = 0;
  for (let i = 0; i < a.length; i++) if (a[i]! > b[i]!) k++;
  return a.length ? k / a.length : 0;
}

/** Threshold at the midpoint of the class-mean projections of (trainPos, trainNeg); accuracy on (pos, neg). */
export function thresholdAccuracy(
  trainPos: Rows,
  trainNeg: Rows,
  pos: Rows,
  neg: Rows,
  v: ArrayLike<number>,
): number {
  const mean = (x: Float64Array) => x.reduce((s, t) => s + t, 0) / Math.max(1, x.length);
  const thr = 0.5 * (mean(project(trainPos, v)) + mean(project(trainNeg, v)));
  let ok = 0;
  for (const p of project(pos, v)) if (p > thr) ok++;
  for (const p of project(neg, v)) if (p <= thr) ok++;
  return ok / Math.max(1, pos.n + neg.n);
}

/** Everything but the held-out accuracy (which needs refits: see extract.ts). */
export function describeLayer(
  layer: number,
  data: LayerData,
  v: Float32Array,
  opts: { seed?: number; explainedVariance?: number } = {},
): Omit<LayerDiagnostics, "heldOutAccuracy" | "folds"> {
  const { pos, neg } = splitByLabel(data);
  const D = pos.dim;
  const mp = colMean(pos);
  const mn = colMean(neg);
  const md = mp.map((x, j) => x - mn[j]!);
  const mdNorm = Math.sqrt(dot(md, md));
  // the variance whose first PC we report: centred pair differences, or centred rows for labelled data
  let x: Rows;
  if (data.kind === "pairs") x = pairDifferences(pos, neg);
  else x = { data: Float64Array.from(data.x.data), n: data.x.n, dim: D };
  const mu = colMean(x);
  for (let i = 0; i < x.n; i++) for (let j = 0; j < D; j++) x.data[i * D + j]! -= mu[j]!;
  let total = 0;
  for (const t of x.data) total += t * t;
  let along = 0;
  for (const p of project(x, v)) along += p * p;
  let ev = opts.explainedVariance;
  if (ev === undefined) {
    if (!(total > 0)) ev = 0;
    else if (data.kind === "pairs" && pos.n <= D) {
      // through the layer's cached Gram of raw differences (shared with the PCA methods)
      const c = diffsAndGram(pos, neg, data);
      ev = subsetPc(c.d, c.g, [...Array(pos.n).keys()], null, true, { seed: opts.seed }).explainedVariance;
    } else ev = firstPc(x, { seed: opts.seed }).explainedVariance;
  }
  const pp = project(pos, v);
  const pn = project(neg, v);
  const gap = pp.reduce((s, t) => s + t, 0) / pos.n - pn.reduce((s, t) => s + t, 0) / neg.n;
  return {
    layer,
    n: data.kind === "pairs" ? pos.n : pos.n + neg.n,
    heldOutKind: data.kind === "pairs" ? "pair" : "threshold",
    trainAccuracy:
      data.kind === "pairs" ? pairAccuracy(pos, neg, v) : thresholdAccuracy(pos, neg, pos, neg, v),
    explainedVariance: ev,
    directionVariance: total > 0 ? along / total : 0,
    projectionGap: gap,
    meanDiffNorm: mdNorm,
    residNorm: (meanRowNorm(pos) + meanRowNorm(neg)) / (pos.n + neg.n),
    cosMeanDiff: mdNorm > 0 ? dot(md, v) / mdNorm : 0,
  };
}

export interface SuggestOptions {
  /** Largest block to suggest; default a fifth of the fitted layers (the paper steers 8 of 40), at least 1. */
  maxLayers?: number;
  /** A neighbour joins the block while its accuracy is within this of the best layer's. Default 0.05. */
  tolerance?: number;
}

/**
 * Best layer first by held-out accuracy (train accuracy when none), then by projection gap relative to the
 * residual norm; then grow a contiguous block of layer indices around it, taking the better neighbour each
 * time, while the neighbour's accuracy stays within `tolerance` of the best.
 */
export function suggestLayers(diags: readonly LayerDiagnostics[], opts: SuggestOptions = {}): number[] {
  if (diags.length === 0) return [];
  const max = opts.maxLayers ?? Math.max(1, Math.round(diags.length / 5));
  const tol = opts.tolerance ?? 0.05;
  const acc = (d: LayerDiagnostics) => d.heldOutAccuracy ?? d.trainAccuracy;
  const rel = (d: LayerDiagnostics) => (d.residNorm > 0 ? d.projectionGap / d.residNorm : d.projectionGap);
  const better = (a: LayerDiagnostics, b: LayerDiagnostics) => acc(a) - acc(b) || rel(a) - rel(b);
  const byLayer = new Map(diags.map((d) => [d.layer, d]));
  const best = [...diags].sort((a, b) => better(b, a))[0]!;
  let lo = best.layer;
  let hi = best.layer;
  while (hi - lo + 1 < max) {
    const left = byLayer.get(lo - 1);
    const right = byLayer.get(hi + 1);
    const ok = (d: LayerDiagnostics | undefined) => d !== undefined && acc(d) >= acc(best) - tol;
    const cands = [left, right].filter(ok) as LayerDiagnostics[];
    if (cands.length === 0) break;
    const pick = cands.length === 2 ? (better(cands[0]!, cands[1]!) >= 0 ? cands[0]! : cands[1]!) : cands[0]!;
    if (pick === left) lo--;
    else hi++;
  }
  return Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
}
