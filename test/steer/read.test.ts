import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isSteerlabError } from "../../src/errors.js";
import type { HookContext } from "../../src/model/engine.js";
import { activationReader, formatReadPosition, parseReadPosition, readRows } from "../../src/steer/read.js";

const D = 2;
// row 0: 2 padding tokens then 3 real ones; row 1: 5 real tokens. hidden[b][t] = [10 b + t, -(10 b + t)]
function ctx(layer = 3): HookContext {
  const positions = Int32Array.from([-1, -1, 0, 1, 2, 0, 1, 2, 3, 4]);
  const hidden = new Float32Array(2 * 5 * D);
  for (let b = 0; b < 2; b++) {
    for (let t = 0; t < 5; t++) {
      hidden[(b * 5 + t) * D] = 10 * b + t;
      hidden[(b * 5 + t) * D + 1] = -(10 * b + t);
    }
  }
  return { point: { layer, site: "resid_post" }, hidden, batch: 2, seq: 5, dim: D, positions };
}

describe("read positions", () => {
  const cases: [string, number[]][] = [
    ["last", [4, 14]],
    ["index:-2", [3, 13]],
    ["mean-suffix:2", [3.5, 13.5]],
    ["mean", [3, 12]],
  ];
  for (const [spec, want] of cases) {
    it(`${spec} ignores left padding`, () => {
      const r = readRows(ctx(), parseReadPosition(spec));
      assert.deepEqual(
        [...r],
        want.flatMap((x) => [x, -x]),
      );
      assert.equal(formatReadPosition(parseReadPosition(spec)), spec);
    });
  }

  it("at: caller-given absolute positions per row; out-of-range is an error", () => {
    assert.deepEqual([...readRows(ctx(), parseReadPosition("at", [0, 3]))], [2, -2, 13, -13]);
    assert.throws(
      () => readRows(ctx(), parseReadPosition("index:-4")),
      (e) => isSteerlabError(e, "bad_input") && /outside row 0/.test(e.message),
    );
    assert.throws(() => parseReadPosition("index:0"), /bad read position/);
    assert.throws(() => parseReadPosition("at"), /needs the token positions/);
  });

  it("a reader appends rows per layer across calls and resets on take", () => {
    const r = activationReader([3, 5], "resid_post", { kind: "last" });
    assert.equal(r.maxLayer, 5);
    assert.deepEqual(
      r.hooks.map((h) => h.point.layer),
      [3, 5],
    );
    for (let call = 0; call < 2; call++) for (const h of r.hooks) h.fn(ctx(h.point.layer));
    const rows = r.take();
    assert.equal(rows.get(3)!.n, 4);
    assert.deepEqual([...rows.get(5)!.data], [4, -4, 14, -14, 4, -4, 14, -14]);
    assert.equal(r.take().get(3)!.n, 0);
  });
});
