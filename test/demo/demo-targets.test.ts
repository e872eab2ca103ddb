/**
 * `npm start`'s experiment as shipped (demo/experiment.json, full grid): the shapes the README reports, against the
 * issue's targets: tanh R^2 >= 0.95 on the coherent range and a line near 0 (R^2 >= 0.95) for both models and both
 * B scorers, helpfulness quadratic near 0 R^2 >= 0.95 and Corollary 1 R^2 >= 0.9, the efficient regime from the
 * laws. TARGETS asserts the issue's thresholds (a target a shipped model misses is marked todo, so it is reported,
 * not hidden); FLOORS sit just under the values measured on the shipped models, so that a worse model fails too.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { demoConfig } from "../../src/cli/commands/demo.js";
import { runExperiment } from "../../src/eval/experiment.js";
import { param } from "../../src/theory/lsq.js";
import { ROOT } from "../helpers/cli.js";

const out = mkdtempSync(join(tmpdir(), "steerlab-demo-targets-"));
after(() => rmSync(out, { recursive: true, force: true }));

/** Per model: [tanh sign B, tanh soft B, line sign B, line soft B, quadratic P, Corollary 1 P] at least. */
const FLOORS = {
  base: [0.95, 0.98, 0.97, 0.99, 0.985, 0.92],
  chat: [0.955, 0.98, 0.98, 0.975, 0.98, 0.9],
} as const;

/** The targets themselves, per model and fit (`missed`: models that miss it; run as todo). */
const TARGETS: { name: string; min: number; missed?: readonly string[] }[] = [
  { name: "tanh (sign B)", min: 0.95 },
  { name: "tanh (soft B)", min: 0.95 },
  { name: "line near 0 (sign B)", min: 0.95 },
  { name: "line near 0 (soft B)", min: 0.95 },
  { name: "quadratic near 0", min: 0.95 },
  { name: "Corollary 1", min: 0.9 },
];

test("the shipped demo shows both headline shapes in both directions", { timeout: 600_000 }, async (t) => {
  const dir = [join(ROOT, "demo"), join(ROOT, "..", "demo")].find((d) =>
    existsSync(join(d, "experiment.json")),
  )!;
  const res = await runExperiment(demoConfig(dir), out);
  const fit = (id: string) => res.report.fits.find((f) => f.taskId === id)!;
  const at = (id: string, r: number) =>
    res.report.tasks.find((t) => t.id === id)!.points.find((p) => p.r === r)!.mean;
  for (const m of ["base", "chat"] as const) {
    const [tanhSign, tanhSoft, lineSign, lineSoft, quad, cor] = FLOORS[m];
    const sign = fit(`${m}/refusal-logprob`);
    const soft = fit(`${m}/refusal-logprob-soft`);
    assert.ok(sign.law!.r2 >= tanhSign, `${m} tanh (sign B) R^2 ${sign.law!.r2}`);
    assert.ok(soft.law!.r2 >= tanhSoft, `${m} tanh (soft B) R^2 ${soft.law!.r2}`);
    assert.ok(sign.local[0]!.r2 >= lineSign, `${m} line near 0 (sign B) R^2 ${sign.local[0]!.r2}`);
    assert.ok(soft.local[0]!.r2 >= lineSoft, `${m} line near 0 (soft B) R^2 ${soft.local[0]!.r2}`);
    // alignment rises through r_e = 0, and is graded there: steering either way moves it
    assert.ok(param(sign.law!, "a") > 0 && param(sign.local[0]!, "c1") > 0);
    assert.ok(at(`${m}/refusal-logprob`, -8) < at(`${m}/refusal-logprob`, 0));
    assert.ok(at(`${m}/refusal-logprob`, 0) < at(`${m}/refusal-logprob`, 8));
    const h = fit(`${m}/knowledge`);
    const r2 = [sign.law!.r2, soft.law!.r2, sign.local[0]!.r2, soft.local[0]!.r2, h.local[0]!.r2, h.law!.r2];
    for (const [i, goal] of TARGETS.entries()) {
      const missed = goal.missed?.includes(m);
      await t.test(
        `${m}: ${goal.name} R^2 >= ${goal.min}`,
        missed ? { todo: "not met by the shipped models (README: What does not fit)" } : {},
        () => assert.ok(r2[i]! >= goal.min, `${m} ${goal.name} R^2 ${r2[i]}`),
      );
    }
    assert.ok(h.law!.r2 >= cor, `${m} Corollary-1 R^2 ${h.law!.r2}`);
    const q = h.local[0]!;
    assert.ok(q.r2 >= quad && param(q, "c2") < 0, `${m} quadratic R^2 ${q.r2}`);
  }
  // the chat model refuses more at r_e = 0 (not saturated) and is misaligned by -r_e
  const b0 = at("base/refusal-logprob", 0);
  const c0 = at("chat/refusal-logprob", 0);
  assert.ok(c0 - b0 >= 0.3 && c0 < 0.9, `B(0): base ${b0}, chat ${c0}`);
  const chat = res.report.tasks.find((t) => t.id === "chat/refusal-logprob")!;
  assert.equal(chat.points[0]!.mean, -1);
  const reg = res.report.regime!;
  assert.equal(reg.source, "fit");
});
