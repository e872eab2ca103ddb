/**
 * The extraction driver: runs one method on every layer's activations, adds the shared diagnostics (with
 * k-fold held-out accuracy) and a suggested layer set. Two ways in:
 *   extract(method, layers)             rows in memory, [N, D] per layer
 *   MomentExtractor                     streaming: pass 1 accumulates moments (steer/moments.ts), pass 2
 *                                       streams the rows again to vote the sign and measure projections;
 *                                       held-out accuracy is not available on that path (null).
 */
import { SteerlabError } from "../errors.js";
import { rng } from "../model/random.js";
import {
  describeLayer,
  type LayerDiagnostics,
  pairAccuracy,
  type SuggestOptions,
  suggestLayers,
  thresholdAccuracy,
} from "./diagnostics.js";
import { dot, pickRows, project, type Rows, topEigen, unit } from "./linalg.js";
import type { ExtractionMethod, LayerData, LayerFit, MethodOptions, MomentFit } from "./methods/method.js";
import { splitByLabel } from "./methods/method.js";
import { getMethod } from "./methods/registry.js";
import { shuffleSeed } from "./methods/repe-pca.js";
import { PairMoments } from "./moments.js";

export interface ExtractOptions extends MethodOptions {
  /** k of the k-fold held-out accuracy; default 5 (capped by the sample count); 0 or 1 = skip. */
  folds?: number;
  suggest?: SuggestOptions;
}

export interface ExtractionResult {
  method: string;
  /** 0-based layer -> unit direction [D]. */
  directions: Map<number, Float32Array>;
  diagnostics: Map<number, LayerDiagnostics>;
  /** Method-specific facts per layer (iterations, converged, ...). */
  info: Map<number, LayerFit["info"]>;
  suggestedLayers: number[];
}

/** A seeded permutation of 0..n-1 (folds must not follow file order, which is often sorted). */
function permutation(n: number, seed: number): number[] {
  const u = rng(seed);
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(u() * (i + 1));
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

function subset(d: LayerData, idx: readonly number[]): LayerData {
  if (d.kind === "pairs")
    return { kind: "pairs", positive: pickRows(d.positive, idx), negative: pickRows(d.negative, idx) };
  return { kind: "labelled", x: pickRows(d.x, idx), labels: Uint8Array.from(idx, (i) => d.labels[i]!) };
}

/** Fold of every sample; labelled data are stratified so each fold keeps both labels. */
function foldsOf(d: LayerData, k: number, seed: number): number[] {
  const n = d.kind === "pairs" ? d.positive.n : d.x.n;
  const fold = new Array<number>(n);
  if (d.kind === "pairs") {
    permutation(n, seed).forEach((i, r) => {
      fold[i] = r % k;
    });
  } else {
    let r = 0;
    for (const want of [1, 0]) {
      for (const i of permutation(n, seed + want)) if ((d.labels[i] ? 1 : 0) === want) fold[i] = r++ % k;
    }
  }
  return fold;
}

/** k-fold held-out accuracy; null when some fold cannot be fitted (too few samples for the method). */
export function heldOutAccuracy(
  method: ExtractionMethod,
  d: LayerData,
  k: number,
  opts: MethodOptions = {},
): number | null {
  const n = d.kind === "pairs" ? d.positive.n : d.x.n;
  if (k < 2 || n < 2 * k) return null;
  const fold = foldsOf(d, k, (opts.seed ?? 7) + 101);
  let correct = 0;
  let total = 0;
  for (let f = 0; f < k; f++) {
    const train = [...Array(n).keys()].filter((i) => fold[i] !== f);
    const test = [...Array(n).keys()].filter((i) => fold[i] === f);
    const te = subset(d, test);
    let v: Float32Array;
    try {
      v = method.fitSubset
        ? method.fitSubset(d, train, opts).direction
        : method.fitLayer(subset(d, train), opts).direction;
    } catch {
      return null;
    }
    const a = splitByLabel(te);
    if (d.kind === "pairs") {
      correct += pairAccuracy(a.pos, a.neg, v) * test.length;
    } else {
      const b = splitByLabel(subset(d, train));
      correct += thresholdAccuracy(b.pos, b.neg, a.pos, a.neg, v) * test.length;
    }
    total += test.length;
  }
  return correct / total;
}

/** Fit `method` on every layer of `layers` (0-based layer -> activations) and diagnose each. */
export function extract(
  method: ExtractionMethod | string,
  layers: ReadonlyMap<number, LayerData>,
  opts: ExtractOptions = {},
): ExtractionResult {
  const m = typeof method === "string" ? getMethod(method) : method;
  if (layers.size === 0) throw new SteerlabError("bad_input", "no layers to extract from");
  const directions = new Map<number, Float32Array>();
  const diagnostics = new Map<number, LayerDiagnostics>();
  const info = new Map<number, LayerFit["info"]>();
  const k = opts.folds ?? 5;
  for (const [layer, d] of [...layers].sort((a, b) => a[0] - b[0])) {
    const fit = m.fitLayer(d, opts);
    if (fit.direction.length !== (d.kind === "pairs" ? d.positive.dim : d.x.dim)) {
      throw new SteerlabError("bad_tensor", `method "${m.name}" returned a direction of the wrong size`, {
        field: `layer ${layer}`,
      });
    }
    directions.set(layer, fit.direction);
    info.set(layer, fit.info);
    // reuse repe-pca's own PC when it decomposed exactly the diagnostic's matrix (unshuffled differences)
    const ev =
      m.name === "repe-pca" &&
      fit.info.shuffleSeed === "off" &&
      typeof fit.info.explainedVariance === "number"
        ? fit.info.explainedVariance
        : undefined;
    const base = describeLayer(layer, d, fit.direction, { seed: opts.seed, explainedVariance: ev });
    const n = base.n;
    const kk = Math.min(k, Math.floor(n / 2));
    diagnostics.set(layer, {
      ...base,
      heldOutAccuracy: heldOutAccuracy(m, d, kk, opts),
      folds: kk >= 2 ? kk : 0,
    });
  }
  return {
    method: m.name,
    directions,
    diagnostics,
    info,
    suggestedLayers: suggestLayers([...diagnostics.values()], opts.suggest),
  };
}

/**
 * Streaming extraction for methods with `fromMoments`: add chunks of pairs per layer (pass 1), call `fit()`,
 * stream the same pairs again through `vote()` (pass 2), then `finish()`. Memory: O(D^2) per layer.
 */
export class MomentExtractor {
  readonly method: ExtractionMethod;
  private readonly moments = new Map<number, PairMoments>();
  private fits: Map<number, MomentFit> | null = null;
  private readonly votes = new Map<
    number,
    { up: number; down: number; sum: number; sumPos: number; sumNeg: number; sumDir2: number; n: number }
  >();
  private readonly opts: ExtractOptions;

  constructor(method: ExtractionMethod | string, opts: ExtractOptions = {}) {
    this.method = typeof method === "string" ? getMethod(method) : method;
    if (!this.method.fromMoments) {
      throw new SteerlabError("unsupported", `method "${this.method.name}" needs the rows, not moments`, {
        hint: "collect the activations in memory and call extract()",
      });
    }
    this.opts = opts;
  }

  /** Pass 1: one chunk of pairs at one layer, positive [n, D] and negative [n, D]. */
  add(layer: number, positive: Rows, negative: Rows): void {
    if (this.fits) throw new SteerlabError("bad_input", "add() after fit(): start a new extractor");
    let m = this.moments.get(layer);
    if (!m) {
      m = new PairMoments(positive.dim, {
        secondMoments: this.method.name !== "mean-diff",
        ...(this.method.name === "repe-pca" && shuffleSeed(this.opts) !== null
          ? { flipSeed: shuffleSeed(this.opts)! }
          : {}),
      });
      this.moments.set(layer, m);
    }
    m.add(positive, negative);
  }

  /** End of pass 1: directions up to sign. Returns whether pass 2 is needed for the sign. */
  fit(): boolean {
    this.fits = new Map();
    for (const [layer, m] of this.moments) {
      const f = this.method.fromMoments!(m, this.opts);
      this.fits.set(layer, { ...f, direction: Float64Array.from(unit(f.direction)) }); // pass 2 projects on a unit v
    }
    return [...this.fits.values()].some((f) => f.voteSign);
  }

  /** Pass 2: the same pairs again (any chunking), to vote signs and measure projections. */
  vote(layer: number, positive: Rows, negative: Rows): void {
    const f = this.fits?.get(layer);
    if (!f)
      throw new SteerlabError("bad_input", `vote() for layer ${layer} before fit() or without pass-1 data`);
    const m = this.moments.get(layer)!;
    const mu = m.meanDiff();
    let s = this.votes.get(layer);
    if (!s) {
      s = { up: 0, down: 0, sum: 0, sumPos: 0, sumNeg: 0, sumDir2: 0, n: 0 };
      this.votes.set(layer, s);
    }
    const pp = project(positive, f.direction);
    const pn = project(negative, f.direction);
    const muDir = dot(mu, f.direction);
    for (let i = 0; i < pp.length; i++) {
      const g = pp[i]! - pn[i]!;
      if (g > 0) s.up++;
      else if (g < 0) s.down++;
      s.sum += g;
      s.sumPos += pp[i]!;
      s.sumNeg += pn[i]!;
      s.sumDir2 += (g - muDir) ** 2;
      s.n++;
    }
  }

  finish(): ExtractionResult {
    if (!this.fits) throw new SteerlabError("bad_input", "finish() before fit()");
    const directions = new Map<number, Float32Array>();
    const diagnostics = new Map<number, LayerDiagnostics>();
    const info = new Map<number, LayerFit["info"]>();
    for (const [layer, f] of [...this.fits].sort((a, b) => a[0] - b[0])) {
      const m = this.moments.get(layer)!;
      const s = this.votes.get(layer);
      if (!s || s.n !== m.n) {
        throw new SteerlabError(
          "bad_input",
          `pass 2 saw ${s?.n ?? 0} pairs at layer ${layer}, pass 1 saw ${m.n}`,
        );
      }
      const flip = f.voteSign && (s.down > s.up || (s.down === s.up && s.sum < 0));
      const sign = flip ? -1 : 1;
      const v = unit(f.direction.map((x) => sign * x));
      directions.set(layer, v);
      info.set(layer, { ...f.info, flipped: flip });
      const mu = m.meanDiff();
      const mdNorm = Math.sqrt(dot(mu, mu));
      // variance of the centred differences and its first PC's share: needs second moments
      let total = Number.NaN;
      let ev = Number.NaN;
      if (m.scatterDiff) {
        const C = m.scatter();
        for (let a = 0; a < m.dim; a++)
          for (let b = 0; b < m.dim; b++) C[a * m.dim + b]! -= m.n * mu[a]! * mu[b]!;
        total = 0;
        for (let a = 0; a < m.dim; a++) total += C[a * m.dim + a]!;
        const own =
          this.method.name === "repe-pca" && f.info.shuffleSeed === "off"
            ? f.info.explainedVariance
            : undefined;
        ev = typeof own === "number" ? own : total > 0 ? topEigen(C, m.dim, this.opts).value / total : 0;
      }
      const acc = (sign > 0 ? s.up : s.down) / m.n;
      diagnostics.set(layer, {
        layer,
        n: m.n,
        heldOutAccuracy: null,
        heldOutKind: "pair",
        folds: 0,
        trainAccuracy: acc,
        explainedVariance: ev,
        directionVariance: total > 0 ? s.sumDir2 / total : Number.NaN,
        projectionGap: (sign * (s.sumPos - s.sumNeg)) / m.n,
        meanDiffNorm: mdNorm,
        residNorm: m.sumNorm / (2 * m.n),
        cosMeanDiff: mdNorm > 0 ? dot(mu, v) / mdNorm : 0,
      });
    }
    return {
      method: this.method.name,
      directions,
      diagnostics,
      info,
      suggestedLayers: suggestLayers([...diagnostics.values()], this.opts.suggest),
    };
  }
}
