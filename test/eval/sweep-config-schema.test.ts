import assert from "node:assert/strict";
import { test } from "node:test";
import { isSteerlabError } from "../../src/errors.js";
import { parseSweepConfig } from "../../src/eval/sweep-config.js";
import { configProblems, fitOptionsSchema, sweepConfigSchema, taskSpecSchema } from "../../src/index.js";

const problemsOf = (raw: unknown): string[] => {
  try {
    parseSweepConfig(raw, "/base");
  } catch (e) {
    assert.ok(isSteerlabError(e, "bad_config"));
    return e.details.problems!;
  }
  assert.fail("accepted");
};

test("the schema is what parseSweepConfig runs: same output less baseDir and file, in the run identity's key order", () => {
  const raw = {
    model: "m",
    vector: "random:7",
    coeffs: "-1:1:1",
    protocol: "paper",
    tasks: [
      { data: "q.csv", kind: "mcq", limit: 3 },
      { kind: "behavior-generate", data: "h.txt", judge: true, a2: { good: ["x"], bad: ["y"] }, id: "gen" },
    ],
  };
  const parsed = sweepConfigSchema.parse(raw);
  assert.deepEqual({ ...parsed, baseDir: "/base", file: "<flags>" }, parseSweepConfig(raw, "/base"));
  assert.equal(parseSweepConfig(raw, "/base", "exp.yaml").file, "exp.yaml");
  // Key order is part of run.json's identity: id first, then kind, data, ...; the paper's helpfulness default.
  assert.equal(
    JSON.stringify(parsed.tasks),
    '[{"id":"mcq-0","kind":"mcq","data":"q.csv","limit":3,"helpfulness":"generated"},' +
      '{"id":"gen","kind":"behavior-generate","data":"h.txt","judge":{},"a2":{"good":["x"],"bad":["y"]}}]',
  );
  assert.deepEqual(parsed.vectors, [{ name: "random7", source: "random:7" }]);
  assert.deepEqual(parsed.coeffs, [-1, 0, 1]);
  // A task alone: no id given reads as undefined (the sweep names it <kind>-<index>).
  assert.equal(taskSpecSchema.parse({ kind: "cloze", data: "c.jsonl" }).id, undefined);
});

test("a bad task does not hide the other problems: cross-field checks still run", () => {
  const p = problemsOf({
    model: "m",
    vectors: [{ name: "a", source: "x" }, { name: "a", source: "y" }, 7],
    coeffs: [0],
    tasks: [
      { kind: "mcq", data: "d", id: "t" },
      { kind: "mcq", data: "d", id: "t" },
      { kind: "nope", data: "d", system: "s", a2: 3 },
    ],
  });
  assert.deepEqual(p.toSorted(), [
    "tasks: ids must be unique",
    "tasks[2].a2: { good: [...], bad: [...] }",
    "tasks[2].kind: expected behavior-generate | behavior-logprob | mcq | cloze",
    "tasks[2].system: a string, with chat: true (the system message goes into the chat template)",
    "vectors: names must be unique",
    "vectors[2]: expected a path or { name, source }",
  ]);
});

test("prototype keys are unknown keys, never read or written through", () => {
  const raw = JSON.parse(
    '{"model":"m","vector":"random:1","coeffs":[0],"tasks":[{"kind":"mcq","data":"d","__proto__":{"id":"x"}}],"__proto__":{"polluted":1}}',
  );
  const p = problemsOf(raw);
  assert.ok(p.some((l) => l.startsWith("__proto__: unknown key (known: model, backend, vectors, vector,")));
  assert.ok(p.some((l) => l.startsWith("tasks[0].__proto__: unknown key (known: id, kind, data,")));
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test("fitOptionsSchema: the config's fit block and the explorer's half-width fields", () => {
  assert.deepEqual(fitOptionsSchema.parse({ linearHalfWidth: 1, tanhRange: [-3, 5] }), {
    linearHalfWidth: 1,
    tanhRange: [-3, 5],
  });
  const r = fitOptionsSchema.safeParse({
    linearHalfWidth: -1,
    quadraticHalfWidth: Number.NaN,
    tanhRange: [5, -3],
  });
  assert.ok(!r.success);
  assert.deepEqual(configProblems(r.error, "fit"), [
    "fit.tanhRange: [lo, hi] with lo < hi",
    "fit.linearHalfWidth: a positive number",
    "fit.quadraticHalfWidth: a positive number",
  ]);
});
