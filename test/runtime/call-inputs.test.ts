import assert from "node:assert/strict";
import { test } from "node:test";
import { isSteerlabError } from "../../src/errors.js";
import { ropeInvFreq, ropeTable } from "../../src/model/rope.js";
import { additiveMask, checkBatch, MASKED, positionsFor, ropeRows } from "../../src/runtime/call-inputs.js";

test("positions count real tokens per row and continue across calls", () => {
  const next = new Int32Array([0, 0]);
  const m1 = [Uint8Array.from([1, 1, 1]), Uint8Array.from([0, 1, 1])];
  assert.deepEqual(Array.from(positionsFor(m1, 3, next)), [0, 1, 2, -1, 0, 1]);
  const m2 = [Uint8Array.from([1]), Uint8Array.from([0])];
  assert.deepEqual(Array.from(positionsFor(m2, 1, next)), [3, -1]);
  assert.deepEqual(Array.from(next), [4, 2]);
});

test("additive mask: past slots by their mask, spare slots hidden, new tokens causal, empty rows see themselves", () => {
  // One row, 2 cached tokens (the first is padding) in 4 slots, then 2 new tokens (the first is padding).
  const m = additiveMask([Uint8Array.from([0, 1])], [Uint8Array.from([0, 1])], 4, 2); // [1, 1, 2, 6]
  const X = MASKED;
  assert.deepEqual(Array.from(m), [X, 0, X, X, X, X, X, 0, X, X, X, 0]);
  // No past: a leading padding query sees only itself.
  const n = additiveMask([new Uint8Array(0)], [Uint8Array.from([0, 1])], 0, 2);
  assert.deepEqual(Array.from(n), [0, X, X, 0]);
});

test("rope rows equal rope.ts's tables: cos halves duplicated, sin as [-sin, sin], padding at position 0", () => {
  const cfg = {
    headDim: 4,
    ropeTheta: 500000,
    ropeScaling: {
      type: "llama3" as const,
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositions: 4,
    },
  };
  const t = ropeTable(cfg, 8);
  const { cos, sin } = ropeRows(Int32Array.from([3, -1]), ropeInvFreq(cfg), 8);
  assert.deepEqual(Array.from(cos.subarray(0, 4)), [t.cos[6]!, t.cos[7]!, t.cos[6]!, t.cos[7]!]);
  assert.deepEqual(Array.from(sin.subarray(0, 4)), [-t.sin[6]!, -t.sin[7]!, t.sin[6]!, t.sin[7]!]);
  assert.deepEqual(Array.from(cos.subarray(4)), [1, 1, 1, 1]);
  assert.throws(
    () => ropeRows(Int32Array.from([8]), ropeInvFreq(cfg), 8),
    (e) => isSteerlabError(e, "bad_input"),
  );
});

test("checkBatch rejects ragged rows, bad mask values and out-of-range ids; padding ids are not checked", () => {
  const ok = checkBatch(
    {
      ids: [
        [5, 1],
        [999, 2],
      ],
      mask: [
        [1, 1],
        [0, 1],
      ],
    },
    10,
  );
  assert.deepEqual(Array.from(ok.ids), [5n, 1n, 0n, 2n]);
  const bad = (e: unknown) => isSteerlabError(e, "bad_input");
  assert.throws(() => checkBatch({ ids: [[1, 2], [3]] }, 10), bad);
  assert.throws(() => checkBatch({ ids: [[1]], mask: [[2]] }, 10), bad);
  assert.throws(() => checkBatch({ ids: [[10]] }, 10), bad);
  assert.throws(() => checkBatch({ ids: [] }, 10), bad);
});
