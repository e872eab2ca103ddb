import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { fitCurve, loadCurve, PAPER_FIT, PAPER_TANH_RANGE } from "../../src/theory/curves.js";
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

test("fit --paper: Corollary 1 (a, b >= 0) on [-5, 5] of all 24 helpfulness curves equals scipy", {
  skip,
}, async () => {
  // scipy 1.17 curve_fit(f, x, y, bounds=([0, 0], [inf, inf]), method="trf"), best of starts (1, 1), (0.5, 0.5),
  // (3, 0.3), (0.01, 3), on the points with -5 <= r_e <= 5 (the authors' lmfit protocol: a, b >= 0, start 1, 1)
  const want: [string, "full" | "ad", number, number, number][] = [
    ["high_school_computer_science_Llama-2-13b-chat_fairness", "full", 1.34621, 0.387369, 0.596507],
    ["high_school_computer_science_Llama-2-13b-chat_fairness", "ad", 0.704697, 0.558325, 0.86959],
    ["high_school_computer_science_Llama-2-13b-chat_harmfulness", "full", 1.27541, 0.557899, 0.471828],
    ["high_school_computer_science_Llama-2-13b-chat_harmfulness", "ad", 0.743723, 0.791679, 0.588511],
    ["high_school_computer_science_Llama-2-13b_fairness", "full", 3.24146, 0.421299, 0.643219],
    ["high_school_computer_science_Llama-2-13b_fairness", "ad", 3.0955, 0.551733, 0.892108],
    ["high_school_computer_science_Llama-2-13b_harmfulness", "full", 2.92545, 0.547748, 0.801291],
    ["high_school_computer_science_Llama-2-13b_harmfulness", "ad", 3.02044, 0.70816, 0.895636],
    ["international_law_Llama-2-13b-chat_fairness", "full", 0.667056, 0.498516, 0.828339],
    ["international_law_Llama-2-13b-chat_fairness", "ad", 0.0103787, 3.49075, 0.849874],
    ["international_law_Llama-2-13b-chat_harmfulness", "full", 0.632245, 0.712943, 0.579093],
    ["international_law_Llama-2-13b-chat_harmfulness", "ad", 0.00669616, 6.41163, 0.733105],
    ["international_law_Llama-2-13b_fairness", "full", 2.16182, 0.577758, 0.693069],
    ["international_law_Llama-2-13b_fairness", "ad", 1.38653, 0.819854, 0.894192],
    ["international_law_Llama-2-13b_harmfulness", "full", 2.05675, 0.703543, 0.845001],
    ["international_law_Llama-2-13b_harmfulness", "ad", 1.37815, 0.989349, 0.886229],
    ["medical_genetics_Llama-2-13b-chat_fairness", "full", 1.01573, 0.427105, 0.809359],
    ["medical_genetics_Llama-2-13b-chat_fairness", "ad", 0.412048, 0.728541, 0.881228],
    ["medical_genetics_Llama-2-13b-chat_harmfulness", "full", 0.910216, 0.658583, 0.619786],
    ["medical_genetics_Llama-2-13b-chat_harmfulness", "ad", 0.369252, 1.09766, 0.828243],
    ["medical_genetics_Llama-2-13b_fairness", "full", 3.42399, 0.463368, 0.663615],
    ["medical_genetics_Llama-2-13b_fairness", "ad", 4.2169, 0.625711, 0.866655],
    ["medical_genetics_Llama-2-13b_harmfulness", "full", 3.17929, 0.48893, 0.740371],
    ["medical_genetics_Llama-2-13b_harmfulness", "ad", 4.11895, 0.859382, 0.905177],
  ];
  for (const [name, kind, a, b, r2] of want) {
    const curves = await loadCurve(join(DIR, `${name}.json`));
    const c = curves[kind === "full" ? 0 : 1]!;
    const f = fitCurve(c, PAPER_FIT).law!;
    assert.equal(f.kind, kind === "full" ? "corollary-full" : "corollary-ad");
    assert.deepEqual(f.range, [-5, 5]);
    rel(param(f, "a"), a, 2e-3);
    rel(param(f, "b"), b, 2e-3);
    rel(f.r2, r2, 1e-4);
  }
});
