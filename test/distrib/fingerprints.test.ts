/** What a worker compares with the plan: the run identity without paths, and the tokenized prompts. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { planProblems } from "../../src/distrib/fingerprints.js";
import { portableIdentity } from "../../src/eval/sweep-config.js";

const identity = (over: Record<string, unknown> = {}) => ({
  model: "/a/models/m",
  modelFingerprint: "f".repeat(64),
  backend: "onnxruntime",
  vectors: [
    { name: "harm", source: "/a/harm.safetensors", sha256: "1".repeat(64) },
    { name: "rnd", source: "random:3" },
  ],
  layers: ["1..3"],
  coeffs: [-1, 0, 1],
  tasks: [{ id: "mcq", kind: "mcq", data: "/a/mmlu.csv", sha256: "2".repeat(64) }],
  diagnostics: true,
  ...over,
});

test("paths do not count: the same files in other folders are the same run", () => {
  const here = identity({
    model: "/b/models/m",
    vectors: [
      { name: "harm", source: "/b/harm.safetensors", sha256: "1".repeat(64) },
      { name: "rnd", source: "random:3" },
    ],
    tasks: [{ id: "mcq", kind: "mcq", data: "/b/mmlu.csv", sha256: "2".repeat(64) }],
  });
  assert.deepEqual(portableIdentity(here), portableIdentity(identity()));
  assert.deepEqual(
    planProblems(
      { identity: identity(), prompts: "p", judges: {} },
      { identity: here, prompts: "p", judges: {} },
    ),
    [],
  );
});

test("each differing file is named, with both fingerprints", () => {
  const here = identity({
    modelFingerprint: "e".repeat(64),
    vectors: [
      { name: "harm", source: "/a/harm.safetensors", sha256: "3".repeat(64) },
      { name: "rnd", source: "random:4" },
    ],
    tasks: [{ id: "mcq", kind: "mcq", data: "/a/mmlu.csv", sha256: "4".repeat(64) }],
  });
  assert.deepEqual(
    planProblems(
      { identity: identity(), prompts: "p", judges: {} },
      { identity: here, prompts: "p", judges: {} },
    ),
    [
      `model weights: fingerprint ${"e".repeat(12)}… here, the plan's is ${"f".repeat(12)}…`,
      "data of task mcq: 444444444444… here, the plan's is 222222222222…",
      "vector harm: 333333333333… here, the plan's is 111111111111…",
      "vector rnd: random:4 here, the plan's is random:3",
    ],
  );
});

test("same files, other tokenizer or chat template: the prompts differ", () => {
  assert.deepEqual(
    planProblems(
      { identity: identity(), prompts: "p", judges: {} },
      { identity: identity(), prompts: "q", judges: {} },
    ),
    ["prompts: the same data tokenizes differently here (another tokenizer or chat template)"],
  );
  assert.deepEqual(
    planProblems(
      { identity: identity(), prompts: "p", judges: {} },
      { identity: identity({ backend: "reference" }), prompts: "p", judges: {} },
    ),
    ["backend: differs from the plan's"],
  );
});

test("a task's judge model is compared by fingerprint", () => {
  const plan = { identity: identity(), prompts: "p", judges: { gen: "a".repeat(64) } };
  assert.deepEqual(planProblems(plan, { ...plan, judges: { gen: "b".repeat(64) } }), [
    `judge model of task gen: fingerprint ${"b".repeat(12)}… here, the plan's is ${"a".repeat(12)}…`,
  ]);
  assert.deepEqual(planProblems(plan, { ...plan }), []);
});
