/**
 * The one interface every extraction method keeps (methods/registry.ts finds them by name). A method turns
 * one layer's activations into a unit direction; the shared driver (steer/extract.ts) runs it per layer, decides
 * nothing else, and adds the same diagnostics for every method.
 *
 * Methods that only need first and second moments (sums and D x D scatter) also implement `fromMoments`, so the
 * activation reader can stream thousands of pairs through steer/moments.ts instead of holding them.
 */
import { SteerlabError } from "../../errors.js";
import type { Rows } from "../linalg.js";
import type { PairMoments } from "../moments.js";

/**
 * One layer's activations. Pairs: row i of `positive` and row i of `negative` are the two members of pair i,
 * each [N, D]. Labelled: rows x [N, D] with labels [N] (1 = positive behaviour, 0 = negative).
 * Treated as immutable: work derived from it (the PCA methods' Gram matrix) is cached per object.
 */
export type LayerData =
  | { kind: "pairs"; positive: Rows; negative: Rows }
  | { kind: "labelled"; x: Rows; labels: Uint8Array };

export interface MethodOptions {
  /** Seed of the power iteration's start vector (deterministic results). */
  seed?: number;
  maxIterations?: number;
  tolerance?: number;
  /** L2 strength of the logistic probe (on globally standardised features). */
  l2?: number;
  /**
   * repe-pca only: the order inside each pair is shuffled (seeded by this number) before the differences are
   * centred, i.e. each d_i is negated with probability 1/2, as RepE's own datasets shuffle every pair (the
   * labels, not the order, then decide the sign). Default 1 (on). `false` keeps the order as given: then a
   * contrast shared equally by every pair is removed by the centring and only its variation is found.
   */
  shufflePairs?: number | false;
}

export interface LayerFit {
  /** Unit direction [D]; positive = towards the positive behaviour. */
  direction: Float32Array;
  /** Method-specific facts for the vector file (e.g. explained variance, iterations, converged). */
  info: Record<string, number | boolean | string>;
}

/** A direction fitted from moments; `voteSign` asks the driver to pick the sign in a second pass. */
export interface MomentFit {
  direction: Float64Array;
  voteSign: boolean;
  info: Record<string, number | boolean | string>;
}

export interface ExtractionMethod {
  readonly name: string;
  readonly description: string;
  /** Data kinds the method can fit. */
  readonly accepts: readonly LayerData["kind"][];
  fitLayer(data: LayerData, opts?: MethodOptions): LayerFit;
  /**
   * Optional: fit on some samples of `data` (a k-fold training set: pair or row indices). Methods that can
   * reuse work across subsets (the PCA methods reuse one Gram matrix per layer) implement it; otherwise the
   * driver calls fitLayer on a copy of the subset.
   */
  fitSubset?(data: LayerData, rows: readonly number[], opts?: MethodOptions): LayerFit;
  /** Streaming form from accumulated pair moments (absent: the method needs the rows). */
  fromMoments?(m: PairMoments, opts?: MethodOptions): MomentFit;
}

/** Checks shared by all methods: the kind is accepted, shapes agree, nothing is empty or non-finite. */
export function checkLayerData(method: string, accepts: readonly LayerData["kind"][], d: LayerData): void {
  if (!accepts.includes(d.kind)) {
    throw new SteerlabError("bad_input", `method "${method}" needs ${accepts.join(" or ")} data`, {
      field: "data.kind",
      expected: accepts.join(" | "),
      got: d.kind,
      hint: d.kind === "labelled" ? "write the data as contrastive pairs" : undefined,
    });
  }
  const mats = d.kind === "pairs" ? [d.positive, d.negative] : [d.x];
  for (const m of mats) {
    if (m.data.length !== m.n * m.dim) {
      throw new SteerlabError("bad_input", "activation rows have the wrong length", {
        expected: `${m.n} x ${m.dim}`,
        got: String(m.data.length),
      });
    }
    for (let i = 0; i < m.data.length; i++) {
      if (!Number.isFinite(m.data[i]!)) {
        throw new SteerlabError("bad_input", "activations contain NaN or Inf", {
          got: `index ${i} (row ${Math.floor(i / m.dim)})`,
        });
      }
    }
  }
  if (d.kind === "pairs") {
    if (d.positive.n !== d.negative.n || d.positive.dim !== d.negative.dim) {
      throw new SteerlabError("bad_input", "unpaired activations: positive and negative rows differ", {
        expected: `[${d.positive.n}, ${d.positive.dim}]`,
        got: `[${d.negative.n}, ${d.negative.dim}]`,
      });
    }
    if (d.positive.n === 0) throw new SteerlabError("bad_input", "no pairs to fit");
  } else {
    if (d.labels.length !== d.x.n) {
      throw new SteerlabError("bad_input", "labels and rows differ in count", {
        expected: String(d.x.n),
        got: String(d.labels.length),
      });
    }
    let pos = 0;
    for (const l of d.labels) pos += l ? 1 : 0;
    if (pos === 0 || pos === d.x.n) {
      throw new SteerlabError("bad_input", "labelled data need both labels", {
        got: `${pos} positive, ${d.x.n - pos} negative`,
      });
    }
  }
}

/** Positive/negative rows of either kind: pairs as they are, labelled split by label. */
export function splitByLabel(d: LayerData): { pos: Rows; neg: Rows } {
  if (d.kind === "pairs") return { pos: d.positive, neg: d.negative };
  const { x, labels } = d;
  const nPos = labels.reduce((s, l) => s + (l ? 1 : 0), 0);
  const pos = new Float64Array(nPos * x.dim);
  const neg = new Float64Array((x.n - nPos) * x.dim);
  let p = 0;
  let q = 0;
  for (let i = 0; i < x.n; i++) {
    const row = x.data.subarray(i * x.dim, (i + 1) * x.dim);
    if (labels[i]) pos.set(row, p++ * x.dim);
    else neg.set(row, q++ * x.dim);
  }
  return { pos: { data: pos, n: nPos, dim: x.dim }, neg: { data: neg, n: x.n - nPos, dim: x.dim } };
}
