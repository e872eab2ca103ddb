import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { isSteerlabError } from "../../src/errors.js";
import {
  canonicalJson,
  configHash,
  RESULTS_FILE,
  ResultStore,
  type SweepRecord,
} from "../../src/eval/store.js";
import { parseCoeffs, parseSweepConfig } from "../../src/eval/sweep-config.js";

const root = mkdtempSync(join(tmpdir(), "steerlab-store-"));
after(() => rmSync(root, { recursive: true, force: true }));

const rec = (item: number, r: number): SweepRecord => ({
  task: "t",
  variant: "v@1",
  item,
  r,
  kind: "mcq",
  score: 1,
  pFull: 0.5,
});

describe("result store", () => {
  test("config hash ignores key order; records survive close and reopen", () => {
    assert.equal(configHash({ a: 1, b: [1, { c: 2, d: 3 }] }), configHash({ b: [1, { d: 3, c: 2 }], a: 1 }));
    assert.equal(canonicalJson({ b: 1, a: undefined }), '{"b":1}');
    const dir = join(root, "a");
    const s = ResultStore.open(dir, { x: 1 });
    s.append([rec(0, -1), rec(0, 1)]);
    assert.ok(s.has("t", "v@1", 0, 1));
    assert.ok(!s.has("t", "v@1", 1, 1));
    s.close();
    const s2 = ResultStore.open(dir, { x: 1 });
    assert.equal(s2.size, 2);
    assert.deepEqual(s2.records()[1], rec(0, 1));
    s2.close();
  });

  test("another config in the same folder is an error", () => {
    const dir = join(root, "b");
    ResultStore.open(dir, { x: 1 }).close();
    assert.throws(
      () => ResultStore.open(dir, { x: 2 }),
      (e) => isSteerlabError(e, "mismatch"),
    );
  });

  test("a repeated key is refused (work is never stored twice)", () => {
    const s = ResultStore.open(join(root, "c"), {});
    s.append([rec(1, 0)]);
    assert.throws(
      () => s.append([rec(1, 0)]),
      (e) => isSteerlabError(e, "bad_input"),
    );
    s.close();
  });

  test("a torn last line is dropped and overwritten", () => {
    const dir = join(root, "d");
    const s = ResultStore.open(dir, {});
    s.append([rec(0, 0), rec(1, 0)]);
    s.close();
    const file = join(dir, RESULTS_FILE);
    appendFileSync(file, '{"task":"t","vari'); // killed mid-write
    const s2 = ResultStore.open(dir, {});
    assert.equal(s2.size, 2);
    assert.equal(s2.recovery.tornTail, true);
    s2.append([rec(2, 0)]);
    s2.close();
    const lines = readFileSync(file, "utf8").trim().split("\n");
    assert.equal(lines.length, 3);
    assert.deepEqual(JSON.parse(lines[2]!), rec(2, 0));
  });
});

describe("sweep config", () => {
  test("coefficient grids", () => {
    assert.deepEqual(parseCoeffs("-1:1:0.5"), [-1, -0.5, 0, 0.5, 1]);
    assert.deepEqual(parseCoeffs("-5:5:0.2").length, 51);
    assert.ok(parseCoeffs("-5:5:0.2").includes(0.2)); // no 0.20000000000000018 keys
    assert.deepEqual(parseCoeffs("2,-1,0"), [-1, 0, 2]);
    assert.throws(
      () => parseCoeffs("1:0:1"),
      (e) => isSteerlabError(e, "bad_config"),
    );
    assert.throws(
      () => parseCoeffs("a,b"),
      (e) => isSteerlabError(e, "bad_config"),
    );
  });

  test("every problem of a config is reported at once", () => {
    assert.throws(
      () => parseSweepConfig({ vectors: [], coeffs: "x", tasks: [{ kind: "nope" }], extra: 1 }, root),
      (e) => {
        assert.ok(isSteerlabError(e, "bad_config"));
        const p = e.details.problems!.join("\n");
        for (const want of ["extra", "model", "vectors", "coeffs", "tasks[0].kind", "tasks[0].data"])
          assert.match(p, new RegExp(want.replace(/[[\]]/g, "\\$&")));
        return true;
      },
    );
  });
});
