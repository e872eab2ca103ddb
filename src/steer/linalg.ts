/**
 * Small dense linear algebra for extraction: row matrices, dot products, Gram and scatter matrices, and the
 * leading eigenvector of a symmetric PSD matrix (restarted Lanczos with a residual convergence test).
 * Accumulates in float64 so that sums over thousands of pairs of large-norm residuals stay exact enough.
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

/**
 * X X^T: the N x N Gram matrix [N, N]. Rows are taken 8 at a time against every later row, so each row k is
 * streamed from memory once per block instead of once per row (about 4x faster at N = 512, D = 4096).
 */
export function gram(m: Rows): Float64Array {
  const { n, dim, data } = m;
  const g = new Float64Array(n * n);
  for (let i0 = 0; i0 < n; i0 += 8) {
    const i1 = Math.min(n, i0 + 8);
    if (i1 - i0 < 8) {
      for (let i = i0; i < i1; i++) {
        for (let k = i; k < n; k++) {
          const v = dot(data, data, i * dim, k * dim, dim);
          g[i * n + k] = v;
          g[k * n + i] = v;
        }
      }
      continue;
    }
    const [o0, o1, o2, o3, o4, o5, o6, o7] = [0, 1, 2, 3, 4, 5, 6, 7].map((r) => (i0 + r) * dim) as [
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    for (let k = i0; k < n; k++) {
      const ok = k * dim;
      let s0 = 0,
        s1 = 0,
        s2 = 0,
        s3 = 0,
        s4 = 0,
        s5 = 0,
        s6 = 0,
        s7 = 0;
      for (let j = 0; j < dim; j++) {
        const x = data[ok + j]!;
        s0 += data[o0 + j]! * x;
        s1 += data[o1 + j]! * x;
        s2 += data[o2 + j]! * x;
        s3 += data[o3 + j]! * x;
        s4 += data[o4 + j]! * x;
        s5 += data[o5 + j]! * x;
        s6 += data[o6 + j]! * x;
        s7 += data[o7 + j]! * x;
      }
      const sums = [s0, s1, s2, s3, s4, s5, s6, s7];
      for (let r = 0; r < 8; r++) {
        const i = i0 + r;
        if (k < i) continue;
        g[i * n + k] = sums[r]!;
        g[k * n + i] = sums[r]!;
      }
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
  /** Most matrix-vector products before giving up (converged = false). */
  maxIterations?: number;
  /** Converged when ||S x - theta x|| <= tolerance * theta for the Ritz pair (x, theta). */
  tolerance?: number;
  seed?: number;
}

/** All eigenpairs of a small dense symmetric matrix A [n, n] by cyclic Jacobi rotations: vectors as columns. */
export function jacobiEigen(a: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const A = Float64Array.from(a);
  const V = new Float64Array(n * n);
  for (let i = 0; i < n; i++) V[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += A[p * n + q]! ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = A[p * n + q]!;
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (A[q * n + q]! - A[p * n + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = A[k * n + p]!;
          const akq = A[k * n + q]!;
          A[k * n + p] = c * akp - s * akq;
          A[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = A[p * n + k]!;
          const aqk = A[q * n + k]!;
          A[p * n + k] = c * apk - s * aqk;
          A[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = V[k * n + p]!;
          const vkq = V[k * n + q]!;
          V[k * n + p] = c * vkp - s * vkq;
          V[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = A[i * n + i]!;
  return { values, vectors: V };
}

function matvec(s: Float64Array, k: number, x: Float64Array, out: Float64Array): void {
  for (let i = 0; i < k; i++) out[i] = dot(s, x, i * k, 0, k);
}

/**
 * Leading eigenvector of a symmetric PSD matrix S [K, K]: Lanczos with full reorthogonalisation (at most 48
 * steps per cycle), explicitly restarted from the current Ritz vector until the residual test passes. Far
 * fewer products than power iteration when the top eigenvalues are close (noisy layers); a start vector from
 * a fixed seed keeps results deterministic. converged = false when maxIterations products did not suffice.
 */
export function topEigen(s: Float64Array, k: number, opts: PowerOptions = {}): EigenResult {
  const maxIt = opts.maxIterations ?? 5000;
  const tol = opts.tolerance ?? 1e-9;
  const g = gaussian(rng(opts.seed ?? 12345));
  let x = new Float64Array(k);
  for (let i = 0; i < k; i++) x[i] = g();
  const n0 = norm(x);
  for (let i = 0; i < k; i++) x[i]! /= n0;
  const w = new Float64Array(k);
  let products = 0;
  let theta = 0;
  while (products < maxIt) {
    const m = Math.min(k, 48, maxIt - products);
    const Q: Float64Array[] = [];
    const alpha: number[] = [];
    const beta: number[] = [];
    let q = x;
    for (let j = 0; j < m; j++) {
      Q.push(q);
      matvec(s, k, q, w);
      products++;
      alpha.push(dot(q, w));
      // full reorthogonalisation, twice ("twice is enough")
      for (let pass = 0; pass < 2; pass++) {
        for (const qi of Q) {
          const c = dot(qi, w);
          for (let i = 0; i < k; i++) w[i]! -= c * qi[i]!;
        }
      }
      const b = norm(w);
      if (j === m - 1 || b <= 1e-12 * Math.max(1, Math.abs(alpha[0]!))) break; // invariant subspace found
      beta.push(b);
      q = Float64Array.from(w, (t) => t / b);
    }
    const r = alpha.length;
    const T = new Float64Array(r * r);
    for (let i = 0; i < r; i++) {
      T[i * r + i] = alpha[i]!;
      if (i + 1 < r) {
        T[i * r + i + 1] = beta[i]!;
        T[(i + 1) * r + i] = beta[i]!;
      }
    }
    const e = jacobiEigen(T, r);
    let best = 0;
    for (let i = 1; i < r; i++) if (e.values[i]! > e.values[best]!) best = i;
    theta = e.values[best]!;
    const y = new Float64Array(k);
    for (let j = 0; j < r; j++) {
      const c = e.vectors[j * r + best]!;
      for (let i = 0; i < k; i++) y[i]! += c * Q[j]![i]!;
    }
    const ny = norm(y);
    for (let i = 0; i < k; i++) y[i]! /= ny;
    x = y;
    if (!(theta > 0)) return { vector: x, value: 0, iterations: products, converged: true }; // S = 0
    matvec(s, k, x, w);
    products++;
    let res = 0;
    for (let i = 0; i < k; i++) res += (w[i]! - theta * x[i]!) ** 2;
    if (Math.sqrt(res) <= tol * theta)
      return { vector: x, value: theta, iterations: products, converged: true };
  }
  return { vector: x, value: theta, iterations: products, converged: false };
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
