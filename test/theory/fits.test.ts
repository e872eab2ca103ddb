import assert from "node:assert/strict";
import { test } from "node:test";
import { gaussian, rng } from "../../src/model/random.js";
import { fitCorollary, fitLocalLinear, fitLocalQuadratic, fitTanh, predict } from "../../src/theory/laws.js";
import { fitNonlinear } from "../../src/theory/lsq.js";
import { normalQuantile, tQuantile } from "../../src/theory/stats.js";

const grid = (lo: number, hi: number, step: number) =>
  Array.from({ length: Math.round((hi - lo) / step) + 1 }, (_, i) => lo + i * step);

function noisy(f: (r: number) => number, xs: number[], sd: number, seed: number): number[] {
  const g = gaussian(rng(seed));
  return xs.map((x) => f(x) + sd * g());
}

function within(
  fit: { names: readonly string[]; ci: readonly (readonly [number, number])[] },
  truth: number[],
) {
  fit.names.forEach((n, i) => {
    const [lo, hi] = fit.ci[i]!;
    assert.ok(truth[i]! >= lo && truth[i]! <= hi, `${n}: true ${truth[i]} outside CI [${lo}, ${hi}]`);
  });
}

test("t and normal quantiles match tables", () => {
  assert.ok(Math.abs(tQuantile(0.975, 10) - 2.228139) < 1e-5);
  assert.ok(Math.abs(tQuantile(0.975, 1) - 12.7062) < 1e-3);
  assert.ok(Math.abs(tQuantile(0.975, 1e9) - 1.959964) < 1e-4);
  assert.ok(Math.abs(normalQuantile(0.975) - 1.959964) < 1e-6);
});

test("tanh fit recovers a and b0 within its 95% CIs from a noisy curve", () => {
  const xs = grid(-5, 5, 0.2);
  const ys = noisy((r) => Math.tanh(0.8 * r - 0.4), xs, 0.05, 7);
  const f = fitTanh(xs, ys);
  assert.equal(f.sign, 1);
  assert.ok(f.converged);
  within(f, [0.8, -0.4]);
  assert.ok(f.r2 > 0.97);
  assert.ok(f.se[0]! > 0 && f.se[0]! < 0.1);
});

test("tanh fit negates a curve that starts positive and predict() gives the curve back", () => {
  const xs = grid(-3, 5, 0.2);
  const ys = noisy((r) => -Math.tanh(1.3 * r - 2), xs, 0.03, 3);
  const f = fitTanh(xs, ys);
  assert.equal(f.sign, -1);
  within(f, [1.3, -2]);
  assert.ok(Math.abs(predict(f, 1) - -Math.tanh(1.3 - 2)) < 0.05);
});

test("weighted fits use 1/sigma^2 and their CIs cover the truth", () => {
  const xs = grid(-5, 5, 0.25);
  const sigma = xs.map((x) => 0.01 + (0.04 * Math.abs(x)) / 5);
  const g = gaussian(rng(11));
  const ys = xs.map((x, i) => Math.tanh(0.5 * x + 0.2) + sigma[i]! * g());
  const f = fitTanh(xs, ys, { sigma });
  assert.ok(f.weighted);
  within(f, [0.5, 0.2]);
});

test("Corollary-1 fits (full vocabulary and A-D) recover a and b", () => {
  const xs = grid(-10, 10, 0.5);
  const full = noisy((r) => 1 / (1 + 1.5 + 1.5 * (0.7 ** 2 / 2) * r * r), xs, 0.01, 5);
  const f = fitCorollary(xs, full, "corollary-full");
  within(f, [1.5, 0.7]);
  assert.ok(f.r2 > 0.98);
  const ad = noisy((r) => 0.5 / (1 + 0.4 + 0.4 * (1.1 ** 2 / 2) * r * r) + 0.25, xs, 0.01, 9);
  const g = fitCorollary(xs, ad, "corollary-ad");
  within(g, [0.4, 1.1]);
  assert.ok(Math.abs(predict(g, 100) - 0.25) < 1e-3, "A-D law tends to chance");
});

test("local linear and quadratic fits near 0 recover slope and curvature", () => {
  const xs = grid(-5, 5, 0.1);
  const lin = fitLocalLinear(
    xs,
    noisy((r) => 0.1 + 0.3 * r, xs, 0.02, 1),
  );
  assert.equal(lin.n, 21); // |r| <= 1
  within(lin, [0.1, 0.3]);
  const quad = fitLocalQuadratic(
    xs,
    noisy((r) => 0.4 + 0.01 * r - 0.02 * r * r, xs, 0.005, 2),
    { confidence: 0.99 },
  );
  assert.equal(quad.range[0], -2.5);
  within(quad, [0.4, 0.01, -0.02]);
});

test("95% intervals cover the true parameters about 95% of the time (200 noisy curves)", () => {
  const xs = grid(-3, 3, 0.25);
  let coverQuad = 0;
  let coverTanh = 0;
  const trials = 200;
  for (let s = 0; s < trials; s++) {
    const q = fitLocalQuadratic(
      xs,
      noisy((r) => 0.4 - 0.02 * r * r, xs, 0.01, 100 + s),
    );
    const [lo, hi] = q.ci[2]!;
    if (-0.02 >= lo && -0.02 <= hi) coverQuad++;
    const t = fitTanh(
      xs,
      noisy((r) => Math.tanh(0.7 * r - 0.3), xs, 0.05, 900 + s),
    );
    if (0.7 >= t.ci[0]![0] && 0.7 <= t.ci[0]![1]) coverTanh++;
  }
  assert.ok(
    coverQuad / trials > 0.9 && coverQuad / trials < 0.99,
    `quadratic c2 coverage ${coverQuad / trials}`,
  );
  assert.ok(coverTanh / trials > 0.9 && coverTanh / trials < 0.99, `tanh a coverage ${coverTanh / trials}`);
});

test("an exact linear model is solved exactly by LM and by the linear solver", () => {
  const xs = [0, 1, 2, 3, 4];
  const ys = xs.map((x) => 2 + 3 * x);
  const lm = fitNonlinear({ kind: "line", names: ["c", "m"], f: (x, [c, m]) => c! + m! * x }, xs, ys, [0, 0]);
  assert.ok(Math.abs(lm.values[0]! - 2) < 1e-8 && Math.abs(lm.values[1]! - 3) < 1e-8);
  assert.ok(Math.abs(lm.r2 - 1) < 1e-12);
});

test("fits refuse too few or non-finite points with a SteerlabError", () => {
  assert.throws(() => fitTanh([0, 1], [0, 1]), /fewer than 3 points/);
  assert.throws(() => fitLocalLinear([0, 0.5, Number.NaN], [0, 1, 2]), /not finite/);
  assert.throws(() => fitLocalLinear([0, 0.5, 1], [0, Number.NaN, 2]), /not finite/);
});
