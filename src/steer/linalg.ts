/**
 * Small dense linear algebra for extraction: row matrices, dot products, and the leading eigenvector of a
 * symmetric PSD matrix by power iteration with a convergence check. Accumulates in float64 so that sums over
 * thousands of pairs of large-norm residuals stay exact enough.
 */
import { SteerlabError } from "../errors.js";
import { gaussian, rng } from "../model/random.js";

/** A row-major matrix of N rows of dimension D: data [N, D]. */
export interface Rows {
  data: Float32Array | Float64Array;
  n: number;
  dim: number;
}

export function rows(data: Float32Array | Float64Array, n: number, dim: number): Rows {
  if (data.length !== n * dim) {
    throw new SteerlabError("bad_input", "activation buffer has the wrong length", {
      expected: `${n} x ${dim} = ${n * dim} values`,
      got: String(data.length),
    });
  }
  return { data, n, dim };
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>, aOff = 0, bOff = 0, len = a.length): number {
  let s = 0;
  for (let i = 0; i < len; i++) s += a[aOff + i]! * b[bOff + i]!;
  return s;
}

export function norm(a: ArrayLike<number>): number {
  return Math.sqrt(dot(a, a));
}

/** a / ||a|| as float32; throws on a zero or non-finite vector (no direction to take). */
export function unit(a: ArrayLike<number>, what = "direction"): Float32Array {
  const n = norm(a);
  if (!(n > 0) || !Number.isFinite(n)) {
    throw new SteerlabError("bad_input", `${what} has zero or non-finite norm`, {
      hint: "the data carry no signal along any direction (identical members?)",
    });
  }
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! / n;
  return out;
}

/** Row i projected on v: [N]. */
export function project(m: Rows, v: ArrayLike<number>): Float64Array {
  const out = new Float64Array(m.n);
  for (let i = 0; i < m.n; i++) out[i] = dot(m.data, v, i * m.dim, 0, m.dim);
  return out;
}

/** Column means [D]. */
export function colMean(m: Rows): Float64Array {
  const mu = new Float64Array(m.dim);
  for (let i = 0; i < m.n; i++) {
    const o = i * m.dim;
    for (let j = 0; j < m.dim; j++) mu[j]! += m.data[o + j]!;
  }
  for (let j = 0; j < m.dim; j++) mu[j]! /= Math.max(1, m.n);
  return mu;
}

/** Subset of rows by index. */
export function pickRows(m: Rows, idx: readonly number[]): Rows {
  const out = new Float64Array(idx.length * m.dim);
  idx.forEach((r, k) => {
    out.set(m.data.subarray(r * m.dim, (r + 1) * m.dim), k * m.dim);
  });
  return { data: out, n: idx.length, dim: m.dim };
}

/** X X^T: the N x N Gram matrix [N, N]. */
export function gram(m: Rows): Float64Array {
  const { n, dim, data } = m;
  const g = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let k = i; k < n; k++) {
      const s = dot(data, data, i * dim, k * dim, dim);
      g[i * n + k] = s;
      g[k * n + i] = s;
    }
  }
  return g;
}

/** X^T X: the D x D scatter matrix [D, D]. */
export function scatter(m: Rows): Float64Array {
  const { n, dim, data } = m;
  const c = new Float64Array(dim * dim);
  for (let i = 0; i < n; i++) {
    const o = i * dim;
    for (let a = 0; a < dim; a++) {
      const xa = data[o + a]!;
      if (xa === 0) continue;
      const row = a * dim;
      for (let b = a; b < dim; b++) c[row + b]! += xa * data[o + b]!;
    }
  }
  for (let a = 0; a < dim; a++) for (let b = 0; b < a; b++) c[a * dim + b] = c[b * dim + a]!;
  return c;
}

export interface EigenResult {
  /** Unit eigenvector [K]. */
  vector: Float64Array;
  value: number;
  iterations: number;
  converged: boolean;
}

export interface PowerOptions {
  maxIterations?: number;
  /** Stop when the vector moves less than this (in 2-norm, sign-aligned) between iterations. */
  tolerance?: number;
  seed?: number;
}

/**
 * Leading eigenvector of a symmetric PSD matrix S [K, K] by power iteration from a seeded random start.
 * Converged when the unit iterate changes by < tolerance; the rate is lambda2/lambda1, so a tiny eigengap
 * reports converged = false rather than silently returning a mixture.
 */
export function topEigen(s: Float64Array, k: number, opts: PowerOptions = {}): EigenResult {
  const maxIt = opts.maxIterations ?? 5000;
  const tol = opts.tolerance ?? 1e-9;
  const g = gaussian(rng(opts.seed ?? 12345));
  let v = new Float64Array(k);
  for (let i = 0; i < k; i++) v[i] = g();
  let nv = norm(v);
  for (let i = 0; i < k; i++) v[i]! /= nv;
  let w = new Float64Array(k);
  let value = 0;
  for (let it = 1; it <= maxIt; it++) {
    for (let i = 0; i < k; i++) w[i] = dot(s, v, i * k, 0, k);
    value = dot(v, w); // Rayleigh quotient
    nv = norm(w);
    if (nv === 0) return { vector: v, value: 0, iterations: it, converged: true }; // S = 0
    let delta = 0;
    for (let i = 0; i < k; i++) {
      w[i]! /= nv;
      delta += (w[i]! - v[i]!) ** 2;
    }
    [v, w] = [w, v];
    if (Math.sqrt(delta) < tol) return { vector: v, value, iterations: it, converged: true };
  }
  return { vector: v, value, iterations: maxIt, converged: false };
}

export interface Pc1 {
  /** Unit first principal direction in feature space [D] (sign arbitrary). */
  direction: Float64Array;
  /** Largest eigenvalue of X^T X over its trace: the first PC's explained variance ratio. */
  explainedVariance: number;
  iterations: number;
  converged: boolean;
  /** Which matrix was decomposed: the N x N Gram or the D x D scatter, whichever is smaller. */
  via: "gram" | "covariance";
}

/**
 * First right singular vector of X [N, D] (rows already centred by the caller when PCA wants it). Uses the
 * N x N Gram matrix when N <= D (v = X^T u / ||X^T u||), else the D x D scatter matrix.
 */
export function firstPc(x: Rows, opts: PowerOptions = {}): Pc1 {
  const { n, dim, data } = x;
  if (n === 0) throw new SteerlabError("bad_input", "PCA of an empty set");
  let trace = 0;
  for (let i = 0; i < data.length; i++) trace += data[i]! * data[i]!;
  if (n <= dim) {
    const e = topEigen(gram(x), n, opts);
    const v = new Float64Array(dim);
    for (let i = 0; i < n; i++) {
      const ui = e.vector[i]!;
      const o = i * dim;
      for (let j = 0; j < dim; j++) v[j]! += ui * data[o + j]!;
    }
    const nv = norm(v);
    if (nv > 0) for (let j = 0; j < dim; j++) v[j]! /= nv;
    return {
      direction: v,
      explainedVariance: trace > 0 ? e.value / trace : 0,
      iterations: e.iterations,
      converged: e.converged,
      via: "gram",
    };
  }
  const e = topEigen(scatter(x), dim, opts);
  return {
    direction: e.vector,
    explainedVariance: trace > 0 ? e.value / trace : 0,
    iterations: e.iterations,
    converged: e.converged,
    via: "covariance",
  };
}
