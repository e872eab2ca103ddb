/**
 * SVG charts rendered on the server by Apache ECharts (SSR, SVG renderer; no browser, no DOM).
 * Each xChart function takes report data and returns one self-contained <svg> string; its xOption twin returns
 * the ECharts option and size, which the web lab (web/) draws live in the browser: one chart definition for both.
 */
import * as echarts from "echarts";
import type { A2Diagnostic, A3Diagnostic, LinearDiagnostic } from "../eval/score-diagnostics.js";
import { type LawFit, predict } from "../theory/laws.js";
import type { FrontierPoint } from "../theory/regime.js";
import type { MetricPoint, RegimeReport, TaskFits, TaskSeries } from "./types.js";

export const PALETTE = [
  "#2563eb",
  "#dc2626",
  "#059669",
  "#d97706",
  "#7c3aed",
  "#0891b2",
  "#be185d",
  "#4b5563",
];

export interface ChartSize {
  width?: number;
  height?: number;
}

// biome-ignore lint/suspicious/noExplicitAny: ECharts' option type is a deep union; series are built as plain objects.
type Series = Record<string, any>;

/** An ECharts option and the size it was laid out for. */
export interface ChartSpec {
  option: Record<string, unknown>;
  size: ChartSize;
}

/** Render an option to an SVG string (one chart instance per call, disposed at once). */
export function renderSvg(option: Record<string, unknown>, size: ChartSize = {}): string {
  const chart = echarts.init(null, null, {
    renderer: "svg",
    ssr: true,
    width: size.width ?? 760,
    height: size.height ?? 380,
  });
  try {
    chart.setOption({
      animation: false,
      backgroundColor: "#ffffff",
      textStyle: { fontFamily: "sans-serif" },
      ...option,
    });
    return chart.renderToSVGString();
  } finally {
    chart.dispose();
  }
}

/** Error bars mean +- se at the points that have a standard error (none drawn where it is unknown or 0). */
function errorBarSeries(name: string, pts: readonly MetricPoint[], color: string): Series | null {
  const ok = pts.filter((p) => Number.isFinite(p.se) && p.se > 0);
  if (ok.length === 0) return null;
  return {
    name,
    type: "custom",
    silent: true,
    z: 2,
    data: ok.map((p) => [p.r, p.mean - p.se, p.mean + p.se]),
    renderItem: (
      _params: unknown,
      api: { value: (i: number) => number; coord: (v: number[]) => number[] },
    ) => {
      const lo = api.coord([api.value(0), api.value(1)]);
      const hi = api.coord([api.value(0), api.value(2)]);
      const w = 3;
      const line = (x1: number, y1: number, x2: number, y2: number) => ({
        type: "line",
        shape: { x1, y1, x2, y2 },
        style: { stroke: color, lineWidth: 1 },
      });
      return {
        type: "group",
        children: [
          line(lo[0]!, lo[1]!, hi[0]!, hi[1]!),
          line(lo[0]! - w, lo[1]!, lo[0]! + w, lo[1]!),
          line(hi[0]! - w, hi[1]!, hi[0]! + w, hi[1]!),
        ],
      };
    },
  };
}

function curveData(fit: LawFit, lo: number, hi: number, n = 200): number[][] {
  return Array.from({ length: n + 1 }, (_, i) => {
    const r = lo + ((hi - lo) * i) / n;
    return [r, predict(fit, r)];
  });
}

const LAW_NAMES: Record<string, string> = {
  tanh: "tanh fit",
  "corollary-full": "Corollary-1 fit",
  "corollary-ad": "Corollary-1 fit",
  poly1: "linear near 0",
  poly2: "quadratic near 0",
};

/** How many rows a plain legend needs for these names at font size 10 within `width` pixels. */
export function legendRowCount(names: readonly string[], width: number): number {
  let rows = names.length ? 1 : 0;
  let x = 0;
  for (const n of names) {
    const w = 14 + 5 + 6 * n.length + 14; // icon, padding, text, gap
    if (x > 0 && x + w > width) {
      rows++;
      x = 0;
    }
    x += w;
  }
  return rows;
}

/** Legend entries: every series but the drawn-only ones (error bars). */
function legendNames(series: readonly Series[]): string[] {
  return series.filter((x) => x.type !== "custom").map((x) => x.name as string);
}

/** A legend under the plot with the rows it needs, and the grid's bottom margin to match. */
function legendFor(series: readonly Series[], size?: ChartSize): Record<string, unknown> {
  const names = legendNames(series);
  const rows = legendRowCount(names, (size?.width ?? 760) - 40);
  return {
    legend: { type: "plain", data: names, bottom: 0, left: 20, right: 20, textStyle: { fontSize: 10 } },
    grid: { left: 60, right: 24, top: 40, bottom: 44 + 18 * rows },
  };
}

/** Short legend label of a fit (its parameters are in the report's fit table). */
function fitLabel(f: LawFit): string {
  return `${LAW_NAMES[f.kind] ?? f.kind} (R²=${Number.isFinite(f.r2) ? f.r2.toFixed(3) : "–"})`;
}

function markLines(regime: RegimeReport | undefined): Series | undefined {
  if (!regime) return undefined;
  const data: Series[] = [
    { xAxis: regime.result.tradeoff.r, name: `r* = ${regime.result.tradeoff.r.toFixed(2)}` },
  ];
  if (regime.result.withinBudget) {
    data.push({
      xAxis: regime.result.withinBudget.r,
      name: `budget r = ${regime.result.withinBudget.r.toFixed(2)}`,
      lineStyle: { type: "dotted", color: "#6b7280" },
    });
  }
  return {
    silent: true,
    symbol: "none",
    label: { formatter: "{b}", position: "insideEndTop", fontSize: 10 },
    lineStyle: { color: "#111827", type: "dashed" },
    data,
  };
}

/**
 * Metric against r_e for one panel (one model's tasks of one kind, the paper's figure layout): points with
 * ±1 se error bars, the global law over its fit range and the local fit near 0; the efficient r* and budget
 * lines only on the series of the regime's own tasks.
 */
export function metricChart(
  title: string,
  yName: string,
  tasks: readonly TaskSeries[],
  fits: readonly TaskFits[],
  regime?: RegimeReport,
  size?: ChartSize,
  o: { xName?: string; stripPrefix?: string } = {},
): string {
  const c = metricOption(title, yName, tasks, fits, regime, size, o);
  return renderSvg(c.option, c.size);
}

export function metricOption(
  title: string,
  yName: string,
  tasks: readonly TaskSeries[],
  fits: readonly TaskFits[],
  regime?: RegimeReport,
  size?: ChartSize,
  o: { xName?: string; stripPrefix?: string } = {},
): ChartSpec {
  const series: Series[] = [];
  const name = (t: TaskSeries) =>
    o.stripPrefix && t.title.startsWith(o.stripPrefix) ? t.title.slice(o.stripPrefix.length) : t.title;
  tasks.forEach((t, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    const bars = errorBarSeries(`${name(t)} ±1 se`, t.points, color);
    if (bars) series.push(bars);
    const mine = regime && (t.id === regime.alignmentTask || t.id === regime.helpfulnessTask);
    series.push({
      name: name(t),
      type: "line",
      data: t.points.map((p) => [p.r, p.mean]),
      symbolSize: 5,
      lineStyle: { width: 1, opacity: 0.35 },
      itemStyle: { color },
      z: 3,
      ...(mine && markLines(regime) ? { markLine: markLines(regime) } : {}),
    });
    const f = fits.find((x) => x.taskId === t.id);
    if (f?.law) {
      series.push({
        name: `${name(t)} · ${fitLabel(f.law)}`,
        type: "line",
        showSymbol: false,
        data: curveData(f.law, f.law.range[0], f.law.range[1]),
        lineStyle: { width: 2, color },
        itemStyle: { color },
        z: 4,
      });
    }
    for (const l of f?.local ?? []) {
      series.push({
        name: `${name(t)} · ${fitLabel(l)}`,
        type: "line",
        showSymbol: false,
        data: curveData(l, l.range[0], l.range[1], 60),
        lineStyle: { width: 2, type: "dashed", color },
        itemStyle: { color },
        z: 4,
      });
    }
  });
  // Error bars stay out of the legend. Rows are packed by estimated text width (~6 px per character at font
  // size 10, plus the icon and gap), so long names never spill over the plot.
  const legendNames = series.filter((x) => x.type !== "custom").map((x) => x.name as string);
  const legendRows = legendRowCount(legendNames, (size?.width ?? 760) - 40);
  return {
    option: {
      title: { text: title, left: "center", textStyle: { fontSize: 14 } },
      legend: {
        type: "plain",
        data: legendNames,
        bottom: 0,
        left: 20,
        right: 20,
        textStyle: { fontSize: 10 },
        itemWidth: 14,
        itemHeight: 8,
        itemGap: 14,
      },
      grid: { left: 60, right: 24, top: 40, bottom: 50 + 18 * legendRows },
      xAxis: {
        type: "value",
        name: o.xName ?? "r_e",
        nameLocation: "middle",
        nameGap: 22,
        splitLine: { show: false },
      },
      yAxis: { type: "value", name: yName, nameLocation: "middle", nameGap: 42, scale: true },
      series,
    },
    size: { height: 360 + 18 * legendRows, ...size },
  };
}

/** Alignment gain against helpfulness loss along r_e on the aligning side; Pareto points and chosen r_e marked. */
export function frontierChart(regime: RegimeReport, size?: ChartSize): string {
  const c = frontierOption(regime, size);
  return renderSvg(c.option, c.size);
}

export function frontierOption(regime: RegimeReport, size?: ChartSize): ChartSpec {
  const pts: readonly FrontierPoint[] = regime.result.frontier;
  const chosen = regime.result.tradeoff;
  const budget = regime.result.withinBudget;
  const series: Series[] = [
    {
      name: "frontier (along r_e)",
      type: "line",
      showSymbol: false,
      data: pts.map((p) => [p.loss, p.gain, p.r]),
      lineStyle: { color: PALETTE[0] },
      itemStyle: { color: PALETTE[0] },
    },
    {
      name: "Pareto-optimal",
      type: "scatter",
      symbolSize: 4,
      data: pts.filter((p) => p.pareto).map((p) => [p.loss, p.gain, p.r]),
      itemStyle: { color: PALETTE[2] },
    },
    {
      name: `efficient r_e = ${chosen.r.toFixed(2)} (λ=${regime.result.lambda})`,
      type: "scatter",
      symbol: "diamond",
      symbolSize: 14,
      data: [[chosen.loss, chosen.gain, chosen.r]],
      itemStyle: { color: PALETTE[1] },
      z: 5,
    },
  ];
  if (budget) {
    series.push({
      name: `budget ${regime.result.budget}: r_e = ${budget.r.toFixed(2)}`,
      type: "scatter",
      symbol: "triangle",
      symbolSize: 12,
      data: [[budget.loss, budget.gain, budget.r]],
      itemStyle: { color: PALETTE[3] },
      z: 5,
    });
  }
  return {
    option: {
      title: {
        text: `Alignment-helpfulness frontier (${regime.alignmentTask} vs ${regime.helpfulnessTask}, ${regime.source})`,
        left: "center",
        textStyle: { fontSize: 13 },
      },
      legend: { bottom: 0, textStyle: { fontSize: 10 } },
      grid: { left: 60, right: 24, top: 40, bottom: 60 },
      xAxis: {
        type: "value",
        name: "helpfulness loss H(0) - H(r_e)",
        nameLocation: "middle",
        nameGap: 22,
        scale: true,
      },
      yAxis: {
        type: "value",
        name: "alignment gain B(r_e) - B(0)",
        nameLocation: "middle",
        nameGap: 42,
        scale: true,
      },
      series,
    },
    size: size ?? {},
  };
}

/** A diagnostic: mean per r_e (with se band) and its linear fit (against |r_e| when `absX`). */
export function diagnosticChart(
  title: string,
  yName: string,
  d: LinearDiagnostic | A3Diagnostic,
  absX: boolean,
  size?: ChartSize,
): string {
  const isA3 = "stdFit" in d;
  const pts: MetricPoint[] = d.rows.map((r) =>
    isA3 ? { r: r.r, mean: r.std, std: Number.NaN, se: Number.NaN, n: r.n } : r,
  );
  const fit = isA3 ? d.stdFit : d.fit;
  const series: Series[] = [];
  const band = isA3 ? null : errorBarSeries("±1 se", pts, PALETTE[0]!);
  if (band) series.push(band);
  series.push({
    name: isA3 ? "std of X_i" : "mean",
    type: "line",
    data: pts.map((p) => [p.r, p.mean]),
    symbolSize: 5,
    itemStyle: { color: PALETTE[0] },
    lineStyle: { width: 1 },
  });
  if (fit) {
    const rs = d.rows.map((r) => r.r).filter((r) => Math.abs(r) <= d.rMax + 1e-12);
    const lo = Math.min(...rs);
    const hi = Math.max(...rs);
    const data = Array.from({ length: 201 }, (_, i) => {
      const r = lo + ((hi - lo) * i) / 200;
      return [r, predict(fit, absX ? Math.abs(r) : r)];
    });
    series.push({
      name: `linear fit in ${absX ? "|r_e|" : "r_e"} (slope ${fit.values[1]!.toPrecision(3)}, R²=${fit.r2.toFixed(3)})`,
      type: "line",
      showSymbol: false,
      data,
      lineStyle: { width: 2, type: "dashed", color: PALETTE[1] },
      itemStyle: { color: PALETTE[1] },
    });
  }
  // A1: the paper's fits per sign, each over its own half of the range
  for (const [f, name, color] of [
    [isA3 ? null : d.fitPos, "r_e ≥ 0", PALETTE[2]],
    [isA3 ? null : d.fitNeg, "r_e ≤ 0", PALETTE[3]],
  ] as const) {
    if (!f) continue;
    series.push({
      name: `linear fit on ${name} (slope ${f.values[1]!.toPrecision(3)}, R²=${Number.isFinite(f.r2) ? f.r2.toFixed(3) : "–"})`,
      type: "line",
      showSymbol: false,
      data: [f.range[0], f.range[1]].map((r) => [r, predict(f, r)]),
      lineStyle: { width: 2, color },
      itemStyle: { color },
    });
  }
  return renderSvg(
    {
      title: { text: title, left: "center", textStyle: { fontSize: 13 } },
      ...legendFor(series, size),
      xAxis: { type: "value", name: "r_e", nameLocation: "middle", nameGap: 22 },
      yAxis: { type: "value", name: yName, nameLocation: "middle", nameGap: 42, scale: true },
      series,
    },
    { height: 300 + 18 * legendRowCount(legendNames(series), (size?.width ?? 760) - 40), ...size },
  );
}

/** A2 the paper's way: mean good-minus-bad logit shift per r_e and the lower-bound line Delta r_e on r_e >= 0. */
export function a2Chart(d: A2Diagnostic, size?: ChartSize): string {
  const series: Series[] = [];
  const band = errorBarSeries("±1 se", d.rows, PALETTE[4]!);
  if (band) series.push(band);
  series.push({
    name: "mean shift over prompts",
    type: "scatter",
    symbolSize: 6,
    data: d.rows.map((p) => [p.r, p.mean]),
    itemStyle: { color: PALETTE[4] },
  });
  if (d.slope !== null) {
    const hi = Math.max(...d.rows.map((r) => r.r).filter((r) => r <= d.rMax + 1e-12));
    series.push({
      name: `lower bound Δ·r_e, Δ = ${d.slope.toPrecision(3)}`,
      type: "line",
      showSymbol: false,
      data: [
        [0, 0],
        [hi, d.slope * hi],
      ],
      lineStyle: { width: 2, color: PALETTE[1] },
      itemStyle: { color: PALETTE[1] },
    });
  }
  return renderSvg(
    {
      title: {
        text: "A2: ⟨U δ(r_e), e_good − e_bad⟩ (next-token logits, relative to r_e = 0)",
        left: "center",
        textStyle: { fontSize: 13 },
      },
      ...legendFor(series, size),
      xAxis: { type: "value", name: "r_e", nameLocation: "middle", nameGap: 22 },
      yAxis: { type: "value", name: "logit shift", nameLocation: "middle", nameGap: 42, scale: true },
      series,
    },
    { height: 300 + 18 * legendRowCount(legendNames(series), (size?.width ?? 760) - 40), ...size },
  );
}

/** A3 normality: Shapiro-Wilk -log10 p per r_e (linear axis: 1 = p 0.1, 2 = p 0.01, ...), the p = 0.05 line. */
export function normalityChart(d: A3Diagnostic, size?: ChartSize): string {
  const data = d.rows
    .filter((r) => r.shapiroWilk && r.shapiroWilk.statistic < 1)
    .map((r) => [r.r, -Math.log10(Math.max(r.shapiroWilk!.pValue, 1e-300))]);
  return renderSvg(
    {
      title: {
        text: "A3: Shapiro-Wilk test of X_i per r_e (higher = less Gaussian)",
        left: "center",
        textStyle: { fontSize: 13 },
      },
      grid: { left: 60, right: 24, top: 40, bottom: 40 },
      xAxis: { type: "value", name: "r_e", nameLocation: "middle", nameGap: 22 },
      yAxis: { type: "value", name: "−log10 p", nameLocation: "middle", nameGap: 42, min: 0 },
      series: [
        {
          name: "-log10 p",
          type: "scatter",
          data,
          itemStyle: { color: PALETTE[4] },
          markLine: {
            silent: true,
            symbol: "none",
            data: [{ yAxis: -Math.log10(0.05), name: "p = 0.05" }],
            label: { formatter: "p = 0.05", position: "insideEndTop" },
            lineStyle: { color: "#6b7280", type: "dashed" },
          },
        },
      ],
    },
    { height: 300, ...size },
  );
}
