import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { configOf, type SweepCli } from "../../src/cli/commands/sweep.js";
import { isSteerlabError } from "../../src/errors.js";
import { runIdentity } from "../../src/eval/sweep-config.js";

const dir = mkdtempSync(join(tmpdir(), "steerlab-flags-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const cli = (o: Partial<SweepCli>): SweepCli => ({
  vector: [],
  layers: [],
  task: [],
  out: "x",
  diagnostics: true,
  reuse: true,
  ...o,
});

test("sweep flags build the same config as the equivalent file; flags override file keys", () => {
  writeFileSync(join(dir, "mmlu.csv"), "q,a,b,c,d,A\n");
  writeFileSync(
    join(dir, "exp.json"),
    JSON.stringify({
      model: "m",
      vectors: [{ name: "random1", source: "random:1" }],
      layers: ["2..3"],
      coeffs: "-1:1:1",
      tasks: [{ id: "mcq-0", kind: "mcq", data: "mmlu.csv" }],
    }),
  );
  const fromFile = configOf(cli({ config: join(dir, "exp.json") }));
  const fromFlags = configOf(
    cli({
      model: join(dir, "m"),
      vector: ["random:1"],
      layers: ["2..3"],
      coeffs: "-1,0,1",
      task: [`mcq:${join(dir, "mmlu.csv")}`],
    }),
  );
  assert.deepEqual(fromFlags.coeffs, [-1, 0, 1]);
  assert.deepEqual(runIdentity(fromFile, "fp"), runIdentity(fromFlags, "fp"));
  const over = configOf(cli({ config: join(dir, "exp.json"), coeffs: "0:4:2", layers: ["1"] }));
  assert.deepEqual(over.coeffs, [0, 2, 4]);
  assert.deepEqual(over.layers, ["1"]);
  assert.equal(runIdentity(over, "fp").model, join(dir, "m"));
});

test("a bad --task names the expected form", () => {
  assert.throws(
    () => configOf(cli({ model: "m", vector: ["random:1"], coeffs: "0", task: ["judge:x.csv"] })),
    (e) => isSteerlabError(e, "bad_input") && /mcq/.test(e.message),
  );
});
