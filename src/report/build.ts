/**
 * From sweep data to a report: fit every task's curve with the laws of its kind and compute the efficient
 * regime between one alignment task and one helpfulness task.
 */
import { SteerlabError } from "../errors.js";
import { type CurveFitOptions, fitCurve } from "../theory/curves.js";
import { type LawFit, predict } from "../theory/laws.js";
import { efficientRegime, interpolate } from "../theory/regime.js";
import type { RegimeReport, SweepData, SweepReport, TaskFits, TaskSeries } from "./types.js";

export interface BuildOptions {
  /** Options of the curve fits (fit ranges, local half widths). */
  fit?: CurveFitOptions;
  /** Weight the fits by 1/se^2 when standard errors are known. Default false (plain least squares). */
  weighted?: boolean;
  regime?: {
    /** Task ids; defaults: the first behaviour task and the first full-vocabulary helpfulness task. */
    alignmentTask?: string;
    helpfulnessTask?: string;
    source?: "fit" | "data";
    /** Helpfulness loss allowed (absolute, in the metric's units). Default 0.02. */
    budget?: number;
    /** Weight of helpfulness loss against alignment gain. Default 1. */
    lambda?: number;
  };
}

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

function regimeOf(d: SweepData, fits: readonly TaskFits[], o: BuildOptions): RegimeReport | undefined {
  const ro = o.regime ?? {};
  const at = pickTask(d.tasks, ro.alignmentTask, ["behavior"], "alignment");
  const ht = pickTask(d.tasks, ro.helpfulnessTask, ["helpfulness-full", "helpfulness-ad"], "helpfulness");
  if (!at || !ht) return undefined;
  const source = ro.source ?? "fit";
  const lawOf = (id: string): LawFit | undefined => fits.find((f) => f.taskId === id)?.law;
  const fn = (t: TaskSeries) => {
    const law = lawOf(t.id);
    if (source === "fit" && law) return (r: number) => predict(law, r);
    return interpolate(
      t.points.map((p) => p.r),
      t.points.map((p) => p.mean),
    );
  };
  const alignment = fn(at);
  const helpfulness = fn(ht);
  // Search only where both curves were measured: 0 .. the smaller extent on either side.
  const ext = (t: TaskSeries) =>
    Math.min(Math.max(...t.points.map((p) => p.r)), -Math.min(...t.points.map((p) => p.r)));
  const rMax = Math.min(ext(at), ext(ht));
  if (!(rMax > 0)) return undefined;
  const result = efficientRegime(
    { alignment, helpfulness, rMax },
    { budget: ro.budget ?? 0.02, lambda: ro.lambda ?? 1 },
  );
  return { alignmentTask: at.id, helpfulnessTask: ht.id, source, result };
}

/** Fits and regime for sweep data (pure; no files). */
export function buildReport(d: SweepData, o: BuildOptions = {}): SweepReport {
  const fits = d.tasks.map((t) => fitTask(t, o));
  const regime = regimeOf(d, fits, o);
  return { ...d, fits, ...(regime ? { regime } : {}), version: 1 };
}
