/**
 * The report's input: what a sweep produced (metric per r_e with its spread, per task), the fits of each
 * curve, the assumption diagnostics, the efficient regime and free-form metadata. The sweep runner builds a
 * `SweepData`; `buildReport` adds the fits and the regime; the writers turn a `SweepReport` into files.
 */
import type { A2Diagnostic, A3Diagnostic, LinearDiagnostic } from "../eval/score-diagnostics.js";
import type { CurveKind } from "../theory/curves.js";
import type { LawFit } from "../theory/laws.js";
import type { EfficientRegime } from "../theory/regime.js";

/** One metric at one r_e: mean over prompts with its spread. */
export interface MetricPoint {
  readonly r: number;
  readonly mean: number;
  /** Std over prompts (NaN when unknown). */
  readonly std: number;
  /** Standard error of the mean (NaN when unknown). */
  readonly se: number;
  readonly n: number;
  /** Behaviour tasks: answers classified unclear at this r_e. */
  readonly unclear?: number;
}

/** A task's metric along the r_e grid. `kind` decides the fits and the chart it goes on. */
export interface TaskSeries {
  readonly id: string;
  readonly title: string;
  readonly kind: CurveKind;
  readonly points: readonly MetricPoint[];
}

export interface Diagnostics {
  readonly a1?: LinearDiagnostic;
  /** The paper's A2: good-minus-bad single-token logit shift, lower-bound slope through the origin. */
  readonly a2?: A2Diagnostic;
  /** steerlab's stand-in: the whole-continuation log-prob margin against r_e (line with intercept). */
  readonly a2Margin?: LinearDiagnostic;
  readonly a3?: A3Diagnostic;
}

export type Metadata = Readonly<Record<string, string | number | boolean | null>>;

/** What a sweep hands to the report. */
export interface SweepData {
  readonly title: string;
  readonly metadata: Metadata;
  /** The r_e values swept (union over tasks). */
  readonly rGrid: readonly number[];
  readonly tasks: readonly TaskSeries[];
  readonly diagnostics?: Diagnostics;
  /** What the data lack (e.g. cells of the planned grid without a result): shown at the top of the report. */
  readonly warnings?: readonly string[];
}

export interface TaskFits {
  readonly taskId: string;
  /** tanh (behaviour) or Corollary 1 (helpfulness); absent for generic curves or when the fit failed. */
  readonly law?: LawFit;
  readonly local: readonly LawFit[];
  /** Why a fit is missing (e.g. too few points). */
  readonly notes: readonly string[];
}

/** Where one side of the regime comes from: its fitted law or its interpolated data, and why. */
export interface RegimeSource {
  readonly from: "fit" | "data";
  readonly law?: string;
  readonly r2?: number;
  readonly why: string;
}

export interface RegimeReport {
  readonly alignmentTask: string;
  readonly helpfulnessTask: string;
  /**
   * "fit": both curves from their fitted laws; "data": both from piecewise-linear interpolation of the
   * measured means; "mixed": one of each (see `sources`).
   */
  readonly source: "fit" | "data" | "mixed";
  readonly sources?: { readonly alignment: RegimeSource; readonly helpfulness: RegimeSource };
  /** The R^2 a law needed to be used (source "auto"). */
  readonly minR2?: number;
  readonly result: EfficientRegime;
}

/** A sweep with its fits and efficient regime: everything the writers need. */
export interface SweepReport extends SweepData {
  readonly fits: readonly TaskFits[];
  readonly regime?: RegimeReport;
  /** steerlab's report format version. */
  readonly version: 1;
}
