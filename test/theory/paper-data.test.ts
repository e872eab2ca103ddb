import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { fitCurve, loadCurve, PAPER_TANH_RANGE } from "../../src/theory/curves.js";
import { param } from "../../src/theory/lsq.js";

/** ../shared/paper-data beside the repository root (the nearest folder above this file with package.json). */
function paperDir(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, "package.json")) && dirname(d) !== d) d = dirname(d);
  return resolve(d, "../shared/paper-data");
}
const DIR = paperDir();
const skip = existsSync(DIR)
  ? false
  : `paper data not found at ${DIR} (../shared/paper-data beside the repo)`;

const rel = (got: number, want: number, tol = 1e-2) =>
  assert.ok(Math.abs(got - want) <= tol * Math.abs(want) + 5e-4, `got ${got}, want ${want}`);

test("tanh fits of the four behaviour files match the README", { skip }, async () => {
  const want: [string, number, number, number][] = [
    ["behavior_harmful_Llama-2-13b_harmfulness.json", 0.504, -0.562, 0.974],
    ["behavior_harmful_Llama-2-13b-chat_harmfulness.json", 1.313, -3.379, 0.998],
    ["behavior_bias_Llama-2-13b_fairness.json", 2.835, 1.683, 0.985],
    ["behavior_bias_Llama-2-13b-chat_fairness.json", 3.11, -8.345, 0.993],
  ];
  for (const [file, a, b0, r2] of want) {
    const [c] = await loadCurve(join(DIR, file));
    assert.equal(c!.kind, "behavior");
    assert.equal(c!.r.length, 51);
    const f = fitCurve(c!, { tanhRange: PAPER_TANH_RANGE });
    rel(param(f.law!, "a"), a);
    rel(param(f.law!, "b0"), b0);
    rel(f.law!.r2, r2);
  }
});

test("base/harmful is close to linear for |r| <= 1 (slope 0.199, R^2 0.982)", { skip }, async () => {
  const [c] = await loadCurve(join(DIR, "behavior_harmful_Llama-2-13b_harmfulness.json"));
  const lin = fitCurve(c!).local[0]!;
  rel(param(lin, "c1"), 0.199);
  rel(lin.r2, 0.982);
});

test("quadratic fits of p_mean on |r| <= 2.5 bend down in all 12 files (c2 < 0, R^2 0.90-0.999)", {
  skip,
}, async () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith(".json") && !f.startsWith("behavior_"));
  assert.equal(files.length, 12);
  for (const f of files) {
    const curves = await loadCurve(join(DIR, f));
    assert.deepEqual(
      curves.map((c) => c.kind),
      ["helpfulness-full", "helpfulness-ad"],
    );
    const q = fitCurve(curves[0]!).local[0]!;
    assert.ok(param(q, "c2") < 0, `${f}: c2 = ${param(q, "c2")}`);
    assert.ok(q.r2 >= 0.9 && q.r2 <= 0.9995, `${f}: R^2 = ${q.r2}`);
    if (f === "international_law_Llama-2-13b_harmfulness.json") {
      rel(param(q, "c2"), -0.0155);
      rel(q.r2, 0.999);
    }
  }
});
