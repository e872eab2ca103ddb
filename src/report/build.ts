/**
 * From sweep data to a report: fit every task's curve with the laws of its kind and compute the efficient
 * regime between one alignment task and one helpfulness task.
 */
import { SteerlabError } from "../errors.js";
import { type CurveFitOptions, fitCurve } from "../theory/curves.js";
import { type LawFit, predict } from "../theory/laws.js";
import { alignmentDirection, type Curve1D, efficientRegime, interpolate } from "../theory/regime.js";
import type { RegimeReport, RegimeSource, SweepData, SweepReport, TaskFits, TaskSeries } from "./types.js";

export interface BuildOptions {
  /** Options of the curve fits (fit ranges, local half widths). */
  fit?: CurveFitOptions;
  /** Weight the fits by 1/se^2 when standard errors are known. Default false (plain least squares). */
  weighted?: boolean;
  regime?: {
    /** Task ids; defaults: the first behaviour task and the first full-vocabulary helpfulness task. */
    alignmentTask?: string;
    helpfulnessTask?: string;
    /**
     * "auto" (default): each curve from its fitted law when that law fits well (R^2 >= minR2 and converged),
     * else from its interpolated data; "fit" / "data" force one source for both.
     */
    source?: "auto" | "fit" | "data";
    /** R^2 a law needs for the "auto" source to use it. Default REGIME_MIN_R2 (0.9). */
    minR2?: number;
    /** Helpfulness loss allowed (absolute, in the metric's units). Default 0.02. */
    budget?: number;
    /** Weight of helpfulness loss against alignment gain. Default 1. */
    lambda?: number;
  };
}

/** R^2 below which the efficient regime reads a curve from its data instead of its law. */
export const REGIME_MIN_R2 = 0.9;

function fitTask(t: TaskSeries, o: BuildOptions): TaskFits {
  const pts = t.points.filter((p) => Number.isFinite(p.mean));
  const hasSe = o.weighted && pts.every((p) => Number.isFinite(p.se));
  const curve = {
    name: t.title,
    kind: t.kind,
    r: pts.map((p) => p.r),
    value: pts.map((p) => p.mean),
    ...(hasSe ? { std: pts.map((p) => p.se) } : {}),
  };
  const f = fitCurve(curve, { ...o.fit, ...(hasSe ? { weightN: 1 } : {}) });
  return {
    taskId: t.id,
    ...(f.law ? { law: f.law } : {}),
    local: f.local,
    notes: f.failed.map((x) => `${x.kind} not fitted: ${x.message}`),
  };
}

function pickTask(
  tasks: readonly TaskSeries[],
  id: string | undefined,
  kinds: readonly string[],
  role: string,
): TaskSeries | undefined {
  if (id) {
    const t = tasks.find((x) => x.id === id);
    if (!t)
      throw new SteerlabError("not_found", `no task ${id} for the ${role} side of the regime`, {
        expected: tasks.map((x) => x.id).join(", "),
      });
    return t;
  }
  return tasks.find((x) => kinds.includes(x.kind));
}

/**
 * A task's metric as a function of r_e: its fitted law ("fit", when there is one) or its measured points
 * interpolated. `source` may be a regime side's RegimeSource (report.regime.sources), so a reader of a report
 * (the web lab) reads the curve the efficient regime used.
 */
export function taskCurve(
  t: TaskSeries,
  fits: readonly TaskFits[],
  source: "fit" | "data" | RegimeSource,
): Curve1D {
  const from = typeof source === "string" ? source : source.from;
  const law: LawFit | undefined = fits.find((f) => f.taskId === t.id)?.law;
  if (from === "fit" && law) return (r: number) => predict(law, r);
  return interpolate(
    t.points.map((p) => p.r),
    t.points.map((p) => p.mean),
  );
}

function regimeOf(d: SweepData, fits: readonly TaskFits[], o: BuildOptions): RegimeReport | undefined {
  const ro = o.regime ?? {};
  const at = pickTask(d.tasks, ro.alignmentTask, ["behavior"], "alignment");
  const ht = pickTask(d.tasks, ro.helpfulnessTask, ["helpfulness-full", "helpfulness-ad"], "helpfulness");
  if (!at || !ht) return undefined;
  const mode = ro.source ?? "auto";
  const minR2 = ro.minR2 ?? REGIME_MIN_R2;
  const lawOf = (id: string): LawFit | undefined => fits.find((f) => f.taskId === id)?.law;
  const sideOf = (t: TaskSeries): { fn: (r: number) => number; source: RegimeSource } => {
    const law = lawOf(t.id);
    const data = () => taskCurve(t, fits, "data");
    if (mode === "data") return { fn: data(), source: { from: "data", why: "data requested" } };
    if (!law) return { fn: data(), source: { from: "data", why: "no law was fitted" } };
    const good = law.converged && Number.isFinite(law.r2) && law.r2 >= minR2;
    if (mode === "auto" && !good)
      return {
        fn: data(),
        source: {
          from: "data",
          why: `${law.kind} R^2 ${Number.isFinite(law.r2) ? law.r2.toFixed(3) : "undefined"}${law.converged ? "" : ", not converged"} < ${minR2}`,
        },
      };
    return {
      fn: taskCurve(t, fits, "fit"),
      source: { from: "fit", law: law.kind, r2: law.r2, why: good ? `R^2 >= ${minR2}` : "fit requested" },
    };
  };
  const sa = sideOf(at);
  const sh = sideOf(ht);
  const source: RegimeReport["source"] = sa.source.from === sh.source.from ? sa.source.from : "mixed";
  const alignment = sa.fn;
  const helpfulness = sh.fn;
  // Search the aligning side only where both curves were measured and, for a side read from its law, only
  // where that law was fitted (no extrapolation past its range).
  const dir = alignmentDirection(alignment);
  const reach = (lo: number, hi: number) => (dir > 0 ? hi : -lo);
  const ext = (t: TaskSeries) =>
    reach(Math.min(...t.points.map((p) => p.r)), Math.max(...t.points.map((p) => p.r)));
  const lawExt = (side: { source: RegimeSource }, t: TaskSeries) => {
    const law = side.source.from === "fit" ? lawOf(t.id) : undefined;
    return law ? reach(law.range[0], law.range[1]) : Number.POSITIVE_INFINITY;
  };
  const rMax = Math.min(ext(at), ext(ht), lawExt(sa, at), lawExt(sh, ht));
  if (!(rMax > 0)) return undefined;
  const result = efficientRegime(
    { alignment, helpfulness, rMax, direction: dir },
    { budget: ro.budget ?? 0.02, lambda: ro.lambda ?? 1 },
  );
  return {
    alignmentTask: at.id,
    helpfulnessTask: ht.id,
    source,
    sources: { alignment: sa.source, helpfulness: sh.source },
    minR2,
    result,
  };
}

/** Fits and regime for sweep data (pure; no files). */
export function buildReport(d: SweepData, o: BuildOptions = {}): SweepReport {
  const fits = d.tasks.map((t) => fitTask(t, o));
  const regime = regimeOf(d, fits, o);
  return { ...d, fits, ...(regime ? { regime } : {}), version: 1 };
}
