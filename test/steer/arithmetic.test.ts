import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isSteerlabError } from "../../src/errors.js";
import { negate, normalize, orthogonalize, scale, selectLayers, sum } from "../../src/steer/arithmetic.js";
import { makeVector } from "../../src/steer/vector.js";

const f = (...x: number[]) => Float32Array.from(x);
const a = makeVector(
  new Map([
    [1, f(1, 0, 0)],
    [2, f(0, 3, 4)],
  ]),
  { method: "a", scale: "unit" },
);
const b = makeVector(
  new Map([
    [2, f(0, 1, 0)],
    [3, f(1, 1, 1)],
  ]),
  { method: "b" },
);

describe("vector arithmetic", () => {
  it("sum and weighted sum over the union of layers", () => {
    const s = sum([a, b], [2, -1]);
    assert.deepEqual(s.directions.get(1), f(2, 0, 0));
    assert.deepEqual(s.directions.get(2), f(0, 5, 8));
    assert.deepEqual(s.directions.get(3), f(-1, -1, -1));
    assert.equal(s.scale, "raw");
    assert.match(s.method, /2\*a \+ -1\*b/);
  });

  it("scale, negate; v - v is exactly zero", () => {
    assert.deepEqual(scale(a, 0.5).directions.get(2), f(0, 1.5, 2));
    const n = negate(a);
    assert.deepEqual(n.directions.get(1), f(-1, -0, -0));
    assert.equal(n.scale, "unit");
    assert.match(n.signConvention, /negated/);
    const z = sum([a, n]);
    for (const d of z.directions.values())
      assert.ok(
        d.every((x) => x === 0),
        "v - v = 0",
      );
  });

  it("orthogonalise per layer; layers only in the first are kept", () => {
    const o = orthogonalize(a, b);
    assert.deepEqual(o.directions.get(2), f(0, 0, 4));
    assert.deepEqual(o.directions.get(1), f(1, 0, 0));
    assert.equal(o.directions.has(3), false);
    const dotp = [...o.directions.get(2)!].reduce((s, x, j) => s + x * b.directions.get(2)![j]!, 0);
    assert.equal(dotp, 0);
  });

  it("normalise and select layers (list, negative, spec)", () => {
    const n = normalize(b);
    assert.ok(Math.abs(Math.hypot(...n.directions.get(3)!) - 1) < 1e-6, "unit");
    assert.equal(n.scale, "unit");
    assert.deepEqual([...selectLayers(a, [2]).directions.keys()], [2]);
    assert.deepEqual([...selectLayers(a, [-2], 4).directions.keys()], [2]);
    assert.deepEqual([...selectLayers(a, "1..2", 4).directions.keys()], [1, 2]);
    assert.throws(
      () => selectLayers(a, [3]),
      (e) => isSteerlabError(e, "bad_input") && /layer\(s\) 3/.test(e.message),
    );
  });

  it("refuses to combine vectors of other sizes or sites", () => {
    const wide = makeVector(new Map([[1, f(1, 2, 3, 4)]]));
    const pre = makeVector(new Map([[1, f(1, 2, 3)]]), { site: "resid_pre" });
    assert.throws(
      () => sum([a, wide]),
      (e) => isSteerlabError(e, "mismatch") && /hidden size 3 vs 4/.test(e.message),
    );
    assert.throws(() => orthogonalize(a, pre), /site resid_post vs resid_pre/);
  });
});
