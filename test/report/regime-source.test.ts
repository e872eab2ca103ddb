import assert from "node:assert/strict";
import { test } from "node:test";
import { buildReport, REGIME_MIN_R2 } from "../../src/report/build.js";
import { regimeSourceText } from "../../src/report/html.js";
import type { SweepData, TaskSeries } from "../../src/report/types.js";
import { interpolate } from "../../src/theory/regime.js";

const r = [-40, -30, -20, -10, 0, 10, 20, 30, 40];
const series = (id: string, kind: TaskSeries["kind"], v: number[]): TaskSeries => ({
  id,
  title: id,
  kind,
  points: r.map((x, i) => ({ r: x, mean: v[i]!, std: Number.NaN, se: Number.NaN, n: 10 })),
});
const B = [-0.97, -0.9, -0.62, -0.31, 0.05, 0.41, 0.7, 0.88, 0.95]; // tanh fits with R^2 0.998
const Pgood = [0.31, 0.55, 0.74, 0.83, 0.86, 0.82, 0.71, 0.52, 0.28]; // Corollary 1: R^2 0.937
const Pflat = [0.3, 1, 1, 1, 1, 1, 1, 1, 0.3]; // saturated, then a cliff: Corollary 1 fits poorly

function data(p: number[]): SweepData {
  return {
    title: "t",
    metadata: {},
    rGrid: r,
    tasks: [series("align", "behavior", B), series("help", "helpfulness-full", p)],
  };
}

test("efficient regime: each side from its law when it fits well (R^2 >= 0.9), else from its data, labelled", () => {
  assert.equal(REGIME_MIN_R2, 0.9);
  const good = buildReport(data(Pgood)).regime!;
  assert.equal(good.source, "fit");
  assert.equal(good.sources!.alignment.law, "tanh");
  assert.equal(good.sources!.helpfulness.law, "corollary-full");

  const rep = buildReport(data(Pflat));
  const law = rep.fits.find((f) => f.taskId === "help")!.law!;
  assert.ok(law.r2 < 0.9, `Corollary R^2 ${law.r2}`);
  const bad = rep.regime!;
  assert.equal(bad.source, "mixed");
  assert.equal(bad.sources!.alignment.from, "fit");
  assert.equal(bad.sources!.helpfulness.from, "data");
  assert.match(bad.sources!.helpfulness.why, /corollary-full R\^2 0\.\d+.* < 0\.9/);
  assert.match(regimeSourceText(bad), /helpfulness from the interpolated data/);
  // from the data: loss 0 up to r = 30, then 0.7 at 40: the 0.02 budget is crossed by interpolation at 30.2857
  const h = interpolate(r, Pflat);
  const wb = bad.result.withinBudget!;
  assert.ok(Math.abs(1 - h(wb.r) - 0.02) < 1e-9, `loss at ${wb.r}: ${1 - h(wb.r)}`);
  assert.ok(Math.abs(wb.r - (30 + 0.02 / 0.07)) < 1e-6, `${wb.r}`);
  // forced: "fit" uses the poor law anyway and says so
  const forced = buildReport(data(Pflat), { regime: { source: "fit" } }).regime!;
  assert.equal(forced.sources!.helpfulness.from, "fit");
  assert.equal(forced.sources!.helpfulness.why, "fit requested");
});

test("the regime searches the aligning side up to where the laws were fitted on that side", () => {
  const rep = buildReport(data(Pgood), { fit: { tanhRange: [-20, 40] } });
  const f = rep.regime!.result.frontier;
  assert.equal(rep.regime!.result.direction, 1);
  assert.equal(f[f.length - 1]!.r, 40); // not min(40, 20): the negative side's range does not limit the positive
  const narrow = buildReport(data(Pgood), { fit: { tanhRange: [-40, 20] } }).regime!.result.frontier;
  assert.equal(narrow[narrow.length - 1]!.r, 20); // no extrapolation of tanh past its fitted range
});
