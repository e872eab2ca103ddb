import assert from "node:assert/strict";
import { test } from "node:test";
import { isSteerlabError } from "../../src/errors.js";
import { TINY_CONFIGS } from "../../src/model/random.js";
import { applyRope, ropeInvFreq, ropeTable } from "../../src/model/rope.js";

const close = (a: number, b: number, rel = 1e-6) =>
  Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b), 1e-30);

test("unscaled inverse frequencies are theta^(-2i/hd)", () => {
  const inv = ropeInvFreq({ headDim: 8, ropeTheta: 10000, ropeScaling: null });
  assert.deepEqual(
    [...inv].map((v) => +v.toPrecision(6)),
    [1, 0.1, 0.01, 0.001],
  );
});

test("linear scaling divides every frequency by the factor", () => {
  const a = ropeInvFreq({ headDim: 16, ropeTheta: 10000, ropeScaling: null });
  const b = ropeInvFreq({ headDim: 16, ropeTheta: 10000, ropeScaling: { type: "linear", factor: 4 } });
  for (let i = 0; i < a.length; i++) assert.ok(close(b[i]!, a[i]! / 4), `i=${i}`);
});

test("llama3 scaling (Llama-3.1-8B settings): high band kept, low band / factor, middle band interpolated", () => {
  const s = {
    type: "llama3" as const,
    factor: 8,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositions: 8192,
  };
  const hd = 128;
  const inv = ropeInvFreq({ headDim: hd, ropeTheta: 500000, ropeScaling: s });
  let kept = 0;
  let divided = 0;
  let mixed = 0;
  for (let i = 0; i < hd / 2; i++) {
    const f = 500000 ** (-(2 * i) / hd);
    const period = (2 * Math.PI) / f; // tokens per full turn
    let want: number;
    if (period < 8192 / 4) {
      want = f;
      kept++;
    } else if (period > 8192 / 1) {
      want = f / 8;
      divided++;
    } else {
      // Linear in (original context / period) between the two band edges.
      const alpha = (8192 / period - 1) / (4 - 1);
      want = f / 8 + alpha * (f - f / 8);
      mixed++;
    }
    assert.ok(close(inv[i]!, want, 2e-6), `i=${i}: ${inv[i]} vs ${want}`);
  }
  assert.ok(kept > 0 && divided > 0 && mixed > 0, `bands ${kept}/${mixed}/${divided}`);
  assert.ok(close(inv[0]!, 1));
  assert.ok(close(inv[63]!, 500000 ** (-126 / 128) / 8, 2e-6));
});

test("the tiny llama3 config exercises all three llama3 bands", () => {
  const c = TINY_CONFIGS.llama3!;
  const plain = ropeInvFreq({ ...c, ropeScaling: null });
  const scaled = ropeInvFreq(c);
  const ratios = [...scaled].map((v, i) => v / plain[i]!);
  assert.ok(ratios.some((r) => close(r, 1)));
  assert.ok(ratios.some((r) => close(r, 1 / 8)));
  assert.ok(ratios.some((r) => r > 1 / 8 + 1e-3 && r < 1 - 1e-3));
});

test("rotate_half layout: pair i is (x[i], x[i + hd/2]) turned by pos * invFreq[i]", () => {
  const c = { headDim: 8, ropeTheta: 100, ropeScaling: null };
  const t = ropeTable(c, 10);
  const inv = ropeInvFreq(c);
  const x = new Float32Array([0, 1, 0, 0, 0, 0, 0, 0]);
  applyRope(x, 0, 7, t);
  const a = 7 * inv[1]!;
  assert.ok(close(x[1]!, Math.cos(a), 1e-6));
  assert.ok(close(x[5]!, Math.sin(a), 1e-6));
  assert.equal(x[0], 0);
  assert.equal(x[4], 0);
  assert.throws(
    () => applyRope(x, 0, 10, t),
    (e) => isSteerlabError(e, "bad_input"),
  );
});

test("q.k after RoPE depends only on the distance between positions", () => {
  const c = TINY_CONFIGS.llama3!;
  const t = ropeTable(c, c.maxPositions);
  const q0 = Float32Array.from({ length: c.headDim }, (_, i) => Math.sin(i + 1));
  const k0 = Float32Array.from({ length: c.headDim }, (_, i) => Math.cos(3 * i));
  const dot = (pq: number, pk: number) => {
    const q = Float32Array.from(q0);
    const k = Float32Array.from(k0);
    applyRope(q, 0, pq, t);
    applyRope(k, 0, pk, t);
    return q.reduce((s, v, i) => s + v * k[i]!, 0);
  };
  assert.ok(Math.abs(dot(5, 2) - dot(105, 102)) < 1e-4);
  assert.ok(Math.abs(dot(5, 2) - dot(5, 4)) > 1e-3);
});

test("bad rope settings are config errors", () => {
  assert.throws(
    () => ropeInvFreq({ headDim: 7, ropeTheta: 10000, ropeScaling: null }),
    (e) => isSteerlabError(e, "bad_config"),
  );
  assert.throws(
    () =>
      ropeInvFreq({
        headDim: 8,
        ropeTheta: 10000,
        ropeScaling: {
          type: "llama3",
          factor: 8,
          lowFreqFactor: 4,
          highFreqFactor: 4,
          originalMaxPositions: 64,
        },
      }),
    (e) => isSteerlabError(e, "bad_config"),
  );
});
