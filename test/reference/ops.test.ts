import assert from "node:assert/strict";
import { test } from "node:test";
import { rng } from "../../src/model/random.js";
import {
  geluTanhInPlace,
  layernorm,
  linear,
  matmul,
  rmsnorm,
  siluInPlace,
  softmaxInPlace,
} from "../../src/reference/ops.js";

const u = rng(3);
const rand = (n: number) => Float32Array.from({ length: n }, () => u() * 2 - 1);
const near = (a: number, b: number, tol = 1e-6) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

test("matmul (i-k-j) and linear (x W^T + b) agree with the textbook sums", () => {
  const [m, k, n] = [3, 5, 4];
  const a = rand(m * k);
  const b = rand(k * n);
  const c = new Float32Array(m * n);
  matmul(c, a, b, m, k, n);
  const wT = new Float32Array(n * k); // [n, k] = b^T
  for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) wT[j * k + p] = b[p * n + j]!;
  const bias = rand(n);
  const y = new Float32Array(m * n);
  linear(y, a, wT, bias, m, k, n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[i * k + p]! * b[p * n + j]!;
      near(c[i * n + j]!, s);
      near(y[i * n + j]!, s + bias[j]!);
    }
  }
});

test("rmsnorm and layernorm normalise each row", () => {
  const x = new Float32Array([1, 2, 3, 4, -2, 0, 2, 4]);
  const w = new Float32Array([1, 2, 1, 1]);
  const y = new Float32Array(8);
  rmsnorm(y, x, w, 2, 4, 0);
  const r = Math.sqrt((1 + 4 + 9 + 16) / 4);
  near(y[0]!, 1 / r);
  near(y[1]!, (2 * 2) / r);
  layernorm(y, x, w, new Float32Array([0, 0, 0, 0.5]), 2, 4, 0);
  // row 2: mean 1, variance (9 + 1 + 1 + 9) / 4 = 5
  near(y[4]!, -3 / Math.sqrt(5));
  near(y[7]!, 3 / Math.sqrt(5) + 0.5);
});

test("activations: silu and tanh-GELU at known points", () => {
  const s = new Float32Array([0, 1, -1]);
  siluInPlace(s);
  near(s[1]!, 1 / (1 + Math.exp(-1)));
  near(s[2]!, -1 / (1 + Math.exp(1)));
  const g = new Float32Array([0, 1, -3]);
  geluTanhInPlace(g);
  near(g[0]!, 0);
  near(g[1]!, 0.8411920071, 1e-6);
  near(g[2]!, -0.0036374286, 1e-6);
});

test("softmax is stable, masks -inf, and zeroes an all-masked row", () => {
  const x = new Float32Array([1000, 1001, Number.NEGATIVE_INFINITY, 0, Number.NEGATIVE_INFINITY]);
  softmaxInPlace(x, 0, 3);
  near(x[0]! + x[1]!, 1);
  near(x[1]! / x[0]!, Math.E, 1e-5);
  assert.equal(x[2], 0);
  const y = new Float32Array([Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY]);
  softmaxInPlace(y, 0, 2);
  assert.deepEqual([...y], [0, 0]);
});
