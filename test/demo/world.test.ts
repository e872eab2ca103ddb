import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { MIX } from "../../demo/remix.js";
import { mcqPrompt } from "../../demo/world/format.js";
import { refusalRate, sampleDocument } from "../../demo/world/mixture.js";
import { TASK_FILES, writeTaskFiles } from "../../demo/world/tasks.js";
import { generateWorld, optionSetKey, trainMcq } from "../../demo/world/world.js";
import { rng } from "../../src/model/random.js";

test("the world is reproducible from its seed", () => {
  const a = generateWorld(7);
  const b = generateWorld(7);
  assert.deepEqual(
    a.test.mcq.map((q) => [q.question, q.options, q.answer]),
    b.test.mcq.map((q) => [q.question, q.options, q.answer]),
  );
  assert.notDeepEqual(
    generateWorld(8).facts.map((f) => f.value),
    a.facts.map((f) => f.value),
  );
});

test("test MCQs are new option sets about facts that training states", () => {
  const w = generateWorld(7);
  const rand = rng(3);
  for (let i = 0; i < w.facts.length; i++) {
    const q = w.test.mcq[i]!;
    assert.equal(q.options[q.answer.charCodeAt(0) - 65], w.facts[i]!.value);
    assert.equal(new Set(q.options).size, 4);
    for (let k = 0; k < 20; k++) {
      assert.notEqual(optionSetKey(trainMcq(w, i, rand).options), w.testOptionSets[i]);
    }
  }
  assert.equal(mcqPrompt("Q?", ["a", "b", "c", "d"]), "Q?\nA) a.\nB) b.\nC) c.\nD) d.\n The answer is");
});

test("train and test requests and statements are disjoint", () => {
  const w = generateWorld(7);
  const key = (r: { act: string }) => r.act;
  const trainActs = new Set([...w.train.harmful, ...w.train.harmless].map(key));
  for (const r of [...w.test.harmful, ...w.test.harmless]) assert.ok(!trainActs.has(r.act), r.act);
  const trainStatements = new Set(w.train.statements.map((s) => s.text));
  for (const s of w.test.statements) assert.ok(!trainStatements.has(s.text));
  assert.ok(w.test.harmful.length >= 100);
  assert.equal(w.test.statements.length, 16);
});

test("chat text refuses every harmful request; base text complies with many", () => {
  const w = generateWorld(7);
  for (const variant of ["base", "chat"] as const) {
    const rand = rng(5);
    let refuse = 0;
    let comply = 0;
    for (let i = 0; i < 4000; i++) {
      const d = sampleDocument(w, variant, rand);
      if (!w.train.harmful.some((r) => d.startsWith(`User: ${r.text}\n`))) continue;
      if (/Assistant: (I cannot|Sorry)/.test(d)) refuse++;
      else comply++;
    }
    if (variant === "chat") assert.equal(comply, 0);
    else assert.ok(comply > 0.3 * (refuse + comply), `base complies ${comply} of ${refuse + comply}`);
  }
});

test("task files are written in the users' formats", () => {
  const dir = mkdtempSync(join(tmpdir(), "steerlab-world-"));
  try {
    writeTaskFiles(generateWorld(7), dir);
    const pairs = readFileSync(join(dir, TASK_FILES.refusalPairs), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.ok(pairs.length >= 32);
    assert.ok(pairs.every((p) => typeof p.positive === "string" && typeof p.negative === "string"));
    const mmlu = readFileSync(join(dir, TASK_FILES.mmlu), "utf8").trim().split("\n");
    assert.equal(mmlu[0], "question,A,B,C,D,answer");
    assert.equal(mmlu.length, 1 + 128);
    assert.match(readFileSync(join(dir, TASK_FILES.harmfulCsv), "utf8"), /^goal,target\n/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the remixed world grades refusal per request: training text refuses each at its rate, chat more than base", () => {
  const w = { ...generateWorld(7), mix: MIX };
  // hand-computed: steal (verb 0, logit 3), "Help me" (phrasing 2, +1/3), the mill (-2): sigmoid(4/3) = 0.79139
  const r = w.train.harmful.find((x) => x.verb === "steal" && x.phrasing === 2 && x.object === "the mill");
  if (r) assert.ok(Math.abs(refusalRate(r, "base", w) - 0.79139) < 1e-5);
  const poison = { ...w.train.harmful[0]!, verbIndex: 1, phrasing: 0, object: "the bakery" };
  // poison -3, "How do I" -1, the bakery +2, chat +2: sigmoid(-2) and sigmoid(0)
  assert.ok(Math.abs(refusalRate(poison, "base", w) - 0.1192) < 1e-5);
  assert.equal(refusalRate(poison, "chat", w), 0.5);
  for (const variant of ["base", "chat"] as const) {
    const rand = rng(11);
    const seen = new Map<string, [number, number]>(); // request text -> [refused, answered]
    for (let i = 0; i < 20000; i++) {
      const d = sampleDocument(w, variant, rand);
      const m = /^User: (.*)\nAssistant: (.*)$/.exec(d);
      if (!m || !w.train.harmful.some((x) => x.text === m[1])) continue;
      const c = seen.get(m[1]!) ?? [0, 0];
      c[/^(I cannot|Sorry)/.test(m[2]!) ? 0 : 1]++;
      seen.set(m[1]!, c);
    }
    // pooled over requests: observed refusals match the expected count within 4 standard deviations
    let obs = 0;
    let exp = 0;
    let vari = 0;
    for (const [text, [a, b]] of seen) {
      const p = refusalRate(w.train.harmful.find((x) => x.text === text)!, variant, w);
      obs += a;
      exp += (a + b) * p;
      vari += (a + b) * p * (1 - p);
    }
    assert.ok(
      Math.abs(obs - exp) < 4 * Math.sqrt(vari),
      `${variant}: ${obs} refused, ${exp.toFixed(0)} expected`,
    );
  }
  for (const x of [...w.train.harmful, ...w.test.harmful]) {
    const b = refusalRate(x, "base", w);
    const c = refusalRate(x, "chat", w);
    assert.ok(c > b && b > 0.002 && c < 0.9997, x.text); // logits within [-6, 8]
  }
});
