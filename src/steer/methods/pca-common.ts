/** Pieces shared by the PCA methods: pair differences, the majority-vote sign rule, PCs through a cached Gram. */
import type { SteerlabError } from "../../errors.js";
import {
  dot,
  firstPc,
  gram,
  norm,
  type Pc1,
  type PowerOptions,
  pickRows,
  type Rows,
  topEigen,
  unit,
} from "../linalg.js";
import type { LayerData, LayerFit, MethodOptions } from "./method.js";

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

/** The raw pair differences and their Gram matrix D D^T [N, N], computed once per LayerData object. */
const gramCache = new WeakMap<object, { d: Rows; g: Float64Array }>();

export function diffsAndGram(pos: Rows, neg: Rows, key: object): { d: Rows; g: Float64Array } {
  let c = gramCache.get(key);
  if (!c) {
    const d = pairDifferences(pos, neg);
    c = { d, g: gram(d) };
    gramCache.set(key, c);
  }
  return c;
}

/**
 * First PC of the rows x_a = s_a d_{idx_a} (optionally mean-centred) through the parent Gram, without
 * touching the D-dimensional rows until the end:
 *   Gs[a, b] = s_a s_b G[idx_a, idx_b]
 *   centred:  Gc = H Gs H,  H = I - 1 1^T / n   (Gc[a, b] = Gs[a, b] - r_a - r_b + t)
 *   u = top eigenvector of Gc;  v = sum_a u_a (x_a - mean x) normalised;  EV = lambda / trace(Gc)
 */
export function subsetPc(
  d: Rows,
  g: Float64Array,
  idx: readonly number[],
  sign: ((i: number) => number) | null,
  centre: boolean,
  opts: PowerOptions = {},
): Pc1 {
  const n = idx.length;
  const N = d.n;
  const D = d.dim;
  const s = Float64Array.from(idx, (i) => (sign ? sign(i) : 1));
  const gs = new Float64Array(n * n);
  for (let a = 0; a < n; a++) {
    for (let b = 0; b < n; b++) gs[a * n + b] = s[a]! * s[b]! * g[idx[a]! * N + idx[b]!]!;
  }
  if (centre) {
    const r = new Float64Array(n);
    let t = 0;
    for (let a = 0; a < n; a++) {
      for (let b = 0; b < n; b++) r[a]! += gs[a * n + b]! / n;
      t += r[a]! / n;
    }
    for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) gs[a * n + b]! += t - r[a]! - r[b]!;
  }
  let trace = 0;
  for (let a = 0; a < n; a++) trace += gs[a * n + a]!;
  const e = topEigen(gs, n, opts);
  const v = new Float64Array(D);
  let usum = 0;
  for (let a = 0; a < n; a++) {
    const c = e.vector[a]! * s[a]!;
    usum += e.vector[a]!;
    const o = idx[a]! * D;
    for (let j = 0; j < D; j++) v[j]! += c * d.data[o + j]!;
  }
  if (centre) {
    // subtract (sum_a u_a) * mean_a(x_a)
    for (let a = 0; a < n; a++) {
      const c = (usum * s[a]!) / n;
      const o = idx[a]! * D;
      for (let j = 0; j < D; j++) v[j]! -= c * d.data[o + j]!;
    }
  }
  const nv = norm(v);
  if (nv > 0) for (let j = 0; j < D; j++) v[j]! /= nv;
  return {
    direction: v,
    explainedVariance: trace > 0 ? e.value / trace : 0,
    iterations: e.iterations,
    converged: e.converged,
    via: "gram",
  };
}

/**
 * The shared fit of the pair-PCA methods on the pairs `idx`: first PC of the (signed, optionally mean-centred)
 * differences, through the cached Gram when N <= D or the explicit rows otherwise; then the majority-vote sign
 * on the true differences and unit norm. `flat` is the error for a layer where nothing varies.
 */
export function fitPairPc(
  data: LayerData & { kind: "pairs" },
  idx: readonly number[],
  o: { sign: ((i: number) => number) | null; centre: boolean; flat: () => SteerlabError },
  opts: MethodOptions,
): LayerFit {
  const { n, dim } = data.positive;
  let pc: Pc1;
  let d: Rows;
  if (n <= dim) {
    // N x N: one Gram of the raw differences per layer serves every subset, shuffle and centring
    const c = diffsAndGram(data.positive, data.negative, data);
    pc = subsetPc(c.d, c.g, idx, o.sign, o.centre, opts);
    d = idx.length === n ? c.d : pickRows(c.d, idx);
  } else {
    d = pairDifferences(pickRows(data.positive, idx), pickRows(data.negative, idx));
    const x = { data: new Float64Array(d.data), n: d.n, dim };
    const mu = new Float64Array(dim);
    for (let a = 0; a < d.n; a++) {
      const s = o.sign ? o.sign(idx[a]!) : 1;
      for (let j = 0; j < dim; j++) {
        x.data[a * dim + j] = s * x.data[a * dim + j]!;
        mu[j]! += x.data[a * dim + j]! / d.n;
      }
    }
    if (o.centre) for (let a = 0; a < d.n; a++) for (let j = 0; j < dim; j++) x.data[a * dim + j]! -= mu[j]!;
    pc = firstPc(x, opts);
  }
  if (!(pc.explainedVariance > 0)) throw o.flat();
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
