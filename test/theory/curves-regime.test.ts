import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { isSteerlabError } from "../../src/errors.js";
import { fitCurve, loadCurve, parseCurveCsv, parseCurveJson } from "../../src/theory/curves.js";
import {
  bestTradeoff,
  efficientRegime,
  frontier,
  interpolate,
  maxWithinBudget,
} from "../../src/theory/regime.js";

test("loadCurve reads CSV (with and without header) and JSON points, guessing the kind", async () => {
  const dir = await mkdtemp(join(tmpdir(), "steerlab-curve-"));
  try {
    const rs = [-2, -1, 0, 1, 2, 3];
    await writeFile(
      join(dir, "b.csv"),
      `r_e,value,std\n${rs.map((r) => `${r},${Math.tanh(r)},0.1`).join("\n")}\n`,
    );
    await writeFile(join(dir, "h.csv"), rs.map((r) => `${r},${0.5 - 0.01 * r * r}`).join("\n"));
    await writeFile(join(dir, "p.json"), JSON.stringify(rs.map((r) => ({ r_e: r, value: 1 / (2 + r * r) }))));
    const [b] = await loadCurve(join(dir, "b.csv"));
    assert.equal(b!.kind, "behavior");
    assert.deepEqual(b!.std, [0.1, 0.1, 0.1, 0.1, 0.1, 0.1]);
    const [h] = await loadCurve(join(dir, "h.csv"));
    assert.equal(h!.kind, "helpfulness-full");
    assert.equal(h!.std, undefined);
    const [p] = await loadCurve(join(dir, "p.json"));
    assert.equal(p!.kind, "helpfulness-full");
    const fits = fitCurve(p!);
    assert.equal(fits.law!.kind, "corollary-full");
    assert.ok(fits.law!.r2 > 0.999);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("paper JSON forms: behaviour mean+std and p_mean / p_mean_relative", () => {
  const beh = parseCurveJson(
    JSON.stringify({
      behavior_x_mean: { "1.0": 0.5, "-1.0": -0.5, "0.0": 0 },
      behavior_x_std: { "0.0": 1, "1.0": 0.8, "-1.0": 0.8 },
    }),
    "f.json",
  );
  assert.deepEqual(beh[0]!.r, [-1, 0, 1]);
  assert.deepEqual(beh[0]!.std, [0.8, 1, 0.8]);
  const hp = parseCurveJson(
    JSON.stringify({
      p_mean: { "0.0": 0.3 },
      p_std: { "0.0": 0.1 },
      p_mean_relative: { "0.0": 0.4 },
      p_std_relative: { "0.0": 0.2 },
    }),
    "g.json",
  );
  assert.deepEqual(
    hp.map((c) => [c.kind, c.value[0], c.std![0]]),
    [
      ["helpfulness-full", 0.3, 0.1],
      ["helpfulness-ad", 0.4, 0.2],
    ],
  );
});

test("malformed curve files give errors naming file and line or field", async () => {
  assert.throws(
    () => parseCurveCsv("r_e,value\n0,1\n1,abc\n", "x.csv"),
    (e) => isSteerlabError(e, "bad_file") && /x\.csv/.test(e.message) && /line 3/.test(e.message),
  );
  assert.throws(
    () => parseCurveCsv('r_e,value\n0,"1\n', "q.csv"),
    (e) => isSteerlabError(e, "bad_file") && /q\.csv/.test(e.message),
  );
  assert.throws(
    () => parseCurveJson('{"behavior_x_mean": {"0": "a"}}', "y.json"),
    (e) => isSteerlabError(e) && /behavior_x_mean\.0/.test(e.message),
  );
  assert.throws(() => parseCurveJson('{"foo": 1}', "z.json"), /unrecognised curve JSON/);
  await assert.rejects(loadCurve("/nonexistent/curve.csv"), (e) => isSteerlabError(e, "not_found"));
});

test("efficient regime on analytic curves: budget crossing, best tradeoff and Pareto frontier", () => {
  // A = tanh(r), H = 0.5 - 0.01 r^2: loss(r) = 0.01 r^2.
  const inp = { alignment: Math.tanh, helpfulness: (r: number) => 0.5 - 0.01 * r * r, rMax: 5 };
  const b = maxWithinBudget(inp, 0.04)!;
  assert.ok(Math.abs(b.r - 2) < 1e-6, `budget r ${b.r}`);
  // d/dr [tanh r - lambda 0.01 r^2] = sech^2 r - 0.02 lambda r = 0; lambda = 10: sech^2 r = 0.2 r.
  const t = bestTradeoff(inp, 10);
  assert.ok(Math.abs(1 / Math.cosh(t.r) ** 2 - 0.2 * t.r) < 1e-5, `tradeoff r ${t.r}`);
  const fr = frontier(inp);
  assert.ok(
    fr.every((p) => p.pareto),
    "monotone gain and loss: every point is on the frontier",
  );
  // Alignment falling with r: the aligning side is negative.
  const neg = efficientRegime({ ...inp, alignment: (r) => -Math.tanh(r) }, { budget: 0.04, lambda: 10 });
  assert.equal(neg.direction, -1);
  assert.ok(Math.abs(neg.withinBudget!.r + 2) < 1e-6);
  // Helpfulness that recovers after a dip: points past the dip with less loss dominate.
  const dip = frontier({
    alignment: (r) => Math.min(r, 1),
    helpfulness: (r) => 0.5 - 0.1 * Math.sin(r),
    rMax: 3,
  });
  assert.ok(dip.some((p) => !p.pareto));
});

test("interpolate is piecewise linear and clamps", () => {
  const f = interpolate([2, 0, 1], [4, 0, 1]);
  assert.equal(f(0.5), 0.5);
  assert.equal(f(1.5), 2.5);
  assert.equal(f(-1), 0);
  assert.equal(f(9), 4);
});
