/**
 * Plain-data outputs of a report: JSON (the whole SweepReport) and two CSV tables (metric points, fit
 * parameters), plus `writeReport`, which writes those and the HTML into one folder.
 */
import { join } from "node:path";
import { makeDir, writeFileAtomic } from "../io/write-atomic.js";
import { renderHtml } from "./html.js";
import type { SweepReport } from "./types.js";

/** The report as JSON; non-finite numbers become null (JSON has no NaN). */
export function toJson(r: SweepReport): string {
  return JSON.stringify(r, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v), 2);
}

/** One CSV cell: quoted when it holds a comma, quote or line break. */
export function csvCell(v: unknown): string {
  if (v === undefined || v === null) return "";
  if (typeof v === "number") return Number.isFinite(v) ? String(v) : "";
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function table(header: readonly string[], rows: readonly (readonly unknown[])[]): string {
  return `${[header, ...rows].map((r) => r.map(csvCell).join(",")).join("\n")}\n`;
}

/** Long-form metric table: task, kind, r_e, mean, std, se, n, unclear. */
export function pointsCsv(r: SweepReport): string {
  const rows = r.tasks.flatMap((t) =>
    t.points.map((p) => [t.id, t.kind, p.r, p.mean, p.std, p.se, p.n, p.unclear]),
  );
  return table(["task", "kind", "r_e", "mean", "std", "se", "n", "unclear"], rows);
}

/** Fit table: one row per parameter of every fit. */
export function fitsCsv(r: SweepReport): string {
  const rows = r.fits.flatMap((f) =>
    [...(f.law ? [f.law] : []), ...f.local].flatMap((fit) =>
      fit.names.map((name, i) => [
        f.taskId,
        fit.kind,
        name,
        fit.values[i],
        fit.se[i],
        fit.ci[i]![0],
        fit.ci[i]![1],
        fit.confidence,
        fit.r2,
        fit.n,
        fit.range[0],
        fit.range[1],
        fit.weighted,
      ]),
    ),
  );
  return table(
    [
      "task",
      "law",
      "param",
      "value",
      "se",
      "ci_lo",
      "ci_hi",
      "confidence",
      "r2",
      "n",
      "r_min",
      "r_max",
      "weighted",
    ],
    rows,
  );
}

export interface WrittenReport {
  readonly json: string;
  readonly pointsCsv: string;
  readonly fitsCsv: string;
  readonly html: string;
}

/**
 * Write report.json, points.csv, fits.csv and report.html into `dir` (created if needed), each atomically: a
 * failure (disk full, ...) is an "io" error naming the file and leaves any earlier version of it whole.
 */
export async function writeReport(r: SweepReport, dir: string, basename = "report"): Promise<WrittenReport> {
  makeDir(dir);
  const out: WrittenReport = {
    json: join(dir, `${basename}.json`),
    pointsCsv: join(dir, `${basename}-points.csv`),
    fitsCsv: join(dir, `${basename}-fits.csv`),
    html: join(dir, `${basename}.html`),
  };
  writeFileAtomic(out.json, toJson(r));
  writeFileAtomic(out.pointsCsv, pointsCsv(r));
  writeFileAtomic(out.fitsCsv, fitsCsv(r));
  writeFileAtomic(out.html, renderHtml(r));
  return out;
}
