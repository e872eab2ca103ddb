/**
 * Measurements of the paper's assumptions on a real model (DESIGN.md section 1):
 *   A1  ||U delta(r_e)|| = ||steered logits - baseline logits|| grows linearly in |r_e|      (linear fit, R^2;
 *       pooled over |r_e| and per sign on [0, rMax] and [-rMax, 0], as the paper fits them)
 *   A2  the paper's way: the single-token logit shift <U delta, e_good - e_bad> at the answer position, the mean
 *       over a chosen good token set minus the mean over a bad set, relative to r_e = 0; its lower-bound slope
 *       through the origin on r_e >= 0 = min(slope of a line through the first 4 points, slope of the chord from
 *       the first to the last point), as the authors' separation plot computes Delta
 *   A2-margin  (steerlab's cheaper stand-in) the aligned-vs-misaligned log-prob margin of whole continuations
 *       against r_e, a line with intercept
 *   A3  X_i = <U delta, e_i - e_correct> over the top-k baseline tokens i is Gaussian with std ~ |r_e|
 *       (std against |r_e| with a linear fit, and Shapiro-Wilk / Jarque-Bera per r_e)
 * Inputs are per-prompt values grouped by r_e; the sweep runner collects them.
 */
import { SteerlabError } from "../errors.js";
import { fitLocalLinear, type LawFit } from "../theory/laws.js";
import { jarqueBera, type NormalityTest, shapiroWilk } from "../theory/normality.js";
import { type Summary, summarize } from "./score-aggregate.js";

/** Values measured at one r_e (one per prompt, or pooled X_i for A3). */
export interface AtR {
  readonly r: number;
  readonly values: readonly number[];
}

export interface DiagnosticRow extends Summary {
  readonly r: number;
}

export interface LinearDiagnostic {
  readonly rows: readonly DiagnosticRow[];
  /** c0 + c1 x with x = |r_e| (A1, A3) or r_e (A2), on |r_e| <= rMax; null with fewer than 3 usable points. */
  readonly fit: LawFit | null;
  /** A1: c0 + c1 r_e on [0, rMax] and on [-rMax, 0] apart (null with fewer than 3 points on that side). */
  readonly fitPos?: LawFit | null;
  readonly fitNeg?: LawFit | null;
  readonly rMax: number;
}

/** A2 the paper's way: the mean good-minus-bad logit shift per r_e and its lower-bound slope through 0. */
export interface A2Diagnostic {
  readonly rows: readonly DiagnosticRow[];
  /** Delta: shift(r) >= Delta r is the bound drawn; null with fewer than 2 points at r_e >= 0. */
  readonly slope: number | null;
  /** The two slopes it is the minimum of (first 4 points; first-to-last chord). */
  readonly slopeFirst4: number | null;
  readonly slopeChord: number | null;
  readonly rMax: number;
}

/** The diagnostics' r range for a grid: the paper's 5, or 4 grid steps on a coarser grid. */
export function diagnosticsRange(r: readonly number[]): number {
  const xs = [...new Set(r)].sort((a, b) => a - b);
  const gaps = xs
    .slice(1)
    .map((x, i) => x - xs[i]!)
    .sort((a, b) => a - b);
  const step = gaps.length ? gaps[gaps.length >> 1]! : 0;
  return Math.max(5, 4 * step * (1 + 1e-9));
}

/** Mean logit over `good` ids minus mean over `bad` ids (one token position's raw logits). */
export function goodBadLogit(
  logits: ArrayLike<number>,
  good: readonly number[],
  bad: readonly number[],
): number {
  const mean = (ids: readonly number[]) => ids.reduce((s, id) => s + logits[id]!, 0) / ids.length;
  return mean(good) - mean(bad);
}

export interface A3Row extends DiagnosticRow {
  readonly shapiroWilk: NormalityTest | null;
  readonly jarqueBera: (NormalityTest & { skewness: number; kurtosis: number }) | null;
}

export interface A3Diagnostic {
  readonly rows: readonly A3Row[];
  /** std of X_i against |r_e|. */
  readonly stdFit: LawFit | null;
  readonly rMax: number;
}

function checkLen(a: ArrayLike<number>, b: ArrayLike<number>): void {
  if (a.length !== b.length) {
    throw new SteerlabError("bad_input", "baseline and steered logits differ in length", {
      expected: String(a.length),
      got: String(b.length),
    });
  }
}

/** ||steered - base|| over the vocabulary (logits, not log-probs: U delta itself). */
export function deltaLogitNorm(base: ArrayLike<number>, steered: ArrayLike<number>): number {
  checkLen(base, steered);
  let s = 0;
  for (let i = 0; i < base.length; i++) s += (steered[i]! - base[i]!) ** 2;
  return Math.sqrt(s);
}

/** Ids of the k largest baseline logits, excluding `exclude`. */
export function topK(logits: ArrayLike<number>, k: number, exclude = -1): number[] {
  const ids: number[] = [];
  for (let i = 0; i < logits.length; i++) {
    if (i === exclude) continue;
    if (ids.length < k) {
      ids.push(i);
      ids.sort((a, b) => logits[b]! - logits[a]!);
    } else if (logits[i]! > logits[ids[k - 1]!]!) {
      ids[k - 1] = i;
      ids.sort((a, b) => logits[b]! - logits[a]!);
    }
  }
  return ids;
}

/** X_i = delta_i - delta_correct for the top-k baseline tokens i != correct (delta = steered - base logits). */
export function a3Projections(
  base: ArrayLike<number>,
  steered: ArrayLike<number>,
  correctId: number,
  k = 10,
): number[] {
  checkLen(base, steered);
  const dc = steered[correctId]! - base[correctId]!;
  return topK(base, k, correctId).map((i) => steered[i]! - base[i]! - dc);
}

function rowsOf(points: readonly AtR[]): DiagnosticRow[] {
  return [...points].sort((a, b) => a.r - b.r).map((p) => ({ r: p.r, ...summarize(p.values) }));
}

function lineFit(x: number[], y: number[], rMax: number, abs: boolean): LawFit | null {
  const keep = x.map((_, i) => i).filter((i) => Math.abs(x[i]!) <= rMax + 1e-12 && Number.isFinite(y[i]!));
  if (keep.length < 3) return null;
  const xs = keep.map((i) => (abs ? Math.abs(x[i]!) : x[i]!));
  return fitLocalLinear(
    xs,
    keep.map((i) => y[i]!),
    { range: [-Infinity, Infinity] },
  );
}

/** Mean per r_e and its linear fit on |r_e| <= rMax, against |r_e| (absR) or r_e. */
function lineDiagnostic(points: readonly AtR[], rMax: number, absR: boolean): LinearDiagnostic {
  const rows = rowsOf(points);
  const fit = lineFit(
    rows.map((r) => r.r),
    rows.map((r) => r.mean),
    rMax,
    absR,
  );
  return { rows, rMax, fit };
}

/**
 * A1: mean ||U delta|| per r_e; linear fits against |r_e| on |r_e| <= rMax (default 5) and per sign
 * (r_e in [0, rMax] and [-rMax, 0]).
 */
export function diagnoseA1(points: readonly AtR[], rMax = 5): LinearDiagnostic {
  const d = lineDiagnostic(points, rMax, true);
  const side = (sign: 1 | -1) => {
    const rows = d.rows.filter((r) => sign * r.r >= 0);
    return lineFit(
      rows.map((r) => r.r),
      rows.map((r) => r.mean),
      rMax,
      false,
    );
  };
  return { ...d, fitPos: side(1), fitNeg: side(-1) };
}

/** A2-margin: mean aligned-minus-misaligned margin per r_e and its linear fit against r_e on |r_e| <= rMax. */
export function diagnoseA2Margin(points: readonly AtR[], rMax = 5): LinearDiagnostic {
  return lineDiagnostic(points, rMax, false);
}

/**
 * A2 the paper's way: `points` hold per prompt the good-minus-bad logit shift relative to the same prompt at
 * r_e = 0. Delta = min(slope of the least-squares line through the first 4 points at r_e >= 0, slope of the
 * chord from the first to the last point at 0 <= r_e <= rMax).
 */
export function diagnoseA2(points: readonly AtR[], rMax = 5): A2Diagnostic {
  const rows = rowsOf(points);
  const pos = rows.filter((r) => r.r >= 0 && r.r <= rMax + 1e-12 && Number.isFinite(r.mean));
  let slopeFirst4: number | null = null;
  let slopeChord: number | null = null;
  if (pos.length >= 2) {
    const f = pos.slice(0, 4);
    const mx = f.reduce((s, p) => s + p.r, 0) / f.length;
    const my = f.reduce((s, p) => s + p.mean, 0) / f.length;
    const sxx = f.reduce((s, p) => s + (p.r - mx) ** 2, 0);
    slopeFirst4 = f.reduce((s, p) => s + (p.r - mx) * (p.mean - my), 0) / sxx;
    const a = pos[0]!;
    const b = pos[pos.length - 1]!;
    slopeChord = (b.mean - a.mean) / (b.r - a.r);
  }
  const slope = slopeFirst4 === null || slopeChord === null ? null : Math.min(slopeFirst4, slopeChord);
  return { rows, slope, slopeFirst4, slopeChord, rMax };
}

/** A3: per r_e the pooled X_i with their std and normality tests; std against |r_e| with a linear fit. */
export function diagnoseA3(points: readonly AtR[], rMax = 5): A3Diagnostic {
  const rows: A3Row[] = [...points]
    .sort((a, b) => a.r - b.r)
    .map((p) => ({
      r: p.r,
      ...summarize(p.values),
      shapiroWilk: p.values.length >= 4 && p.values.length <= 5000 ? shapiroWilk(p.values) : null,
      jarqueBera: p.values.length >= 3 ? jarqueBera(p.values) : null,
    }));
  return {
    rows,
    rMax,
    stdFit: lineFit(
      rows.map((r) => r.r),
      rows.map((r) => r.std),
      rMax,
      true,
    ),
  };
}
