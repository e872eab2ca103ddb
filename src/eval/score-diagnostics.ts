/**
 * Measurements of the paper's assumptions on a real model (DESIGN.md section 1):
 *   A1  ||U delta(r_e)|| = ||steered logits - baseline logits|| grows linearly in |r_e|      (linear fit, R^2)
 *   A2  the aligned-vs-misaligned log-prob margin moves linearly with r_e                   (linear fit, R^2)
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
  readonly rMax: number;
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

/** A1: mean ||U delta|| per r_e and its linear fit against |r_e| on |r_e| <= rMax (default 5). */
export function diagnoseA1(points: readonly AtR[], rMax = 5): LinearDiagnostic {
  return lineDiagnostic(points, rMax, true);
}

/** A2: mean aligned-minus-misaligned margin per r_e and its linear fit against r_e on |r_e| <= rMax. */
export function diagnoseA2(points: readonly AtR[], rMax = 5): LinearDiagnostic {
  return lineDiagnostic(points, rMax, false);
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
