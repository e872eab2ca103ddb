/**
 * The efficient regime of steering (DESIGN.md section 1): alignment gains to first order in r_e while
 * helpfulness loses to second order, so a small r_e pays. Given alignment A(r) and helpfulness H(r)
 * (fitted laws or interpolated data), with gain(r) = A(r) - A(0) and loss(r) = H(0) - H(r):
 *  - budget:   the largest |r| (on the side where alignment rises) with loss <= budget all the way from 0;
 *  - tradeoff: the r maximising gain(r) - lambda * loss(r);
 *  - frontier: (gain, loss) along r, with the Pareto-optimal points flagged.
 */
import { SteerlabError } from "../errors.js";

export type Curve1D = (r: number) => number;

export interface RegimeInput {
  alignment: Curve1D;
  helpfulness: Curve1D;
  /** Largest |r| searched on the aligning side. */
  rMax: number;
  /** Grid resolution of the scan (points from 0 to rMax). Default 1000. */
  steps?: number;
  /** +1 / -1 to force the aligning side; default: the sign of dA/dr near 0. */
  direction?: 1 | -1;
}

export interface RegimePoint {
  readonly r: number;
  readonly alignment: number;
  readonly helpfulness: number;
  readonly gain: number;
  readonly loss: number;
}

export interface FrontierPoint extends RegimePoint {
  /** No other point has at least this gain with strictly less loss (or more gain at no more loss). */
  readonly pareto: boolean;
}

export interface EfficientRegime {
  readonly direction: 1 | -1;
  readonly baseline: { readonly alignment: number; readonly helpfulness: number };
  readonly budget: number;
  /** Largest |r| within the helpfulness budget (null when even the first grid step exceeds it). */
  readonly withinBudget: RegimePoint | null;
  readonly lambda: number;
  readonly tradeoff: RegimePoint & { readonly objective: number };
  readonly frontier: readonly FrontierPoint[];
}

/** Piecewise-linear interpolation through (xs, ys), constant beyond the ends; xs need not be sorted. */
export function interpolate(xs: readonly number[], ys: readonly number[]): Curve1D {
  if (xs.length === 0 || xs.length !== ys.length) {
    throw new SteerlabError("bad_input", "interpolate: need matching non-empty x and y", {
      got: `${xs.length} x, ${ys.length} y`,
    });
  }
  const idx = xs.map((_, i) => i).sort((a, b) => xs[a]! - xs[b]!);
  const x = idx.map((i) => xs[i]!);
  const y = idx.map((i) => ys[i]!);
  return (r) => {
    if (r <= x[0]!) return y[0]!;
    if (r >= x[x.length - 1]!) return y[y.length - 1]!;
    let lo = 0;
    let hi = x.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (x[mid]! <= r) lo = mid;
      else hi = mid;
    }
    const t = (r - x[lo]!) / (x[hi]! - x[lo]! || 1);
    return y[lo]! + t * (y[hi]! - y[lo]!);
  };
}

/** The side of r = 0 on which alignment rises (central difference over +-h). */
export function alignmentDirection(alignment: Curve1D, h = 0.1): 1 | -1 {
  return alignment(h) - alignment(-h) >= 0 ? 1 : -1;
}

function pointAt(inp: RegimeInput, dir: 1 | -1, mag: number, a0: number, h0: number): RegimePoint {
  const r = dir * mag;
  const alignment = inp.alignment(r);
  const helpfulness = inp.helpfulness(r);
  return { r, alignment, helpfulness, gain: alignment - a0, loss: h0 - helpfulness };
}

function check(inp: RegimeInput): void {
  if (!(inp.rMax > 0) || !Number.isFinite(inp.rMax)) {
    throw new SteerlabError("bad_input", "efficient regime: rMax must be a positive finite number", {
      field: "rMax",
      got: String(inp.rMax),
    });
  }
}

/** Scan 0..rMax on the aligning side; returns the grid points (r = 0 first). */
export function scan(inp: RegimeInput): { direction: 1 | -1; points: RegimePoint[] } {
  check(inp);
  const dir = inp.direction ?? alignmentDirection(inp.alignment);
  const steps = inp.steps ?? 1000;
  const a0 = inp.alignment(0);
  const h0 = inp.helpfulness(0);
  const points: RegimePoint[] = [];
  for (let i = 0; i <= steps; i++) points.push(pointAt(inp, dir, (inp.rMax * i) / steps, a0, h0));
  return { direction: dir, points };
}

/** Largest |r| whose helpfulness loss stays <= budget everywhere between 0 and r (bisection on the crossing). */
export function maxWithinBudget(inp: RegimeInput, budget: number): RegimePoint | null {
  const { direction, points } = scan(inp);
  const a0 = points[0]!.alignment;
  const h0 = points[0]!.helpfulness;
  let last = -1;
  for (let i = 0; i < points.length && points[i]!.loss <= budget; i++) last = i;
  if (last === points.length - 1) return points[last]!;
  if (last < 0) return null;
  let lo = Math.abs(points[last]!.r);
  let hi = Math.abs(points[last + 1]!.r);
  for (let k = 0; k < 60; k++) {
    const mid = 0.5 * (lo + hi);
    if (pointAt(inp, direction, mid, a0, h0).loss <= budget) lo = mid;
    else hi = mid;
  }
  return pointAt(inp, direction, lo, a0, h0);
}

/** The r on the aligning side that maximises gain - lambda * loss (grid maximum, refined by golden section). */
export function bestTradeoff(inp: RegimeInput, lambda: number): RegimePoint & { objective: number } {
  const { direction, points } = scan(inp);
  const a0 = points[0]!.alignment;
  const h0 = points[0]!.helpfulness;
  const obj = (p: RegimePoint) => p.gain - lambda * p.loss;
  let bi = 0;
  for (let i = 1; i < points.length; i++) if (obj(points[i]!) > obj(points[bi]!)) bi = i;
  let lo = Math.abs(points[Math.max(bi - 1, 0)]!.r);
  let hi = Math.abs(points[Math.min(bi + 1, points.length - 1)]!.r);
  const g = (Math.sqrt(5) - 1) / 2;
  const f = (m: number) => obj(pointAt(inp, direction, m, a0, h0));
  for (let k = 0; k < 60 && hi - lo > 1e-12; k++) {
    const m1 = hi - g * (hi - lo);
    const m2 = lo + g * (hi - lo);
    if (f(m1) >= f(m2)) hi = m2;
    else lo = m1;
  }
  const refined = pointAt(inp, direction, 0.5 * (lo + hi), a0, h0);
  const best = obj(refined) >= obj(points[bi]!) ? refined : points[bi]!;
  return { ...best, objective: obj(best) };
}

/** The alignment-helpfulness frontier along r on the aligning side, with Pareto-optimal points flagged. */
export function frontier(inp: RegimeInput): FrontierPoint[] {
  const { points } = scan({ ...inp, steps: inp.steps ?? 200 });
  // Sort by loss ascending; a point is Pareto-optimal when its gain beats every point of smaller loss.
  const order = points
    .map((_, i) => i)
    .sort((a, b) => points[a]!.loss - points[b]!.loss || points[b]!.gain - points[a]!.gain);
  const pareto = new Array<boolean>(points.length).fill(false);
  let bestGain = -Infinity;
  for (const i of order) {
    if (points[i]!.gain > bestGain) {
      pareto[i] = true;
      bestGain = points[i]!.gain;
    }
  }
  return points.map((p, i) => ({ ...p, pareto: pareto[i]! }));
}

/** Everything above in one object (the report marks `tradeoff.r` and `withinBudget.r`). */
export function efficientRegime(inp: RegimeInput, o: { budget: number; lambda: number }): EfficientRegime {
  const { direction, points } = scan(inp);
  const inDir = { ...inp, direction };
  return {
    direction,
    baseline: { alignment: points[0]!.alignment, helpfulness: points[0]!.helpfulness },
    budget: o.budget,
    withinBudget: maxWithinBudget(inDir, o.budget),
    lambda: o.lambda,
    tradeoff: bestTradeoff(inDir, o.lambda),
    frontier: frontier(inDir),
  };
}
