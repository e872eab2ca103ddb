import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { buildReport } from "../../src/report/build.js";
import { renderSvg } from "../../src/report/charts.js";
import { renderHtml } from "../../src/report/html.js";
import { reportFromPaperData } from "../../src/report/paper.js";
import { csvCell, fitsCsv, pointsCsv, toJson, writeReport } from "../../src/report/writers.js";
import { param } from "../../src/theory/lsq.js";
import { syntheticSweep } from "./fixture.js";

function paperDir(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, "package.json")) && dirname(d) !== d) d = dirname(d);
  return resolve(d, "../shared/paper-data");
}
const PAPER = paperDir();
const skipPaper = existsSync(PAPER)
  ? false
  : `paper data not found at ${PAPER} (../shared/paper-data beside the repo)`;

/** The <svg> elements inside each report figure, by figure id. */
function figures(html: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of html.matchAll(/<figure class="chart" id="([^"]+)">(<svg[\s\S]*?<\/svg>)/g))
    out.set(m[1]!, m[2]!);
  return out;
}

test("ECharts renders SVG on the server (no DOM)", () => {
  const svg = renderSvg(
    {
      xAxis: { type: "value" },
      yAxis: { type: "value" },
      series: [
        {
          type: "line",
          data: [
            [0, 1],
            [1, 2],
          ],
        },
      ],
    },
    { width: 300, height: 200 },
  );
  assert.match(svg, /^<svg[^>]*width="300"[^>]*height="200"/);
  assert.match(svg, /<path/);
});

test("report of a synthetic sweep: fits, regime, every chart and escaped text", () => {
  const r = buildReport(syntheticSweep(), { regime: { budget: 0.02, lambda: 1 } });
  const beh = r.fits.find((f) => f.taskId === "harmful")!;
  assert.equal(beh.law!.kind, "tanh");
  assert.ok(Math.abs(param(beh.law!, "a") - 0.6) < 0.1);
  assert.equal(r.fits.find((f) => f.taskId === "mmlu")!.law!.kind, "corollary-full");
  assert.equal(r.fits.find((f) => f.taskId === "mmlu-ad")!.law!.kind, "corollary-ad");
  assert.equal(r.regime!.alignmentTask, "harmful");
  assert.equal(r.regime!.helpfulnessTask, "mmlu");
  assert.equal(r.regime!.result.direction, 1);
  const html = renderHtml(r);
  const figs = figures(html);
  assert.deepEqual([...figs.keys()].sort(), [
    "chart-a1",
    "chart-a2",
    "chart-a2-margin",
    "chart-a3",
    "chart-a3-normality",
    "chart-behavior",
    "chart-frontier",
    "chart-helpfulness-ad",
    "chart-helpfulness-full",
  ]);
  for (const [id, svg] of figs) {
    assert.match(svg, /<path d="M/, `${id} has drawn paths`);
    assert.ok(svg.length > 2000, `${id} is a real chart (${svg.length} chars)`);
  }
  assert.match(figs.get("chart-behavior")!, /tanh fit/);
  assert.match(figs.get("chart-behavior")!, /r\* = /, "efficient r_e marked");
  assert.match(html, /Synthetic sweep &lt;test &amp; check&gt;/);
  assert.doesNotMatch(html, /<script/i, "self-contained, no scripts");
});

test("weighted option fits with 1/se^2; the regime can use interpolated data", () => {
  const r = buildReport(syntheticSweep(5), {
    weighted: true,
    regime: { source: "data", budget: 0.05, lambda: 2 },
  });
  for (const f of r.fits) {
    assert.ok(f.law!.weighted, `${f.taskId} law weighted`);
    assert.ok(f.local.every((l) => l.weighted));
  }
  assert.equal(r.regime!.source, "data");
  assert.ok(r.regime!.result.withinBudget!.loss <= 0.05 + 1e-12);
  assert.throws(() => buildReport(syntheticSweep(5), { regime: { alignmentTask: "nope" } }), /no task nope/);
});

test("writers: JSON round trip, CSV tables and files on disk", async () => {
  const r = buildReport(syntheticSweep(2));
  const j = JSON.parse(toJson(r));
  assert.equal(j.version, 1);
  assert.equal(j.tasks.length, 3);
  const pts = pointsCsv(r).trim().split("\n");
  assert.equal(pts[0], "task,kind,r_e,mean,std,se,n,unclear");
  assert.equal(pts.length, 1 + 3 * 41);
  const fits = fitsCsv(r).trim().split("\n");
  assert.ok(fits.some((l) => l.startsWith("harmful,tanh,a,")));
  assert.equal(csvCell('a,"b"'), '"a,""b"""');
  assert.equal(csvCell(Number.NaN), "");
  const dir = await mkdtemp(join(tmpdir(), "steerlab-report-"));
  try {
    const w = await writeReport(r, dir);
    const html = await readFile(w.html, "utf8");
    assert.ok(html.startsWith("<!doctype html>"));
    assert.equal(JSON.parse(await readFile(w.json, "utf8")).title, r.title);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("report from the paper's files reproduces the README fits and the published shapes", {
  skip: skipPaper,
}, async () => {
  const r = await reportFromPaperData(PAPER, { model: "Llama-2-13b-chat", vector: "harmfulness" });
  const t = r.fits.find((f) => f.taskId === "harmful")!.law!;
  assert.ok(Math.abs(param(t, "a") - 1.313) < 0.013 && Math.abs(param(t, "b0") + 3.379) < 0.034);
  assert.equal(r.tasks.length, 7);
  // Shapes: helpfulness peaks near r_e = 0 and collapses at |r_e| = 10; A-D tends to chance.
  for (const task of r.tasks.filter((x) => x.kind === "helpfulness-full")) {
    const at = (x: number) => task.points.find((p) => Math.abs(p.r - x) < 1e-9)!.mean;
    assert.ok(at(0) > at(-10) + 0.1 && at(0) > at(10) + 0.1, `${task.id} collapses at the ends`);
  }
  const bias = await reportFromPaperData(PAPER, { model: "Llama-2-13b", vector: "fairness" });
  assert.ok(Math.abs(param(bias.fits[0]!.law!, "a") - 2.835) < 0.03);
  assert.equal(figures(renderHtml(bias)).size, 4);
});
