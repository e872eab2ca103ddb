/**
 * Tradeoff explorer: open one or more sweep runs (one per model), see each task's curve with its fits and
 * ±1 se bands (the report's own chart definitions), the alignment-helpfulness frontier, and pick an r_e to read
 * off what it costs: alignment gain and helpfulness loss from the same curves the efficient regime uses.
 */
import { useEffect, useMemo, useState } from "preact/hooks";
import { configProblems, fitOptionsSchema } from "../../../src/eval/sweep-config-schema.js";
import { taskCurve } from "../../../src/report/build.js";
import { type ChartSpec, frontierOption, metricOption, PALETTE } from "../../../src/report/charts.js";
import { chartGroups } from "../../../src/report/html.js";
import type { SweepReport, TaskFits, TaskSeries } from "../../../src/report/types.js";
import type { RunSummary, RunView } from "../../../src/serve/lab/types.js";
import { api, gridStep, halfWidthsFor } from "../api.js";
import { Chart } from "../chart.js";
import { Field } from "../field.js";

const fmt = (v: number, p = 3) => (Number.isFinite(v) ? v.toPrecision(p) : "–");

/** The picked r_e as a vertical line on a metric chart. */
function withPick(spec: ChartSpec, r: number): ChartSpec {
  const series = [...((spec.option.series as unknown[]) ?? [])];
  series.push({
    name: "picked r_e",
    type: "line",
    data: [],
    markLine: {
      silent: true,
      symbol: "none",
      data: [{ xAxis: r, name: `picked r_e = ${r}` }],
      label: { formatter: "{b}", position: "insideEndBottom", fontSize: 10 },
      lineStyle: { color: "#f59e0b", width: 2 },
    },
  });
  return { ...spec, option: { ...spec.option, series } };
}

/** Several runs in one set of charts: series ids and titles prefixed with the run's model. */
function merged(
  views: readonly RunView[],
  names: readonly string[],
): { tasks: TaskSeries[]; fits: TaskFits[] } {
  if (views.length === 1) return { tasks: [...views[0]!.report.tasks], fits: [...views[0]!.report.fits] };
  return {
    tasks: views.flatMap((v, i) =>
      v.report.tasks.map((t) => ({ ...t, id: `${names[i]}/${t.id}`, title: `${names[i]}: ${t.title}` })),
    ),
    fits: views.flatMap((v, i) => v.report.fits.map((f) => ({ ...f, taskId: `${names[i]}/${f.taskId}` }))),
  };
}

export interface Cost {
  r: number;
  alignment: number;
  helpfulness: number;
  gain: number;
  loss: number;
}

/** What r_e costs on a run: the regime's alignment and helpfulness curves at r and at 0. */
export function costAt(report: SweepReport, r: number): Cost | null {
  const g = report.regime;
  if (!g) return null;
  const task = (id: string) => report.tasks.find((t) => t.id === id);
  const at = task(g.alignmentTask);
  const ht = task(g.helpfulnessTask);
  if (!at || !ht) return null;
  // each side from where the regime took it (a law that fits well, else the data)
  const both = g.source === "mixed" ? "fit" : g.source;
  const A = taskCurve(at, report.fits, g.sources?.alignment ?? both);
  const H = taskCurve(ht, report.fits, g.sources?.helpfulness ?? both);
  return { r, alignment: A(r), helpfulness: H(r), gain: A(r) - A(0), loss: H(0) - H(r) };
}

function frontierWithPick(view: RunView, cost: Cost | null): ChartSpec | null {
  const g = view.report.regime;
  if (!g) return null;
  const spec = frontierOption(g);
  if (!cost) return spec;
  const series = [...(spec.option.series as unknown[])];
  series.push({
    name: `picked r_e = ${cost.r}`,
    type: "scatter",
    symbol: "circle",
    symbolSize: 12,
    data: [[cost.loss, cost.gain, cost.r]],
    itemStyle: { color: "#f59e0b", borderColor: "#111827" },
    z: 6,
  });
  const title = spec.option.title as { text: string };
  return {
    ...spec,
    option: { ...spec.option, series, title: { ...title, text: `${view.id}: ${title.text}` } },
    size: { ...spec.size },
  };
}

export function Explorer() {
  const [runs, setRuns] = useState<RunSummary[] | null>(null);
  const [picked, setPicked] = useState<string[]>([]);
  const [views, setViews] = useState<RunView[]>([]);
  const [budget, setBudget] = useState(0.02);
  const [lambda, setLambda] = useState(1);
  const [r, setR] = useState(0);
  const [lhw, setLhw] = useState<number | null>(null);
  const [qhw, setQhw] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    api
      .runs()
      .then((rs) => {
        setRuns(rs);
        if (!rs.length) return;
        // Half widths that suit the grid, before the first fit (editable below).
        const h = halfWidthsFor(rs[0]!.coeffs);
        setLhw(h.linearHalfWidth);
        setQhw(h.quadraticHalfWidth);
        setPicked([rs[0]!.id]);
      })
      .catch((e: Error) => setError(e.message));
  }, []);
  useEffect(() => {
    if (!picked.length) return setViews([]);
    // The half widths as a config's `fit:` block, checked by the same schema before the server refits.
    const checked = fitOptionsSchema.safeParse(
      lhw !== null && qhw !== null ? { linearHalfWidth: lhw, quadraticHalfWidth: qhw } : {},
    );
    if (!checked.success) return setError(configProblems(checked.error, "fit").join("; "));
    const fit = checked.data;
    Promise.all(picked.map((id) => api.run(id, { budget, lambda, ...fit })))
      .then((vs) => {
        setViews(vs);
        setError(null);
      })
      .catch((e: Error) => setError(e.message));
  }, [picked.join("\n"), budget, lambda, lhw, qhw]);

  const names = views.map((v) => runs?.find((x) => x.id === v.id)?.model || v.id);
  const grid = useMemo(() => {
    const rs = views.flatMap((v) => v.report.rGrid);
    // A twentieth of the grid step: the slider lands on every grid point and between them.
    const step = gridStep(rs) / 20 || 0.01;
    return rs.length ? { lo: Math.min(...rs), hi: Math.max(...rs), step } : { lo: -1, hi: 1, step };
  }, [views]);
  const { tasks, fits } = merged(views, names);
  const regime = views.length === 1 ? views[0]!.report.regime : undefined;
  const costs = views.map((v) => costAt(v.report, r));

  const toggle = (id: string) => setPicked((p) => (p.includes(id) ? p.filter((x) => x !== id) : [...p, id]));

  return (
    <div class="view explorer">
      <aside>
        <h3>Sweep runs</h3>
        {runs === null && !error && <p>loading…</p>}
        {runs?.length === 0 && <p class="muted">No runs under the server's runs directory.</p>}
        <ul class="runs">
          {runs?.map((x) => (
            <li key={x.id}>
              <label>
                <input type="checkbox" checked={picked.includes(x.id)} onChange={() => toggle(x.id)} /> {x.id}{" "}
                <span class="muted">({x.records} records)</span>
              </label>
            </li>
          ))}
        </ul>
        <h3>Efficient regime</h3>
        <Field
          label="helpfulness budget"
          type="number"
          step="0.01"
          min="0.001"
          value={budget}
          on="change"
          set={(v) => setBudget(Number(v) || 0.02)}
        />
        <Field
          label="λ (loss weight)"
          type="number"
          step="0.1"
          min="0"
          value={lambda}
          on="change"
          set={(v) => setLambda(Number(v))}
        />
        <h3>Local fits near r_e = 0</h3>
        <Field
          label="linear half width"
          id="lhw"
          type="number"
          min="0.1"
          value={lhw ?? ""}
          on="change"
          set={(v) => setLhw(Number(v) || null)}
        />
        <Field
          label="quadratic half width"
          id="qhw"
          type="number"
          min="0.1"
          value={qhw ?? ""}
          on="change"
          set={(v) => setQhw(Number(v) || null)}
        />
        {views.flatMap((v) =>
          v.report.fits.flatMap((f) =>
            f.notes.map((n) => (
              <p class="error fit-note" key={`${v.id}/${f.taskId}`}>
                {v.id} {f.taskId}: {n}
              </p>
            )),
          ),
        )}
      </aside>
      <main>
        {error && <p class="error">{error}</p>}
        {views.length > 0 && (
          <section class="pick">
            <label>
              pick r_e: <b id="picked-r">{r}</b>{" "}
              <input
                id="r-slider"
                type="range"
                min={grid.lo}
                max={grid.hi}
                step={grid.step}
                value={r}
                onInput={(e) => setR(Number(Number((e.target as HTMLInputElement).value).toPrecision(3)))}
              />
            </label>
            <table class="cost" id="cost-table">
              <thead>
                <tr>
                  <th>run</th>
                  <th>alignment task</th>
                  <th>B(r_e)</th>
                  <th>gain B(r_e) − B(0)</th>
                  <th>helpfulness task</th>
                  <th>H(r_e)</th>
                  <th>loss H(0) − H(r_e)</th>
                  <th>from</th>
                  <th>efficient r_e (λ)</th>
                  <th>r_e within budget</th>
                </tr>
              </thead>
              <tbody>
                {views.map((v, i) => {
                  const c = costs[i];
                  const g = v.report.regime;
                  return (
                    <tr key={v.id}>
                      <td>{v.id}</td>
                      {c && g ? (
                        <>
                          <td>{g.alignmentTask}</td>
                          <td>{fmt(c.alignment)}</td>
                          <td class={c.gain >= 0 ? "good" : "bad"}>{fmt(c.gain)}</td>
                          <td>{g.helpfulnessTask}</td>
                          <td>{fmt(c.helpfulness)}</td>
                          <td class={c.loss <= g.result.budget ? "good" : "bad"}>{fmt(c.loss)}</td>
                          <td>{g.source === "fit" ? "fitted laws" : "measured points"}</td>
                          <td>{fmt(g.result.tradeoff.r)}</td>
                          <td>{g.result.withinBudget ? fmt(g.result.withinBudget.r) : "none"}</td>
                        </>
                      ) : (
                        <td colSpan={9} class="muted">
                          no alignment and helpfulness task pair in this run
                        </td>
                      )}
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </section>
        )}
        {chartGroups(tasks).map((g) => (
          <Chart
            key={g.key}
            id={`chart-${g.key}`}
            spec={withPick(metricOption(g.title, g.y, g.tasks, fits, regime), r)}
          />
        ))}
        {views.map((v, i) => {
          const spec = frontierWithPick(v, costs[i] ?? null);
          return spec ? (
            <Chart key={`f-${v.id}`} id={`chart-frontier-${i}`} class="frontier" spec={spec} />
          ) : null;
        })}
        {views.length > 0 && (
          <p class="muted legend-note">
            Points: mean over prompts; band: ±1 standard error; solid: global law (tanh or Corollary 1);
            dashed: local fit near r_e = 0. Colours: {PALETTE.length} per chart, in task order.
          </p>
        )}
      </main>
    </div>
  );
}
