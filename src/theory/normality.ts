/**
 * Normality measures for the A3 diagnostic (X_i = <U delta, e_i - e_correct> should look Gaussian):
 * Shapiro-Wilk W with Royston's (1995) approximation of its p-value, Jarque-Bera (skewness and kurtosis,
 * chi^2 with 2 dof) and Anderson-Darling A^2 with Stephens' small-sample correction (mean and variance estimated).
 */
import { SteerlabError } from "../errors.js";
import { mean, normalCdf, normalQuantile } from "./stats.js";

export interface NormalityTest {
  readonly statistic: number;
  readonly pValue: number;
  readonly n: number;
}

function sorted(xs: readonly number[], min: number, name: string): number[] {
  if (xs.length < min) {
    throw new SteerlabError("bad_input", `${name} needs at least ${min} values`, { got: String(xs.length) });
  }
  if (xs.some((v) => !Number.isFinite(v)))
    throw new SteerlabError("bad_input", `${name}: values must be finite`);
  return [...xs].sort((a, b) => a - b);
}

function poly(c: readonly number[], x: number): number {
  let r = 0;
  for (let i = c.length - 1; i >= 0; i--) r = r * x + c[i]!;
  return r;
}

/** Shapiro-Wilk test, 4 <= n <= 5000 (Royston's algorithm AS R94). A constant sample gives W = 1, p = 1. */
export function shapiroWilk(xs: readonly number[]): NormalityTest & { skipped?: string } {
  const x = sorted(xs, 4, "Shapiro-Wilk");
  const n = x.length;
  if (x[n - 1]! - x[0]! < 1e-300) return { statistic: 1, pValue: 1, n, skipped: "constant sample" };
  const m = Array.from({ length: n }, (_, i) => normalQuantile((i + 1 - 0.375) / (n + 0.25)));
  const mm = m.reduce((s, v) => s + v * v, 0);
  const u = 1 / Math.sqrt(n);
  const a = new Array<number>(n).fill(0);
  // Polynomial corrections of the two extreme coefficients, the rest scaled from m.
  const an = poly([0, 0.221157, -0.147981, -2.07119, 4.434685, -2.706056], u) + m[n - 1]! / Math.sqrt(mm);
  if (n > 5) {
    const an1 = poly([0, 0.042981, -0.293762, -1.752461, 5.682633, -3.582633], u) + m[n - 2]! / Math.sqrt(mm);
    const phi = (mm - 2 * m[n - 1]! ** 2 - 2 * m[n - 2]! ** 2) / (1 - 2 * an ** 2 - 2 * an1 ** 2);
    for (let i = 2; i < n - 2; i++) a[i] = m[i]! / Math.sqrt(phi);
    a[n - 1] = an;
    a[0] = -an;
    a[n - 2] = an1;
    a[1] = -an1;
  } else {
    const phi = (mm - 2 * m[n - 1]! ** 2) / (1 - 2 * an ** 2);
    for (let i = 1; i < n - 1; i++) a[i] = m[i]! / Math.sqrt(phi);
    a[n - 1] = an;
    a[0] = -an;
  }
  const xbar = mean(x);
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += a[i]! * x[i]!;
    den += (x[i]! - xbar) ** 2;
  }
  const W = Math.min((num * num) / den, 1);
  let z: number;
  if (n <= 11) {
    const gamma = 0.459 * n - 2.273;
    const mu = poly([0.544, -0.39978, 0.025054, -6.714e-4], n);
    const sigma = Math.exp(poly([1.3822, -0.77857, 0.062767, -0.0020322], n));
    const arg = gamma - Math.log1p(-W);
    z = arg > 0 ? (-Math.log(arg) - mu) / sigma : Infinity;
  } else {
    const ln = Math.log(n);
    const mu = poly([-1.5861, -0.31082, -0.083751, 0.0038915], ln);
    const sigma = Math.exp(poly([-0.4803, -0.082676, 0.0030302], ln));
    z = (Math.log1p(-W) - mu) / sigma;
  }
  return { statistic: W, pValue: 1 - normalCdf(z), n };
}

/** Jarque-Bera: n/6 (S^2 + (K-3)^2/4); p = exp(-JB/2) exactly (chi^2, 2 dof). */
export function jarqueBera(xs: readonly number[]): NormalityTest & { skewness: number; kurtosis: number } {
  const x = sorted(xs, 3, "Jarque-Bera");
  const n = x.length;
  const m = mean(x);
  let m2 = 0;
  let m3 = 0;
  let m4 = 0;
  for (const v of x) {
    const d = v - m;
    m2 += d * d;
    m3 += d * d * d;
    m4 += d * d * d * d;
  }
  m2 /= n;
  m3 /= n;
  m4 /= n;
  if (m2 === 0) return { statistic: 0, pValue: 1, n, skewness: 0, kurtosis: 3 };
  const skewness = m3 / m2 ** 1.5;
  const kurtosis = m4 / (m2 * m2);
  const statistic = (n / 6) * (skewness ** 2 + (kurtosis - 3) ** 2 / 4);
  return { statistic, pValue: Math.exp(-statistic / 2), n, skewness, kurtosis };
}

/** Anderson-Darling A^2* = A^2 (1 + 0.75/n + 2.25/n^2) with D'Agostino & Stephens' p-value formulas. */
export function andersonDarling(xs: readonly number[]): NormalityTest {
  const x = sorted(xs, 8, "Anderson-Darling");
  const n = x.length;
  const m = mean(x);
  const s = Math.sqrt(x.reduce((t, v) => t + (v - m) ** 2, 0) / (n - 1));
  if (s === 0) return { statistic: 0, pValue: 1, n };
  const F = x.map((v) => Math.min(Math.max(normalCdf((v - m) / s), 1e-15), 1 - 1e-15));
  let sum = 0;
  for (let i = 0; i < n; i++) sum += (2 * i + 1) * (Math.log(F[i]!) + Math.log(1 - F[n - 1 - i]!));
  const a2 = -n - sum / n;
  const st = a2 * (1 + 0.75 / n + 2.25 / (n * n));
  let p: number;
  if (st >= 0.6) p = Math.exp(1.2937 - 5.709 * st + 0.0186 * st * st);
  else if (st >= 0.34) p = Math.exp(0.9177 - 4.279 * st - 1.38 * st * st);
  else if (st >= 0.2) p = 1 - Math.exp(-8.318 + 42.796 * st - 59.938 * st * st);
  else p = 1 - Math.exp(-13.436 + 101.14 * st - 223.73 * st * st);
  return { statistic: st, pValue: Math.min(Math.max(p, 0), 1), n };
}
