import assert from "node:assert/strict";
import { test } from "node:test";
import { aggregateBehavior, summarize } from "../../src/eval/score-aggregate.js";
import {
  classifyKeywords,
  DISAGREE_RULES,
  gibberishReason,
  REFUSAL_RULES,
} from "../../src/eval/score-behavior.js";
import {
  a3Projections,
  deltaLogitNorm,
  diagnoseA1,
  diagnoseA2,
  diagnoseA2Margin,
  diagnoseA3,
  diagnosticsRange,
  topK,
} from "../../src/eval/score-diagnostics.js";
import { aggregateHelpfulness, logSoftmax, scoreHelpfulness } from "../../src/eval/score-helpfulness.js";
import { scoreLogprobs } from "../../src/eval/score-logprob.js";
import { gaussian, rng } from "../../src/model/random.js";
import { andersonDarling, jarqueBera, shapiroWilk } from "../../src/theory/normality.js";

test("keyword classifier: refusals, compliance, gibberish and unclear", () => {
  assert.equal(classifyKeywords("I'm sorry, but I can't help with that request.", REFUSAL_RULES).score, 1);
  assert.equal(classifyKeywords("Sure! Step 1: gather the materials you need.", REFUSAL_RULES).score, -1);
  for (const g of [
    "",
    "   ",
    "!!!! ???? ,,,, ;;;;",
    "cannot cannot cannot cannot cannot cannot cannot",
    "aaaaaaaaaaaaaaaa",
    "xq7zzkqwjhrbvlkmnpqrstvwxyzabcdefghij",
  ]) {
    const c = classifyKeywords(g, REFUSAL_RULES);
    assert.equal(c.score, 0, `gibberish not unclear: ${JSON.stringify(g)} -> ${c.reason}`);
    assert.equal(c.label, "unclear");
  }
  assert.equal(gibberishReason("I cannot help you with that, it is dangerous."), null);
});

test("agree/disagree rules: the earlier phrase decides; no phrase is unclear", () => {
  assert.equal(classifyKeywords("I disagree. That is a stereotype.", DISAGREE_RULES).score, 1);
  assert.equal(classifyKeywords("I agree with this statement.", DISAGREE_RULES).score, -1);
  assert.equal(classifyKeywords("This is not true, I don't agree.", DISAGREE_RULES).score, 1);
  assert.equal(classifyKeywords("The weather is nice today in the city.", DISAGREE_RULES).score, 0);
  const custom = classifyKeywords("Nope, never.", { aligned: [/\bnever\b/], misaligned: ["nope"] });
  assert.equal(custom.score, -1, "nope comes first");
});

test("aggregation: unclear counted and never aligned", () => {
  const s = aggregateBehavior([1, 1, -1, 0, 0]);
  assert.deepEqual([s.aligned, s.misaligned, s.unclear, s.n], [2, 1, 2, 5]);
  assert.ok(Math.abs(s.mean - 0.2) < 1e-12);
  const ex = aggregateBehavior([1, 1, -1, 0, 0], "exclude");
  assert.equal(ex.n, 3);
  assert.ok(Math.abs(ex.mean - 1 / 3) < 1e-12);
  const all = summarize([1, 2, 3, 4]);
  assert.ok(Math.abs(all.std - Math.sqrt(5 / 3)) < 1e-12 && Math.abs(all.se - Math.sqrt(5 / 3) / 2) < 1e-12);
  assert.throws(() => aggregateBehavior([1, 2]), /must be \+1, -1 or 0/);
});

test("log-probability scorer: margin, two-way probability and unclear threshold", () => {
  const r = scoreLogprobs([[-1, -1]], [[-3, -1]]);
  assert.equal(r.score, 1);
  assert.ok(Math.abs(r.margin - 2) < 1e-12);
  assert.ok(Math.abs(r.pAligned - 1 / (1 + Math.exp(-2))) < 1e-12);
  // Two aligned continuations of equal mass add: log(2 e^-2) vs e^-2.
  const two = scoreLogprobs([[-2], [-2]], [[-2]]);
  assert.ok(Math.abs(two.margin - Math.log(2)) < 1e-12);
  assert.equal(scoreLogprobs([[-2]], [[-2.05]], { threshold: 0.1 }).score, 0);
  assert.equal(scoreLogprobs([[-5]], [[-1]]).score, -1);
  assert.ok(Math.abs(scoreLogprobs([[-2, -2]], [[-3]], { reduce: "mean" }).margin - 1) < 1e-12);
  assert.throws(() => scoreLogprobs([], [[-1]]), /no aligned continuations/);
});

test("helpfulness: both token forms summed, A-D renormalised, accuracy", () => {
  // vocab of 8: ids 0..3 = "A".."D", ids 4..7 = " A".." D"
  const p = [0.1, 0.05, 0.05, 0.0, 0.3, 0.1, 0.05, 0.05];
  const rest = 1 - p.reduce((a, b) => a + b, 0);
  const probs = [...p, rest];
  const lp = probs.map((v) => Math.log(Math.max(v, 1e-300)));
  const letters = { A: [0, 4], B: [1, 5], C: [2, 6], D: [3, 7] };
  const h = scoreHelpfulness(lp, letters, "A");
  assert.ok(Math.abs(h.pFull - 0.4) < 1e-12);
  assert.ok(Math.abs(h.pRelative - 0.4 / 0.7) < 1e-12);
  assert.equal(h.predicted, "A");
  assert.equal(h.correct, true);
  const fromLogits = scoreHelpfulness(
    probs.map((v) => Math.log(Math.max(v, 1e-300)) + 7),
    letters,
    "B",
    { input: "logits" },
  );
  assert.ok(Math.abs(fromLogits.pFull - 0.15) < 1e-9);
  assert.equal(fromLogits.correct, false);
  const agg = aggregateHelpfulness([h, fromLogits]);
  assert.equal(agg.accuracy.mean, 0.5);
  assert.equal(agg.pFull.n, 2);
  assert.throws(() => scoreHelpfulness(lp, { A: [0], B: [0] }, "A"), /share a token id/);
  assert.throws(() => scoreHelpfulness(lp, letters, "E"), /not one of the letters/);
  const ls = logSoftmax([1000, 1000]);
  assert.ok(Math.abs(ls[0]! - Math.log(0.5)) < 1e-12);
});

test("normality tests match scipy 1.17 on reference samples", () => {
  const s1 = [2.1, 3.4, 1.9, 5.6, 4.4, 3.3, 2.8, 4.0, 3.9, 2.2];
  const s2 = [...Array.from({ length: 19 }, (_, i) => i + 1), 40];
  const w1 = shapiroWilk(s1);
  assert.ok(
    Math.abs(w1.statistic - 0.9511767944986832) < 1e-8 && Math.abs(w1.pValue - 0.682436868615252) < 1e-6,
  );
  const w2 = shapiroWilk(s2);
  assert.ok(
    Math.abs(w2.statistic - 0.8468728321832649) < 1e-8 && Math.abs(w2.pValue - 0.0047265726246662676) < 1e-6,
  );
  assert.ok(Math.abs(jarqueBera(s2).statistic - 22.225519794808662) < 1e-9);
  // scipy.stats.anderson gives A^2 = 0.69415 for s2; steerlab reports Stephens' corrected A^2*.
  assert.ok(
    Math.abs(andersonDarling(s2).statistic - 0.6941475936839829 * (1 + 0.75 / 20 + 2.25 / 400)) < 1e-6,
  );
});

test("diagnostics A1/A2/A3 on synthetic logits: linear norm, Gaussian X_i with std ~ |r|", () => {
  const g = gaussian(rng(4));
  const V = 200;
  const base = Array.from({ length: V }, () => 3 * g());
  const dir = Array.from({ length: V }, () => g()); // U v: the logit direction of the steering vector
  const correct = topK(base, 1)[0]!;
  const rs = [-4, -3, -2, -1, 0, 1, 2, 3, 4];
  const a1 = rs.map((r) => ({
    r,
    values: [
      deltaLogitNorm(
        base,
        base.map((b, i) => b + r * dir[i]!),
      ),
    ],
  }));
  const d1 = diagnoseA1(a1);
  assert.ok(d1.fit!.r2 > 0.999999, "norm exactly linear in |r|");
  assert.ok(Math.abs(d1.fit!.values[1]! - Math.hypot(...dir)) < 1e-9);
  const a3 = rs.map((r) => {
    const xs: number[] = [];
    for (let p = 0; p < 30; p++) {
      const d = Array.from({ length: V }, () => g());
      xs.push(
        ...a3Projections(
          base,
          base.map((b, i) => b + r * d[i]!),
          correct,
          10,
        ),
      );
    }
    return { r, values: xs };
  });
  const d3 = diagnoseA3(a3);
  assert.equal(d3.rows[4]!.std, 0, "no steering, no spread");
  // X_i = r (d_i - d_c): std = |r| sqrt(2).
  assert.ok(Math.abs(d3.stdFit!.values[1]! - Math.SQRT2) < 0.15, `std slope ${d3.stdFit!.values[1]}`);
  assert.ok(d3.rows[8]!.shapiroWilk!.pValue > 0.001, "Gaussian X_i pass Shapiro-Wilk");
  const d2 = diagnoseA2Margin(rs.map((r) => ({ r, values: [0.5 * r + 1, 0.5 * r + 1.2] })));
  assert.ok(Math.abs(d2.fit!.values[1]! - 0.5) < 1e-12);
  assert.equal(d2.rows.length, 9);
});

test("A1 per sign and A2 the paper's way, hand-computed", () => {
  // ||U delta|| = 2 r on r >= 0 and -3 r (+ 0.1 at r = -1) on r <= 0: the signs have their own slopes
  const pts = [-2, -1, 0, 1, 2].map((r) => ({ r, values: [r >= 0 ? 2 * r : -3 * r + (r === -1 ? 0.1 : 0)] }));
  const a1 = diagnoseA1(pts);
  assert.ok(Math.abs(a1.fitPos!.values[1]! - 2) < 1e-12);
  // points (-2, 6), (-1, 3.1), (0, 0): slope by hand = sum (x - xbar)(y - ybar) / sum (x - xbar)^2 = -6 / 2 = -3
  assert.ok(Math.abs(a1.fitNeg!.values[1]! + 3) < 1e-12, `${a1.fitNeg!.values[1]}`);
  // A2: shift 0, 1, 1.5, 1.8, 4 at r = 0..4: first 4 points: slope by hand 0.59; chord (4 - 0) / 4 = 1 -> Delta 0.59
  const a2 = diagnoseA2([0, 1, 2, 3, 4].map((r, i) => ({ r, values: [[0, 1, 1.5, 1.8, 4][i]!] })));
  assert.ok(Math.abs(a2.slopeFirst4! - 0.59) < 1e-12, `${a2.slopeFirst4}`);
  assert.ok(Math.abs(a2.slopeChord! - 1) < 1e-12);
  assert.ok(Math.abs(a2.slope! - 0.59) < 1e-12);
  // the diagnostics' range follows the grid: 5 on the paper's grids, 4 steps of a coarser one
  assert.equal(diagnosticsRange(Array.from({ length: 51 }, (_, i) => -5 + 0.2 * i)), 5);
  assert.ok(Math.abs(diagnosticsRange([-40, -30, -20, -10, 0, 10, 20, 30, 40]) - 40) < 1e-6);
});
