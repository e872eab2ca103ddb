/**
 * From stored sweep records to the report's SweepData: one metric series per (task, variant) and kind, each
 * point the mean over items at one r_e with std, standard error, n (and unclear answers for behaviour), plus
 * the assumption diagnostics (A1 and A3 from the first mcq task, A2 from the first logprob task).
 *   behavior-generate  -> <task>              behaviour B (unclear counted as 0, and reported)
 *   behavior-logprob   -> <task>              behaviour B from the sign of the margin
 *                         <task>-soft         2 sigmoid(margin) - 1, smooth in r_e
 *   cloze              -> <task>              P(answer) over the full vocabulary
 *                         <task>-acc          accuracy (the answer's first token is the argmax)
 *   mcq                -> <task>              P(correct) over the full vocabulary
 *                         <task>-ad           P(correct | A-D)
 *                         <task>-acc          accuracy
 */
import type { Diagnostics, Metadata, MetricPoint, SweepData, TaskSeries } from "../report/types.js";
import type { CurveKind } from "../theory/curves.js";
import { aggregateBehavior, summarize } from "./score-aggregate.js";
import {
  type AtR,
  diagnoseA1,
  diagnoseA2,
  diagnoseA2Margin,
  diagnoseA3,
  diagnosticsRange,
} from "./score-diagnostics.js";
import { type SweepRecord, uniqueRecords } from "./store.js";

export interface AggregateOptions {
  title?: string;
  metadata?: Metadata;
  /** Task id -> title. */
  titles?: Readonly<Record<string, string>>;
  /** r range of the diagnostics' fits (default diagnosticsRange of the grid: 5, or 4 steps of a coarser grid). */
  diagnosticsRMax?: number;
}

/** Group records by a key, keeping first-seen order. */
function groupBy<T>(xs: readonly T[], key: (x: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const x of xs) {
    const k = key(x);
    const g = m.get(k);
    if (g) g.push(x);
    else m.set(k, [x]);
  }
  return m;
}

function byR(recs: readonly SweepRecord[]): [number, SweepRecord[]][] {
  return [...groupBy(recs, (r) => String(r.r)).entries()]
    .map(([r, g]) => [Number(r), g] as [number, SweepRecord[]])
    .sort((a, b) => a[0] - b[0]);
}

function series(
  id: string,
  title: string,
  kind: CurveKind,
  recs: readonly SweepRecord[],
  value: (r: SweepRecord) => number,
): TaskSeries {
  const points: MetricPoint[] = byR(recs).map(([r, g]) => ({ r, ...summarize(g.map(value)) }));
  return { id, title, kind, points };
}

function behaviorSeries(id: string, title: string, recs: readonly SweepRecord[]): TaskSeries {
  const points: MetricPoint[] = byR(recs).map(([r, g]) => {
    const b = aggregateBehavior(g.map((x) => x.score));
    return { r, mean: b.mean, std: b.std, se: b.se, n: b.n, unclear: b.unclear };
  });
  return { id, title, kind: "behavior", points };
}

function atR(recs: readonly SweepRecord[], values: (r: SweepRecord) => readonly number[]): AtR[] {
  return byR(recs).map(([r, g]) => ({ r, values: g.flatMap((x) => values(x)) }));
}

/** SweepData of a run's records. */
export function aggregateRecords(all: readonly SweepRecord[], o: AggregateOptions = {}): SweepData {
  const records = uniqueRecords(all); // a cell stored twice counts once
  const groups = groupBy(records, (r) => `${r.task}\u0000${r.variant}`);
  const variants = new Set(records.map((r) => r.variant));
  const tasks: TaskSeries[] = [];
  let diagnostics: Diagnostics = {};
  const rMax = o.diagnosticsRMax ?? diagnosticsRange(records.map((r) => r.r));
  for (const recs of groups.values()) {
    const { task, variant, kind } = recs[0]!;
    const id = variants.size > 1 ? `${task}@${variant}` : task;
    const title = `${o.titles?.[task] ?? task}${variants.size > 1 ? ` (${variant})` : ""}`;
    if (kind === "behavior-generate") tasks.push(behaviorSeries(id, title, recs));
    else if (kind === "cloze") {
      tasks.push(series(id, `${title}: P(answer)`, "helpfulness-full", recs, (r) => r.pFull ?? Number.NaN));
      tasks.push(series(`${id}-acc`, `${title}: accuracy`, "generic", recs, (r) => r.score));
    } else if (kind === "behavior-logprob") {
      tasks.push(behaviorSeries(id, `${title}: sign of log-prob margin`, recs));
      tasks.push(
        series(
          `${id}-soft`,
          `${title}: 2 sigmoid(margin) - 1`,
          "behavior",
          recs,
          (r) => r.soft ?? Number.NaN,
        ),
      );
      if (!diagnostics.a2Margin) {
        // A2: each prompt's good-minus-bad logit relative to the same prompt unsteered (needs r_e = 0)
        const zero = new Map(recs.filter((r) => r.r === 0).map((r) => [r.item, r.goodBad]));
        const shifted = recs.filter((r) => r.goodBad !== undefined && zero.get(r.item) !== undefined);
        diagnostics = {
          ...diagnostics,
          a2Margin: diagnoseA2Margin(
            atR(recs, (r) => [r.margin ?? Number.NaN]),
            rMax,
          ),
          ...(shifted.length
            ? {
                a2: diagnoseA2(
                  atR(shifted, (r) => [r.goodBad! - zero.get(r.item)!]),
                  rMax,
                ),
              }
            : {}),
        };
      }
    } else {
      tasks.push(series(id, `${title}: P(correct)`, "helpfulness-full", recs, (r) => r.pFull ?? Number.NaN));
      tasks.push(
        series(
          `${id}-ad`,
          `${title}: P(correct | A-D)`,
          "helpfulness-ad",
          recs,
          (r) => r.pRelative ?? Number.NaN,
        ),
      );
      tasks.push(series(`${id}-acc`, `${title}: accuracy`, "generic", recs, (r) => r.score));
      if (!diagnostics.a1 && recs.every((r) => r.dNorm !== undefined)) {
        diagnostics = {
          ...diagnostics,
          a1: diagnoseA1(
            atR(recs, (r) => [r.dNorm!]),
            rMax,
          ),
          // at r_e = 0 every X_i is exactly 0: the normality tests are meaningless there
          a3: diagnoseA3(
            atR(
              recs.filter((r) => r.r !== 0 && (r.a3?.length ?? 0) > 0),
              (r) => r.a3!,
            ),
            rMax,
          ),
        };
      }
    }
  }
  const rGrid = [...new Set(records.map((r) => r.r))].sort((a, b) => a - b);
  return {
    title: o.title ?? "steerlab sweep",
    metadata: { ...o.metadata, records: records.length },
    rGrid,
    tasks,
    ...(Object.keys(diagnostics).length ? { diagnostics } : {}),
  };
}
