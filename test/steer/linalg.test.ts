import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { gaussian, rng } from "../../src/model/random.js";
import { firstPc, gram, jacobiEigen, topEigen } from "../../src/steer/linalg.js";

/** Q diag(values) Q^T with a seeded random orthogonal Q (Gram-Schmidt): [n, n], and Q's columns. */
function withSpectrum(values: number[], seed: number) {
  const n = values.length;
  const g = gaussian(rng(seed));
  const cols: Float64Array[] = [];
  for (let c = 0; c < n; c++) {
    const v = Float64Array.from({ length: n }, () => g());
    for (const u of cols) {
      const d = v.reduce((s, x, i) => s + x * u[i]!, 0);
      for (let i = 0; i < n; i++) v[i]! -= d * u[i]!;
    }
    const nv = Math.hypot(...v);
    cols.push(v.map((x) => x / nv));
  }
  const s = new Float64Array(n * n);
  for (let c = 0; c < n; c++)
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) s[i * n + j]! += values[c]! * cols[c]![i]! * cols[c]![j]!;
  return { s, cols };
}

describe("eigen solvers", () => {
  it("the blocked Gram matrix equals plain row dot products (full blocks and the tail)", () => {
    const g = gaussian(rng(9));
    const n = 13;
    const D = 7;
    const x = Float32Array.from({ length: n * D }, () => g());
    const G = gram({ data: x, n, dim: D });
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < n; k++) {
        let want = 0;
        for (let j = 0; j < D; j++) want += x[i * D + j]! * x[k * D + j]!;
        assert.ok(Math.abs(G[i * n + k]! - want) < 1e-9, `G[${i}, ${k}]`);
      }
    }
  });

  it("jacobiEigen diagonalises a small symmetric matrix", () => {
    const { s } = withSpectrum([5, 2, 1, 0.5], 1);
    const e = jacobiEigen(s, 4);
    assert.deepEqual(
      [...e.values].sort((a, b) => b - a).map((x) => Number(x.toFixed(9))),
      [5, 2, 1, 0.5],
    );
  });

  it("topEigen finds the top pair with a tiny eigengap, in far fewer products than power iteration needs", () => {
    const n = 150;
    const values = Array.from({ length: n }, (_, i) => (i === 0 ? 1 : 0.999 - i / (2 * n)));
    const { s, cols } = withSpectrum(values, 2);
    const e = topEigen(s, n);
    assert.equal(e.converged, true);
    assert.ok(Math.abs(e.value - 1) < 1e-9, `value ${e.value}`);
    const cos = Math.abs(e.vector.reduce((t, x, i) => t + x * cols[0]![i]!, 0));
    assert.ok(cos > 1 - 1e-6, `cos ${cos}`);
    // power iteration would need ~ log(1e-9) / log(0.999) = 20,000 products
    assert.ok(e.iterations < 2000, `products ${e.iterations}`);
  });

  it("reports non-convergence instead of returning a mixture silently, and handles S = 0", () => {
    const { s } = withSpectrum(
      Array.from({ length: 100 }, (_, i) => 1 - i * 1e-4),
      3,
    );
    assert.equal(topEigen(s, 100, { maxIterations: 20 }).converged, false);
    const z = topEigen(new Float64Array(9), 3);
    assert.equal(z.converged, true);
    assert.equal(z.value, 0);
  });

  it("firstPc gives the same direction through the Gram and the scatter matrix", () => {
    const g = gaussian(rng(4));
    const D = 12;
    const axis = Float64Array.from({ length: D }, (_, j) => (j === 3 ? 1 : 0));
    const make = (n: number) => {
      const x = new Float64Array(n * D);
      for (let i = 0; i < n; i++) {
        const a = 4 * g();
        for (let j = 0; j < D; j++) x[i * D + j] = a * axis[j]! + 0.1 * g();
      }
      return { data: x, n, dim: D };
    };
    const small = firstPc(make(8));
    const big = firstPc(make(40));
    assert.equal(small.via, "gram");
    assert.equal(big.via, "covariance");
    assert.ok(
      Math.abs(small.direction[3]!) > 0.99 && Math.abs(big.direction[3]!) > 0.99,
      "both find the axis",
    );
    assert.ok(small.explainedVariance > 0.9 && big.explainedVariance > 0.9, "dominant PC");
  });
});
