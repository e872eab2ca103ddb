import assert from "node:assert/strict";
import { test } from "node:test";
import { buildReport } from "../../src/report/build.js";
import { renderHtml } from "../../src/report/html.js";
import type { SweepData, TaskSeries } from "../../src/report/types.js";

const r = [-40, -30, -20, -10, 0, 10, 20, 30, 40];
const series = (id: string, kind: TaskSeries["kind"], v: number[], se: number): TaskSeries => ({
  id,
  title: `${id.split("/")[0]}: ${id.split("/")[1]}`,
  kind,
  points: r.map((x, i) => ({ r: x, mean: v[i]!, std: se * 3, se, n: 9 })),
});
const B = [-0.97, -0.9, -0.62, -0.31, 0.05, 0.41, 0.7, 0.88, 0.95];
const P = [0.31, 0.55, 0.74, 0.83, 0.86, 0.82, 0.71, 0.52, 0.28];

/** Each <figure id=...> with its inner svg. */
function figures(html: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const f of html.matchAll(/<figure class="chart" id="([^"]+)">([\s\S]*?)<\/figure>/g))
    m.set(f[1]!, f[2]!);
  return m;
}

test("one panel per model and kind; r* and budget lines only on the regime's model; no bars where se is unknown", () => {
  const d: SweepData = {
    title: "t",
    metadata: {},
    rGrid: r,
    tasks: [
      series("base/harm", "behavior", B, 0.03),
      series("base/mmlu", "helpfulness-full", P, 0.02),
      series("chat/harm", "behavior", B, Number.NaN),
      series("chat/mmlu", "helpfulness-full", P, Number.NaN),
    ],
  };
  const rep = buildReport(d, { regime: { alignmentTask: "base/harm", helpfulnessTask: "base/mmlu" } });
  const figs = figures(renderHtml(rep));
  for (const id of [
    "chart-behavior-base",
    "chart-helpfulness-full-base",
    "chart-behavior-chat",
    "chart-helpfulness-full-chat",
  ])
    assert.ok(figs.has(id), id);
  assert.match(figs.get("chart-behavior-base")!, /r\* = /);
  assert.match(figs.get("chart-helpfulness-full-base")!, /budget r = /);
  assert.doesNotMatch(figs.get("chart-behavior-chat")!, /r\* = |budget r = /);
  assert.doesNotMatch(figs.get("chart-helpfulness-full-chat")!, /r\* = |budget r = /);
  // legend names drop the model prefix inside its own panel
  assert.doesNotMatch(figs.get("chart-behavior-base")!, />base: harm</);
  // error bars: 3 segments per point where se is known (base), none where it is not (chat)
  const segs = (svg: string) =>
    (svg.match(/<path d="M[\d.]+ [\d.]+L[\d.]+ [\d.]+" fill="#000"[^>]*ecmeta_silent="true"/g) ?? []).length;
  assert.ok(
    segs(figs.get("chart-behavior-base")!) >= 3 * r.length,
    `${segs(figs.get("chart-behavior-base")!)}`,
  );
  assert.equal(segs(figs.get("chart-behavior-chat")!), 0);
});
