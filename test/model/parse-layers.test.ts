/** parseLayers: the layer lists of sweep/experiment configs and the library (the CLI checks its flags first). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseLayers } from "../../src/model/hooks.js";
import { spansFor } from "../../src/runtime/ort-engine.js";

test("parseLayers resolves negatives and ranges, and refuses a range that runs backwards", () => {
  assert.deepEqual(parseLayers("all", 3), [0, 1, 2]);
  assert.deepEqual(parseLayers("1..-1", 4), [1, 2, 3]);
  assert.deepEqual(parseLayers("-3..-2, 0", 4), [0, 1, 2]);
  assert.throws(
    () => parseLayers("3..1", 4),
    (e: Error) =>
      /layer range "3..1" runs backwards \(block 3 to block 1\)/.test(e.message) &&
      /e\.g\. "1..3"/.test(e.message),
  );
  // Mixed signs resolve first: -1..2 of 4 blocks is 3..2.
  assert.throws(() => parseLayers("-1..2", 4), /runs backwards \(block 3 to block 2\)/);
});

test("spansFor cuts the blocks around hook layers and names a bad hook layer once", () => {
  assert.deepEqual(spansFor([1], 4), [
    [0, 0],
    [1, 1],
    [2, 3],
  ]);
  assert.deepEqual(spansFor([], 4), [[0, 3]]);
  assert.deepEqual(spansFor([-1], 4), [
    [0, 2],
    [3, 3],
  ]);
  assert.throws(
    () => spansFor([7], 4),
    (e: Error) =>
      e.message ===
      "layer 7 out of range; field: granularity.hookLayers; expected: integers in [-4, 3]; got: 7",
  );
});
