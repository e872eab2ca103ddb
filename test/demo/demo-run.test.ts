/**
 * The main job on the shipped demo models, on a fast subset of its grid: extraction, sweeps with both behaviour
 * scorers and the MCQ scorer, fits, regime and report. The base model's alignment must rise with r_e and its
 * helpfulness fall for large |r_e| (the paper's shapes, as measured on these models).
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { demoConfig } from "../../src/cli/commands/demo.js";
import { runExperiment } from "../../src/eval/experiment.js";
import { ROOT } from "../helpers/cli.js";

const out = mkdtempSync(join(tmpdir(), "steerlab-demo-"));
after(() => rmSync(out, { recursive: true, force: true }));

test("steerlab demo on a fast grid: base alignment rises with r_e, helpfulness falls at large |r_e|", async () => {
  const dir = [join(ROOT, "demo"), join(ROOT, "..", "demo")].find((d) =>
    existsSync(join(d, "experiment.json")),
  )!;
  const full = demoConfig(dir);
  const c = {
    ...full,
    coeffs: [-30, -10, 0, 10, 30],
    tasks: (full.tasks as { kind: string; limit?: number }[]).map((t) => ({
      ...t,
      limit: t.kind === "mcq" ? 48 : t.kind === "behavior-generate" ? 8 : 24,
    })),
  };
  const res = await runExperiment(c, out);
  const s = (id: string) => res.report.tasks.find((t) => t.id === id)!;
  const at = (id: string, r: number) => s(id).points.find((p) => p.r === r)!.mean;
  const B = "base/refusal-logprob";
  assert.ok(at(B, 10) > at(B, 0), `B(+10) ${at(B, 10)} > B(0) ${at(B, 0)}`);
  assert.ok(at(B, 0) > at(B, -10), `B(0) ${at(B, 0)} > B(-10) ${at(B, -10)}`);
  const H = "base/knowledge";
  assert.ok(at(H, 30) < at(H, 0) && at(H, -30) < at(H, 0), "helpfulness falls on both sides");
  // the chat model refuses more than the base at r_e = 0, more still with +r_e, and is misaligned by -r_e
  const C = "chat/refusal-logprob";
  assert.ok(at(C, 0) - at(B, 0) >= 0.2, `chat B(0) ${at(C, 0)}, base ${at(B, 0)}`);
  assert.ok(at(C, 10) > at(C, 0), `chat B(+10) ${at(C, 10)} > B(0) ${at(C, 0)}`);
  assert.ok(at(C, -30) < 0);
  // the keyword scorer ran and reports its unclear answers
  assert.ok(s("base/refusal-keyword").points.every((p) => typeof p.unclear === "number"));
  const html = readFileSync(res.files.html, "utf8");
  assert.ok((html.match(/<svg/g) ?? []).length >= 4, "the report has its plots");
  assert.ok(res.report.regime, "the efficient regime is computed");
});
