/**
 * Fits on a grid other than the paper's (r_e = -40..40 step 10, as on the demo models): every law is fitted,
 * each on its own, and equals scipy. The scipy values below were computed once with scipy 1.17:
 *   tanh:      curve_fit(lambda x, a, b0: tanh(a x + b0), x, B, p0=[0.05, 0])
 *   Corollary: curve_fit(f, x, y, p0=[1, 1], bounds=([0, 0], [inf, inf]))   (a, b >= 0, as the authors)
 *   local:     numpy.polyfit on |r| <= 20 (linear) and |r| <= 30 (quadratic): the default windows on this grid
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { fitCurve, localHalfWidths } from "../../src/theory/curves.js";
import { fitLocalLinear } from "../../src/theory/laws.js";
import { fitNonlinear, param } from "../../src/theory/lsq.js";

const r = [-40, -30, -20, -10, 0, 10, 20, 30, 40];
const B = [-0.97, -0.9, -0.62, -0.31, 0.05, 0.41, 0.7, 0.88, 0.95];
const P = [0.31, 0.55, 0.74, 0.83, 0.86, 0.82, 0.71, 0.52, 0.28];
const AD = [0.41, 0.58, 0.71, 0.79, 0.8, 0.78, 0.72, 0.6, 0.44]; // above the A-D law's ceiling 0.75 near 0

const near = (got: number, want: number, tol: number, what: string) =>
  assert.ok(Math.abs(got - want) <= tol * Math.max(1, Math.abs(want)), `${what}: got ${got}, want ${want}`);

describe("fits on a coarse grid (-40..40 step 10)", () => {
  test("local windows scale to the grid: the paper's on its grids, kept within 2 (3) to 5 grid steps", () => {
    assert.deepEqual(localHalfWidths(r), { linear: 20 * (1 + 1e-9), quadratic: 30 * (1 + 1e-9) });
    const paperB = Array.from({ length: 51 }, (_, i) => -5 + 0.2 * i);
    const paperP = Array.from({ length: 41 }, (_, i) => -10 + 0.5 * i);
    assert.ok(Math.abs(localHalfWidths(paperB).linear - 1) < 1e-8);
    assert.ok(Math.abs(localHalfWidths(paperP).quadratic - 2.5) < 1e-8);
    // a fine grid in other units (r_e relative to the residual norm): at most 5 steps either side
    const fine = Array.from({ length: 21 }, (_, i) => -0.5 + 0.05 * i);
    assert.ok(Math.abs(localHalfWidths(fine).linear - 0.25) < 1e-8);
    assert.ok(Math.abs(localHalfWidths(fine).quadratic - 0.25) < 1e-8);
  });

  test("behaviour: tanh and local linear equal scipy", () => {
    const f = fitCurve({ name: "B", kind: "behavior", r, value: B });
    assert.deepEqual(f.failed, []);
    near(param(f.law!, "a"), 0.04174686, 1e-6, "a");
    near(param(f.law!, "b0"), 0.05340861, 1e-6, "b0");
    near(f.law!.r2, 0.9976869203648074, 1e-9, "tanh R^2");
    const lin = f.local[0]!;
    assert.deepEqual(lin.range, [-20, 20]);
    near(param(lin, "c0"), 0.046, 1e-12, "c0");
    near(param(lin, "c1"), 0.0336, 1e-12, "c1");
    near(lin.r2, 0.9986201040229276, 1e-9, "linear R^2");
  });

  test("helpfulness: Corollary 1 (bounded) and local quadratic equal scipy", () => {
    const f = fitCurve({ name: "P", kind: "helpfulness-full", r, value: P });
    assert.deepEqual(f.failed, []);
    near(param(f.law!, "a"), 0.10411882, 1e-5, "a");
    near(param(f.law!, "b"), 0.13764313, 1e-5, "b");
    near(f.law!.r2, 0.9372268968357998, 1e-7, "Corollary R^2");
    const q = f.local[0]!;
    assert.deepEqual(q.range, [-30, 30]);
    near(param(q, "c0"), 0.863333333333, 1e-9, "c0");
    near(param(q, "c1"), -5.71428571e-4, 1e-9, "c1");
    near(param(q, "c2"), -3.61904762e-4, 1e-9, "c2");
    near(q.r2, 0.9986282578875172, 1e-9, "quadratic R^2");
  });

  test("A-D data above 0.75: a is driven to its bound 0, the ceiling and b's identifiability are stated", () => {
    const f = fitCurve({ name: "AD", kind: "helpfulness-ad", r, value: AD });
    const law = f.law!;
    assert.ok(param(law, "a") >= 0 && param(law, "a") < 1e-4, `a = ${param(law, "a")}`); // scipy: 1.5e-5
    assert.ok(param(law, "b") >= 0);
    near(law.r2, 0.8184662702936505, 1e-4, "R^2 (scipy 0.818466 on the same flat ridge)");
    assert.ok(
      law.notes?.some((n) => /3 of 9 points lie above 0\.75/.test(n)),
      String(law.notes),
    );
    assert.ok(
      law.notes?.some((n) => /b/.test(n) && /identif/.test(n)),
      String(law.notes),
    );
    assert.equal(f.local.length, 1); // the quadratic is fitted regardless
  });

  test("one law failing never removes another: too few points for the local fit, the global law still fits", () => {
    const f = fitCurve({ name: "P", kind: "helpfulness-full", r, value: P }, { quadraticHalfWidth: 5 });
    assert.equal(f.law?.kind, "corollary-full");
    assert.equal(f.local.length, 0);
    assert.equal(f.failed[0]?.kind, "poly2");
  });

  test("constant data: R^2 is undefined (NaN), never 1", () => {
    const lin = fitLocalLinear([-1, 0, 1, 2], [1, 1, 1, 1], { halfWidth: 5 });
    assert.ok(Number.isNaN(lin.r2));
  });

  test("weights: a zero-spread point weighs as much as the best-measured one, not 1e6 times more", () => {
    const model = { kind: "line", names: ["c"], f: (_x: number, p: readonly number[]) => p[0]! };
    // mean of y weighted by 1/max(sigma, 0.1)^2: (1 * 100 + 0 * 100 + 0 * 25) / 225
    const f = fitNonlinear(model, [0, 1, 2], [1, 0, 0], [0.5], { sigma: [0, 0.1, 0.2] });
    near(param(f, "c"), 100 / 225, 1e-9, "weighted mean");
  });
});
