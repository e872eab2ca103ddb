/**
 * `npm start`'s experiment as shipped (demo/experiment.json, full grid): the shapes the README reports, with the
 * issue's targets: tanh R^2 >= 0.95 for both models, a line near 0 (soft B of the base) R^2 >= 0.95, helpfulness
 * quadratic near 0 R^2 >= 0.95 and Corollary 1 R^2 >= 0.9 for both, the efficient regime from the laws.
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

test("the shipped demo shows both headline shapes in both directions", { timeout: 600_000 }, async () => {
  const dir = [join(ROOT, "demo"), join(ROOT, "..", "demo")].find((d) =>
    existsSync(join(d, "experiment.json")),
  )!;
  const res = await runExperiment(demoConfig(dir), out);
  const fit = (id: string) => res.report.fits.find((f) => f.taskId === id)!;
  for (const m of ["base", "chat"]) {
    const b = fit(`${m}/refusal-logprob`).law!;
    assert.ok(b.r2 >= 0.95, `${m} tanh R^2 ${b.r2}`);
    const h = fit(`${m}/knowledge`);
    assert.ok(h.law!.r2 >= 0.9, `${m} Corollary-1 R^2 ${h.law!.r2}`);
    const q = h.local[0]!;
    assert.ok(q.r2 >= 0.95 && param(q, "c2") < 0, `${m} quadratic R^2 ${q.r2}`);
  }
  assert.ok(fit("base/refusal-logprob-soft").local[0]!.r2 >= 0.95);
  // base aligned by +r_e, chat misaligned by -r_e
  assert.ok(param(fit("base/refusal-logprob").law!, "a") > 0);
  const chat = res.report.tasks.find((t) => t.id === "chat/refusal-logprob")!;
  assert.equal(chat.points[0]!.mean, -1);
  const reg = res.report.regime!;
  assert.equal(reg.source, "fit");
});
