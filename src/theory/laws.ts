/**
 * The paper's laws as fits (arXiv:2401.16332, DESIGN.md section 1):
 *   behaviour      B(r)  = s * tanh(a r + b0)                 s = -1 when the curve starts positive
 *   helpfulness    P(r)  = 1 / (1 + a + a (b^2/2) r^2)         full vocabulary (Corollary 1)
 *                  P(r)  = 0.5 / (1 + a + a (b^2/2) r^2) + 0.25  renormalised over A-D
 *   near r = 0     B ~ c0 + c1 r (alignment),  P ~ c0 + c1 r + c2 r^2 (helpfulness)
 */
import { SteerlabError } from "../errors.js";
import {
  type FitResult,
  fitLinearBasis,
  fitNonlinear,
  type LsqOptions,
  type NonlinearModel,
  param,
} from "./lsq.js";

/** The laws steerlab fits, by name (the `kind` of their FitResult). */
export type LawKind = "tanh" | "corollary-full" | "corollary-ad" | "poly1" | "poly2";

/** A fit of one law; `sign` is -1 for a tanh fit of the negated curve, so predict() gives the curve itself. */
export interface LawFit extends FitResult {
  readonly kind: LawKind;
  readonly sign: 1 | -1;
  /** What limits the fit's meaning: a parameter at its bound, an unidentifiable parameter, a law's ceiling. */
  readonly notes?: readonly string[];
}

export interface RangeOptions extends LsqOptions {
  /** Only points with lo <= r <= hi are fitted. Default: all. */
  range?: readonly [number, number];
}

/** Points of a curve inside `range`, with their sigma if any. */
export function selectRange(
  x: readonly number[],
  y: readonly number[],
  o: RangeOptions,
): { x: number[]; y: number[]; sigma?: number[] } {
  const [lo, hi] = o.range ?? [-Infinity, Infinity];
  const badX = x.findIndex((v) => !Number.isFinite(v));
  if (badX >= 0)
    throw new SteerlabError("bad_input", `point ${badX} is not finite`, { field: "r", got: String(x[badX]) });
  const idx = x.map((_, i) => i).filter((i) => x[i]! >= lo - 1e-12 && x[i]! <= hi + 1e-12);
  return {
    x: idx.map((i) => x[i]!),
    y: idx.map((i) => y[i]!),
    ...(o.sigma ? { sigma: idx.map((i) => o.sigma![i]!) } : {}),
  };
}

function lsqOpts(o: RangeOptions, sigma?: number[]): LsqOptions {
  const { range: _r, sigma: _s, ...rest } = o;
  return sigma ? { ...rest, sigma } : rest;
}

/** The value of a fitted law at r. */
export function predict(fit: LawFit, r: number): number {
  switch (fit.kind) {
    case "tanh":
      return fit.sign * Math.tanh(param(fit, "a") * r + param(fit, "b0"));
    case "corollary-full":
    case "corollary-ad": {
      const a = param(fit, "a");
      const b = param(fit, "b");
      const core = 1 / (1 + a + a * (b * b * 0.5) * r * r);
      return fit.kind === "corollary-full" ? core : 0.5 * core + 0.25;
    }
    case "poly1":
      return param(fit, "c0") + param(fit, "c1") * r;
    case "poly2":
      return param(fit, "c0") + param(fit, "c1") * r + param(fit, "c2") * r * r;
  }
}

/** Derivative of a fitted law at r (used for directions and slopes at the operating point). */
export function slope(fit: LawFit, r: number): number {
  const h = 1e-5;
  return (predict(fit, r + h) - predict(fit, r - h)) / (2 * h);
}

const tanhModel: NonlinearModel = {
  kind: "tanh",
  names: ["a", "b0"],
  f: (r, [a, b0]) => Math.tanh(a! * r + b0!),
  grad: (r, [a, b0]) => {
    const s = 1 - Math.tanh(a! * r + b0!) ** 2;
    return [s * r, s];
  },
};

/**
 * tanh(a r + b0) on the points in `range`. When the first fitted point is positive the curve is negated
 * before fitting (the README convention), and the fit records sign = -1.
 * The start is the best of a coarse grid over slope and centre, so steep steps (a ~ 3) are found too.
 */
export function fitTanh(x: readonly number[], y: readonly number[], o: RangeOptions = {}): LawFit {
  const d = selectRange(x, y, o);
  if (d.x.length < 3)
    throw new SteerlabError("bad_input", "tanh fit: fewer than 3 points in range", {
      got: String(d.x.length),
    });
  const sign: 1 | -1 = d.y[0]! > 0 ? -1 : 1;
  const ys = d.y.map((v) => sign * v);
  const lo = Math.min(...d.x);
  const hi = Math.max(...d.x);
  let best = { a: 1, b0: 0, rss: Infinity };
  for (let i = 0; i < 40; i++) {
    const a = 0.02 * 1.2 ** i; // 0.02 .. ~24
    for (let j = 0; j <= 40; j++) {
      const c = lo - 0.5 * (hi - lo) + (2 * (hi - lo) * j) / 40; // centre may sit outside the data
      let rss = 0;
      for (let k = 0; k < d.x.length; k++) rss += (ys[k]! - Math.tanh(a * (d.x[k]! - c))) ** 2;
      if (rss < best.rss) best = { a, b0: -a * c, rss };
    }
  }
  const fit = fitNonlinear(tanhModel, d.x, ys, [best.a, best.b0], lsqOpts(o, d.sigma));
  return { ...fit, kind: "tanh", sign };
}

function corollaryModel(kind: "corollary-full" | "corollary-ad"): NonlinearModel {
  const [A, C] = kind === "corollary-full" ? [1, 0] : [0.5, 0.25];
  return {
    kind,
    names: ["a", "b"],
    f: (r, [a, b]) => A / (1 + a! + a! * (b! * b! * 0.5) * r * r) + C,
    grad: (r, [a, b]) => {
      const D = 1 + a! + a! * (b! * b! * 0.5) * r * r;
      const k = -A / (D * D);
      return [k * (1 + b! * b! * 0.5 * r * r), k * a! * b! * r * r];
    },
  };
}

/** Largest value a Corollary-1 law can take with a >= 0: 1 (full vocabulary) or 0.75 (A-D). */
export function corollaryCeiling(kind: "corollary-full" | "corollary-ad"): number {
  return kind === "corollary-full" ? 1 : 0.75;
}

/**
 * Corollary-1 helpfulness law, full vocabulary ("corollary-full") or A-D renormalised ("corollary-ad"), with
 * a, b >= 0 as the authors fit it (lmfit, bounds a >= 0, b >= 0, start a = b = 1). More starts are tried: a
 * from the value nearest r = 0 (P0 = A/(1+a) + C), b from the curvature of a quadratic fit near 0; the best
 * residual wins. Notes say when a sits at 0 (the law is then flat and b is not identifiable) and when the data
 * lie above the law's ceiling (0.75 for A-D: no a >= 0 reaches them).
 */
export function fitCorollary(
  x: readonly number[],
  y: readonly number[],
  kind: "corollary-full" | "corollary-ad",
  o: RangeOptions = {},
): LawFit {
  const d = selectRange(x, y, o);
  const [A, C] = kind === "corollary-full" ? [1, 0] : [0.5, 0.25];
  const i0 = d.x.reduce((bi, v, i) => (Math.abs(v) < Math.abs(d.x[bi]!) ? i : bi), 0);
  const p0 = Math.min(Math.max(d.y[i0]!, C + 1e-3), C + A - 1e-3);
  const a0 = A / (p0 - C) - 1;
  // b's scale follows the grid: b r ~ 1 somewhere inside the range (the paper's [-5, 5] gives b ~ 0.3-3)
  const span = Math.max(...d.x.map(Math.abs), 1e-9);
  const unit = 5 / span;
  let k0 = 0.1 * unit * unit;
  const near = selectRange(d.x, d.y, { range: [-span / 2, span / 2] });
  if (near.x.length >= 4) {
    const q = fitPoly(near.x, near.y, 2);
    const c2 = param(q, "c2");
    if (c2 < 0) k0 = (-c2 * (1 + a0) ** 2) / A;
  }
  const starts: [number, number][] = [
    [1, 1], // the authors' start
    ...[Math.sqrt((2 * k0) / Math.max(a0, 1e-3)), 0.3 * unit, unit, 3 * unit].map(
      (b) => [Math.max(a0, 1e-3), b] as [number, number],
    ),
  ];
  const bounded = { ...lsqOpts(o, d.sigma), lower: [0, 0] };
  let best: FitResult | null = null;
  for (const st of starts) {
    try {
      const f = fitNonlinear(corollaryModel(kind), d.x, d.y, st, bounded);
      if (!best || f.rss < best.rss) best = f;
    } catch {
      // a start that gives a non-finite residual is skipped; the others decide
    }
  }
  if (!best)
    throw new SteerlabError("bad_input", `${kind} fit failed from every start`, {
      hint: "check the curve is a probability in [0, 1]",
    });
  const notes: string[] = [];
  const a = best.values[0]!;
  const b = best.values[1]!;
  const ceil = corollaryCeiling(kind);
  const above = d.y.filter((v) => v > ceil).length;
  if (above > 0)
    notes.push(`${above} of ${d.y.length} points lie above ${ceil}, the most this law reaches with a >= 0`);
  if (a <= 1e-8) notes.push("a = 0 (its bound): the law is flat at its ceiling and b is not identifiable");
  else if (b <= 1e-8) notes.push("b = 0 (its bound): the law is flat");
  else if (!(best.se[1]! < Math.abs(b)))
    notes.push("b is poorly identified (its standard error exceeds its value): a and b trade off");
  return { ...best, kind, sign: 1, ...(notes.length ? { notes } : {}) };
}

/** Polynomial fit c0 + c1 r (+ c2 r^2) over the points given (no range selection). */
function fitPoly(x: readonly number[], y: readonly number[], degree: 1 | 2, o: LsqOptions = {}): LawFit {
  const names = degree === 1 ? ["c0", "c1"] : ["c0", "c1", "c2"];
  const basis = degree === 1 ? (r: number) => [1, r] : (r: number) => [1, r, r * r];
  const fit = fitLinearBasis(degree === 1 ? "poly1" : "poly2", names, basis, x, y, o);
  return { ...fit, kind: degree === 1 ? "poly1" : "poly2", sign: 1 };
}

/** Local linear fit of alignment near r = 0: |r| <= halfWidth (default 1), weighted when sigma is given. */
export function fitLocalLinear(
  x: readonly number[],
  y: readonly number[],
  o: RangeOptions & { halfWidth?: number } = {},
): LawFit {
  const h = o.halfWidth ?? 1;
  const d = selectRange(x, y, { ...o, range: o.range ?? [-h, h] });
  return fitPoly(d.x, d.y, 1, lsqOpts(o, d.sigma));
}

/** Local quadratic fit of helpfulness near r = 0: |r| <= halfWidth (default 2.5), weighted when sigma is given. */
export function fitLocalQuadratic(
  x: readonly number[],
  y: readonly number[],
  o: RangeOptions & { halfWidth?: number } = {},
): LawFit {
  const h = o.halfWidth ?? 2.5;
  const d = selectRange(x, y, { ...o, range: o.range ?? [-h, h] });
  return fitPoly(d.x, d.y, 2, lsqOpts(o, d.sigma));
}
