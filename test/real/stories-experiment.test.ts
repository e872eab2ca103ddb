/**
 * The experiment on a model nobody here trained (stories260K, ../shared/real-models): happy-vs-sad steering
 * against cloze capability, run from experiments/stories260k/experiment.json as the README's command does. The
 * numbers asserted are what this model shows (see the README): alignment first order (tanh on the coherent
 * range, linear near 0), capability second order (quadratic near 0 with c2 < 0, Corollary 1 over the grid).
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { loadExperimentConfig } from "../../src/cli/commands/demo.js";
import { runExperiment } from "../../src/eval/experiment.js";
import { param } from "../../src/theory/lsq.js";
import { ROOT } from "../helpers/cli.js";

const file = [join(ROOT, "experiments"), join(ROOT, "..", "experiments")]
  .map((d) => join(d, "stories260k/experiment.json"))
  .find((f) => existsSync(f))!;
const c = loadExperimentConfig(file);
const skip = existsSync(c.models[0]!.path) ? false : `${c.models[0]!.path} absent (../shared/real-models)`;
const out = mkdtempSync(join(tmpdir(), "steerlab-stories-"));
after(() => rmSync(out, { recursive: true, force: true }));

test("stories260K: mood rises like tanh (first order), cloze falls quadratically (second order)", {
  skip,
}, async () => {
  const res = await runExperiment(c, out);
  const fit = (id: string) => res.report.fits.find((f) => f.taskId === `stories260K/${id}`)!;
  const mood = fit("mood");
  assert.equal(mood.law!.kind, "tanh");
  assert.deepEqual(mood.law!.range, [-0.3, 0.3]);
  assert.ok(mood.law!.r2 >= 0.95, `tanh R^2 ${mood.law!.r2}`);
  assert.ok(param(mood.law!, "a") * mood.law!.sign > 0, "alignment rises with r_e");
  assert.ok(mood.local[0]!.r2 >= 0.95, `linear R^2 ${mood.local[0]!.r2}`);
  const cloze = fit("cloze");
  assert.ok(cloze.law!.r2 >= 0.9, `Corollary-1 R^2 ${cloze.law!.r2}`);
  const q = cloze.local[0]!;
  assert.ok(q.r2 >= 0.95 && param(q, "c2") < 0, `quadratic R^2 ${q.r2}, c2 ${param(q, "c2")}`);
  const reg = res.report.regime!;
  assert.equal(reg.source, "fit");
  assert.equal(reg.result.direction, 1);
  assert.equal(res.report.metadata["residNorm stories260K"] !== undefined, true);
});
