/**
 * A sweep over a grid other than the paper's (the demo models over r_e = -40..40 step 10, the README's units,
 * with the default local windows): every law of every curve is fitted.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { demoConfig } from "../../src/cli/commands/demo.js";
import { runExperiment } from "../../src/eval/experiment.js";
import { ROOT } from "../helpers/cli.js";

const out = mkdtempSync(join(tmpdir(), "steerlab-demo-grid-"));
after(() => rmSync(out, { recursive: true, force: true }));

test("demo models over -40:40:10 with default windows: tanh, linear, Corollary 1 (full, A-D), quadratic all fit", async () => {
  const dir = [join(ROOT, "demo"), join(ROOT, "..", "demo")].find((d) =>
    existsSync(join(d, "experiment.json")),
  )!;
  const full = demoConfig(dir);
  const { fit: _fit, ...rest } = full;
  const c = {
    ...rest,
    coeffs: "-40:40:10",
    tasks: (full.tasks as { kind: string }[])
      .filter((t) => t.kind !== "behavior-generate")
      .map((t) => ({ ...t, limit: t.kind === "mcq" ? 24 : 16 })),
  };
  const res = await runExperiment(c, out);
  for (const m of ["base", "chat"]) {
    const want: [string, string, string][] = [
      [`${m}/refusal-logprob`, "tanh", "poly1"],
      [`${m}/refusal-logprob-soft`, "tanh", "poly1"],
      [`${m}/knowledge`, "corollary-full", "poly2"],
      [`${m}/knowledge-ad`, "corollary-ad", "poly2"],
    ];
    for (const [id, law, local] of want) {
      const f = res.report.fits.find((x) => x.taskId === id)!;
      assert.equal(f.law?.kind, law, `${id}: ${f.notes.join("; ")}`);
      assert.deepEqual(
        f.local.map((l) => l.kind),
        [local],
        `${id}: ${f.notes.join("; ")}`,
      );
      assert.deepEqual(f.notes, []);
    }
  }
});
