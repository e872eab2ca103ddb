/**
 * `logistic`: an L2-regularised logistic-regression probe; the direction is its weight vector, unit norm.
 *   z_i = (x_i - mean) / s          s = RMS per coordinate of the centred rows (one global scale, so the
 *                                   direction is unchanged by it and l2 means the same at every layer)
 *   loss = mean_i softplus(-y_i (w . z_i + b)) + (l2 / 2) ||w||^2      y = +1 positive, -1 negative
 * minimised by L-BFGS (memory 10) with a backtracking Armijo line search. Pairs are used as a labelled set.
 */
import { SteerlabError } from "../../errors.js";
import { colMean, dot, unit } from "../linalg.js";
import { checkLayerData, type ExtractionMethod, type LayerData, type MethodOptions } from "./method.js";

function softplus(t: number): number {
  return t > 30 ? t : t < -30 ? Math.exp(t) : Math.log1p(Math.exp(t));
}
function sigmoid(t: number): number {
  return t >= 0 ? 1 / (1 + Math.exp(-t)) : Math.exp(t) / (1 + Math.exp(t));
}

/** Loss and gradient of params p = [w (D), b] over standardised rows z [N, D], labels y [N] in {-1, +1}. */
function lossGrad(
  p: Float64Array,
  z: Float64Array,
  y: Int8Array,
  n: number,
  D: number,
  l2: number,
  g: Float64Array,
): number {
  g.fill(0);
  let loss = 0;
  const b = p[D]!;
  for (let i = 0; i < n; i++) {
    const m = y[i]! * (dot(z, p, i * D, 0, D) + b);
    loss += softplus(-m);
    const coef = (-y[i]! * sigmoid(-m)) / n;
    for (let j = 0; j < D; j++) g[j]! += coef * z[i * D + j]!;
    g[D]! += coef;
  }
  loss /= n;
  let ww = 0;
  for (let j = 0; j < D; j++) {
    ww += p[j]! * p[j]!;
    g[j]! += l2 * p[j]!;
  }
  return loss + 0.5 * l2 * ww;
}

export interface ProbeFit {
  /** Weights in the original coordinates (up to the positive global scale), [D]. */
  weights: Float64Array;
  bias: number;
  loss: number;
  iterations: number;
  converged: boolean;
}

export function fitProbe(x: LayerData & { kind: "labelled" }, opts: MethodOptions = {}): ProbeFit {
  const { n, dim: D } = x.x;
  const l2 = opts.l2 ?? 1e-2;
  const maxIt = opts.maxIterations ?? 200;
  const tol = opts.tolerance ?? 1e-7;
  const mu = colMean(x.x);
  const z = new Float64Array(n * D);
  let ss = 0;
  for (let k = 0; k < z.length; k++) {
    z[k] = x.x.data[k]! - mu[k % D]!;
    ss += z[k]! * z[k]!;
  }
  const s = Math.sqrt(ss / (n * D)) || 1;
  for (let k = 0; k < z.length; k++) z[k]! /= s;
  const y = Int8Array.from(x.labels, (l) => (l ? 1 : -1));
  const P = D + 1;
  let p = new Float64Array(P);
  let g = new Float64Array(P);
  let f = lossGrad(p, z, y, n, D, l2, g);
  const S: Float64Array[] = [];
  const Yh: Float64Array[] = [];
  const rho: number[] = [];
  let it = 0;
  let converged = false;
  const pNew = new Float64Array(P);
  const gNew = new Float64Array(P);
  for (it = 1; it <= maxIt; it++) {
    // two-loop recursion: q = H g
    const q = new Float64Array(g);
    const alpha: number[] = [];
    for (let k = S.length - 1; k >= 0; k--) {
      const a = rho[k]! * dot(S[k]!, q);
      alpha[k] = a;
      for (let j = 0; j < P; j++) q[j]! -= a * Yh[k]![j]!;
    }
    const last = S.length - 1;
    const gamma =
      last >= 0
        ? dot(S[last]!, Yh[last]!) / dot(Yh[last]!, Yh[last]!)
        : 1 / Math.max(1, Math.sqrt(dot(g, g)));
    for (let j = 0; j < P; j++) q[j]! *= gamma;
    for (let k = 0; k < S.length; k++) {
      const b = rho[k]! * dot(Yh[k]!, q);
      for (let j = 0; j < P; j++) q[j]! += S[k]![j]! * (alpha[k]! - b);
    }
    const gd = -dot(g, q); // directional derivative along -q
    if (!(gd < 0)) {
      // not a descent direction: restart from steepest descent
      S.length = 0;
      Yh.length = 0;
      rho.length = 0;
      continue;
    }
    let step = 1;
    let fNew = 0;
    for (let ls = 0; ls < 40; ls++) {
      for (let j = 0; j < P; j++) pNew[j] = p[j]! - step * q[j]!;
      fNew = lossGrad(pNew, z, y, n, D, l2, gNew);
      if (fNew <= f + 1e-4 * step * gd) break;
      step *= 0.5;
    }
    const sk = new Float64Array(P);
    const yk = new Float64Array(P);
    for (let j = 0; j < P; j++) {
      sk[j] = pNew[j]! - p[j]!;
      yk[j] = gNew[j]! - g[j]!;
    }
    const sy = dot(sk, yk);
    if (sy > 1e-12) {
      S.push(sk);
      Yh.push(yk);
      rho.push(1 / sy);
      if (S.length > 10) {
        S.shift();
        Yh.shift();
        rho.shift();
      }
    }
    const df = f - fNew;
    [p, g] = [new Float64Array(pNew), new Float64Array(gNew)];
    f = fNew;
    if (Math.sqrt(dot(g, g)) < tol || (df >= 0 && df < tol * 1e-3 * Math.max(1, Math.abs(f)))) {
      converged = true;
      break;
    }
  }
  return {
    weights: p.subarray(0, D),
    bias: p[D]! - dot(p.subarray(0, D), mu) / s,
    loss: f,
    iterations: Math.min(it, maxIt),
    converged,
  };
}

export const logistic: ExtractionMethod = {
  name: "logistic",
  description: "L2-regularised logistic-regression probe; direction = normalised weights",
  accepts: ["pairs", "labelled"],
  fitLayer(data: LayerData, opts: MethodOptions = {}) {
    checkLayerData("logistic", ["pairs", "labelled"], data);
    const lab = data.kind === "labelled" ? data : asLabelled(data);
    const fit = fitProbe(lab, opts);
    if (!(dot(fit.weights, fit.weights) > 0)) {
      throw new SteerlabError("bad_input", "logistic probe learned zero weights", { hint: "lower l2" });
    }
    return {
      direction: unit(fit.weights, "probe weights"),
      info: { loss: fit.loss, iterations: fit.iterations, converged: fit.converged, l2: opts.l2 ?? 1e-2 },
    };
  },
};

/** Pairs as a labelled set: positives then negatives. */
export function asLabelled(d: LayerData & { kind: "pairs" }): LayerData & { kind: "labelled" } {
  const { positive: p, negative: q } = d;
  const data = new Float64Array((p.n + q.n) * p.dim);
  data.set(p.data, 0);
  data.set(q.data, p.n * p.dim);
  const labels = new Uint8Array(p.n + q.n);
  labels.fill(1, 0, p.n);
  return { kind: "labelled", x: { data, n: p.n + q.n, dim: p.dim }, labels };
}
