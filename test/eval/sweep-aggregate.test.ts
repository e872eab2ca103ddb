import assert from "node:assert/strict";
import { test } from "node:test";
import type { SweepRecord } from "../../src/eval/store.js";
import { aggregateRecords } from "../../src/eval/sweep-aggregate.js";
import { buildReport } from "../../src/report/build.js";

const R = [-2, -1, 0, 1, 2];

/** Synthetic records with known curves: behaviour tanh-like, helpfulness quadratic-like. */
function records(variants: readonly string[]): SweepRecord[] {
  const out: SweepRecord[] = [];
  for (const variant of variants) {
    for (const r of R) {
      for (let item = 0; item < 4; item++) {
        // generate: item 3 is unclear at |r| = 2, items 0..1 aligned when r > -1
        const score = item === 3 && Math.abs(r) === 2 ? 0 : item < 2 && r > -1 ? 1 : -1;
        out.push({
          task: "gen",
          variant,
          item,
          r,
          kind: "behavior-generate",
          score,
          text: "x",
          reason: "test",
        });
        const margin = 0.8 * r + 0.1 * item;
        out.push({
          task: "lp",
          variant,
          item,
          r,
          kind: "behavior-logprob",
          score: Math.sign(margin),
          margin,
          soft: Math.tanh(margin / 2),
          // good-minus-bad logit: item offset + 0.3 r + 0.1 r^2 -> shift 0.3 r + 0.1 r^2 relative to r = 0
          goodBad: 2 * item + 0.3 * r + 0.1 * r * r,
        });
        const p = 0.6 - 0.05 * r * r + 0.01 * item;
        out.push({
          task: "mcq",
          variant,
          item,
          r,
          kind: "mcq",
          score: item % 2,
          pFull: p,
          pRelative: 0.25 + p / 2,
          predicted: "A",
          dNorm: 1.5 * Math.abs(r) + 0.01 * item,
          a3: r === 0 ? [0, 0] : [r * (item - 1.5), -r * item, r, 0.5 * r],
        });
      }
    }
  }
  return out;
}

test("records aggregate into one series per task and kind, with spread, unclear counts and diagnostics", () => {
  const d = aggregateRecords(records(["v@1..2"]).reverse(), { title: "t" });
  assert.deepEqual(
    d.tasks.map((t) => [t.id, t.kind]),
    [
      ["mcq", "helpfulness-full"],
      ["mcq-ad", "helpfulness-ad"],
      ["mcq-acc", "generic"],
      ["lp", "behavior"],
      ["lp-soft", "behavior"],
      ["gen", "behavior"],
    ],
  );
  assert.deepEqual(d.rGrid, R);
  const gen = d.tasks.find((t) => t.id === "gen")!;
  assert.deepEqual(
    gen.points.map((p) => p.r),
    R,
  ); // sorted despite reversed input
  const at2 = gen.points.find((p) => p.r === 2)!;
  assert.equal(at2.unclear, 1);
  assert.equal(at2.n, 4);
  assert.ok(Math.abs(at2.mean - (1 + 1 - 1 + 0) / 4) < 1e-12);
  const mcq = d.tasks.find((t) => t.id === "mcq")!.points.find((p) => p.r === 1)!;
  assert.ok(Math.abs(mcq.mean - (0.55 + 0.015)) < 1e-12);
  assert.ok(mcq.se > 0 && mcq.std > 0);
  // A1: ||delta logits|| = 1.5 |r| + const -> slope 1.5; A2-margin: margin slope 0.8; A3 has no r = 0 row
  assert.ok(Math.abs(d.diagnostics!.a1!.fit!.values[1]! - 1.5) < 1e-9);
  assert.ok(Math.abs(d.diagnostics!.a2Margin!.fit!.values[1]! - 0.8) < 1e-9);
  // A2 (paper): shifts at r = 0, 1, 2 are 0, 0.4, 1.0: line through those 3 has slope 0.5, chord 0.5 -> 0.5
  const a2 = d.diagnostics!.a2!;
  assert.deepEqual(
    a2.rows.map((x) => Number(x.mean.toFixed(12))),
    [-0.2, -0.2, 0, 0.4, 1],
  );
  assert.ok(Math.abs(a2.slope! - 0.5) < 1e-12);
  assert.ok(d.diagnostics!.a3!.rows.every((row) => row.r !== 0));

  const rep = buildReport(d);
  const quad = rep.fits.find((f) => f.taskId === "mcq")!.local.find((f) => f.kind === "poly2")!;
  assert.ok(Math.abs(quad.values[2]! + 0.05) < 1e-9);
  assert.ok(rep.regime && rep.regime.alignmentTask === "lp" && rep.regime.helpfulnessTask === "mcq");
});

test("several variants get their own series", () => {
  const d = aggregateRecords(records(["a@1", "b@2"]));
  assert.equal(d.tasks.length, 12);
  assert.ok(d.tasks.some((t) => t.id === "mcq@a@1") && d.tasks.some((t) => t.id === "gen@b@2"));
});
