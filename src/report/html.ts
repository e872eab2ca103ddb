/**
 * One self-contained HTML report (no scripts, no external files): metadata, the efficient regime, a chart
 * per task group (behaviour, helpfulness) with fits and se bands, the frontier, the diagnostics, fit tables.
 */
import type { LawFit } from "../theory/laws.js";
import { a2Chart, diagnosticChart, frontierChart, metricChart, normalityChart } from "./charts.js";
import type { RegimeReport, SweepReport, TaskSeries } from "./types.js";

export function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!,
  );
}

const fmt = (v: number, p = 4) => (Number.isFinite(v) ? v.toPrecision(p) : "–");

function figure(id: string, caption: string, svg: string): string {
  return `<figure class="chart" id="${id}">${svg}<figcaption>${escapeHtml(caption)}</figcaption></figure>`;
}

function fitRows(taskTitle: string, f: LawFit): string {
  return f.names
    .map(
      (n, i) =>
        `<tr><td>${escapeHtml(taskTitle)}</td><td>${f.kind}</td><td>${n}</td><td>${fmt(f.values[i]!)}</td><td>${fmt(f.se[i]!, 3)}</td>` +
        `<td>[${fmt(f.ci[i]![0])}, ${fmt(f.ci[i]![1])}]</td><td>${fmt(f.r2)}</td><td>${f.n}</td><td>[${fmt(f.range[0], 3)}, ${fmt(f.range[1], 3)}]</td></tr>`,
    )
    .join("");
}

/** The model a series belongs to: the prefix of "<model>/<task>" ids (an experiment), else "". */
export function modelOf(id: string): string {
  const i = id.indexOf("/");
  return i > 0 ? id.slice(0, i) : "";
}

/**
 * Chart panels: one per model and metric kind (the paper's figure layout: one model's curves with their
 * fitted laws per panel), behaviour first, then helpfulness over the full vocabulary and over A-D.
 */
export function chartGroups(
  tasks: readonly TaskSeries[],
): { key: string; title: string; y: string; model: string; tasks: TaskSeries[] }[] {
  const kinds = [
    { kind: "behavior", key: "behavior", title: "Behaviour (alignment) against r_e", y: "B = mean score" },
    {
      kind: "helpfulness-full",
      key: "helpfulness-full",
      title: "Helpfulness: P(correct letter), full vocabulary",
      y: "P(correct)",
    },
    {
      kind: "helpfulness-ad",
      key: "helpfulness-ad",
      title: "Helpfulness: P(correct | A-D), chance 0.25",
      y: "P(correct | A-D)",
    },
    { kind: "generic", key: "generic", title: "Other metrics", y: "value" },
  ] as const;
  const models = [...new Set(tasks.map((t) => modelOf(t.id)))];
  const out = [];
  for (const model of models)
    for (const k of kinds) {
      const ts = tasks.filter((t) => modelOf(t.id) === model && t.kind === k.kind);
      if (ts.length === 0) continue;
      out.push({
        key: model ? `${k.key}-${model}` : k.key,
        title: model ? `${model}: ${k.title}` : k.title,
        y: k.y,
        model,
        tasks: ts,
      });
    }
  return out;
}

/** "alignment from tanh fit (R^2 0.97), helpfulness from the data (corollary-full R^2 0.48 < 0.9)". */
export function regimeSourceText(reg: RegimeReport): string {
  if (!reg.sources) return reg.source === "fit" ? "fitted laws" : "interpolated data";
  const side = (name: string, s: NonNullable<RegimeReport["sources"]>["alignment"]) =>
    s.from === "fit"
      ? `${name} from its ${s.law} fit (R^2 ${s.r2?.toFixed(3)})`
      : `${name} from the interpolated data (${s.why})`;
  return `${side("alignment", reg.sources.alignment)}; ${side("helpfulness", reg.sources.helpfulness)}`;
}

/** The whole report as one HTML document. */
export function renderHtml(r: SweepReport): string {
  const parts: string[] = [];
  const meta = Object.entries(r.metadata)
    .map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(String(v))}</td></tr>`)
    .join("");
  parts.push(`<h1>${escapeHtml(r.title)}</h1><table class="meta">${meta}</table>`);
  if (r.warnings?.length)
    parts.push(
      `<section id="warnings" style="border:2px solid #b45309;background:#fffbeb;padding:4px 12px"><h2>Warnings</h2><ul>${r.warnings.map((w) => `<li>${escapeHtml(w)}</li>`).join("")}</ul></section>`,
    );
  const reg = r.regime;
  if (reg) {
    const x = reg.result;
    const wb = x.withinBudget;
    parts.push(
      `<section id="regime"><h2>Efficient regime</h2><p>Alignment from <b>${escapeHtml(reg.alignmentTask)}</b>, helpfulness from <b>${escapeHtml(reg.helpfulnessTask)}</b> ` +
        `(${regimeSourceText(reg)}); aligning side r_e ${x.direction > 0 ? "&gt; 0" : "&lt; 0"}; baseline B(0) = ${fmt(x.baseline.alignment)}, H(0) = ${fmt(x.baseline.helpfulness)}.</p><ul>` +
        `<li>Best trade-off (maximises gain − ${x.lambda} × loss): <b>r_e = ${fmt(x.tradeoff.r, 3)}</b>, gain ${fmt(x.tradeoff.gain)}, loss ${fmt(x.tradeoff.loss)}.</li>` +
        `<li>Largest |r_e| with helpfulness loss ≤ ${x.budget}: ${wb ? `<b>r_e = ${fmt(wb.r, 3)}</b>, gain ${fmt(wb.gain)}, loss ${fmt(wb.loss)}` : "none (the first step already exceeds the budget)"}.</li></ul></section>`,
    );
  }
  for (const g of chartGroups(r.tasks)) {
    // relative r_e: each model's panels name their own unit
    const norm = r.metadata[`residNorm ${g.model}`] ?? r.metadata.residNorm;
    const xName = typeof norm === "number" ? `r_e / ||h||  (× ${norm.toPrecision(4)} = absolute r_e)` : "r_e";
    const svg = metricChart(g.title, g.y, g.tasks, r.fits, reg, undefined, {
      xName,
      ...(g.model ? { stripPrefix: `${g.model}: ` } : {}),
    });
    const marks =
      reg && g.tasks.some((t) => t.id === reg.alignmentTask || t.id === reg.helpfulnessTask)
        ? " Vertical lines: the efficient r* and the largest r_e within the helpfulness budget (this model's regime)."
        : "";
    parts.push(
      figure(
        `chart-${g.key}`,
        `${g.title}. Points: mean over prompts with ±1 standard error bars; solid: the global law over its fit range; dashed: the local fit near r_e = 0.${marks}`,
        svg,
      ),
    );
  }
  if (reg)
    parts.push(
      figure("chart-frontier", "Frontier: each point is one r_e on the aligning side.", frontierChart(reg)),
    );
  const d = r.diagnostics;
  if (d?.a1)
    parts.push(
      figure(
        "chart-a1",
        "A1: the logit shift grows linearly in |r_e|.",
        diagnosticChart("A1: ||U δ(r_e)|| against r_e", "||Δ logits||", d.a1, true),
      ),
    );
  if (d?.a2)
    parts.push(
      figure(
        "chart-a2",
        `A2 (the paper's): next-token logit of the good tokens minus the bad ones, relative to r_e = 0, mean over prompts; the line is the lower bound Δ r_e, Δ = min(slope through the first 4 points at r_e ≥ 0, chord to the last point at r_e ≤ ${fmt(d.a2.rMax, 3)}).`,
        a2Chart(d.a2),
      ),
    );
  if (d?.a2Margin)
    parts.push(
      figure(
        "chart-a2-margin",
        "A2-margin (steerlab's stand-in): aligned-minus-misaligned log-prob margin of whole continuations, a line with intercept.",
        diagnosticChart("A2-margin: log-prob margin against r_e", "margin (nats)", d.a2Margin, false),
      ),
    );
  if (d?.a3) {
    parts.push(
      figure(
        "chart-a3",
        "A3: spread of X_i = <U δ, e_i − e_correct> over the top baseline tokens.",
        diagnosticChart("A3: std of X_i against r_e", "std(X_i)", d.a3, true),
      ),
    );
    parts.push(figure("chart-a3-normality", "A3: normality of X_i (Shapiro-Wilk).", normalityChart(d.a3)));
  }
  const title = (id: string) => r.tasks.find((t) => t.id === id)?.title ?? id;
  const rows = r.fits
    .flatMap((f) => [
      ...(f.law ? [fitRows(title(f.taskId), f.law)] : []),
      ...f.local.map((l) => fitRows(title(f.taskId), l)),
    ])
    .join("");
  const lawNotes = (f: LawFit) => [
    ...(f.converged ? [] : [`${f.kind} did not converge`]),
    ...(f.notes ?? []).map((n) => `${f.kind}: ${n}`),
  ];
  const notes = r.fits
    .flatMap((f) =>
      [...f.notes, ...[f.law, ...f.local].flatMap((l) => (l ? lawNotes(l) : []))].map(
        (n) => `<li>${escapeHtml(title(f.taskId))}: ${escapeHtml(n)}</li>`,
      ),
    )
    .join("");
  parts.push(
    `<section id="fits"><h2>Fits</h2><table class="fits"><thead><tr><th>task</th><th>law</th><th>param</th><th>value</th><th>se</th><th>95% CI</th><th>R²</th><th>n</th><th>r_e range</th></tr></thead><tbody>${rows}</tbody></table>${notes ? `<ul class="notes">${notes}</ul>` : ""}</section>`,
  );
  const css =
    "body{font-family:sans-serif;max-width:1000px;margin:24px auto;color:#111827;padding:0 12px}h1{font-size:22px}h2{font-size:17px;margin-top:28px}" +
    "table{border-collapse:collapse;font-size:12px;margin:8px 0}td,th{border:1px solid #e5e7eb;padding:3px 8px;text-align:left}th{background:#f9fafb}" +
    "figure.chart{margin:18px 0;border:1px solid #e5e7eb;padding:8px}figure.chart svg{display:block;margin:auto;max-width:100%;height:auto}figcaption{font-size:12px;color:#4b5563;margin-top:4px}";
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(r.title)}</title><style>${css}</style></head><body>${parts.join("\n")}<footer><p style="font-size:11px;color:#6b7280">steerlab report v${r.version}</p></footer></body></html>\n`;
}
