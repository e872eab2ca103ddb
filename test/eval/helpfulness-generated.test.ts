import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { scoreGeneratedAnswer } from "../../src/eval/score-helpfulness.js";
import { ResultStore, type SweepRecord } from "../../src/eval/store.js";
import { runSweep, type SweepPlan } from "../../src/eval/sweep.js";
import { parseSweepConfig } from "../../src/eval/sweep-config.js";
import { planSweep } from "../../src/eval/sweep-plan.js";
import { rowSteeringHooks } from "../../src/eval/sweep-steer.js";
import { letterIds } from "../../src/eval/tasks.js";
import type { Tokenizer } from "../../src/io/tokenizer-types.js";
import { generateBatch } from "../../src/model/generate.js";
import { loadModel } from "../../src/model/load.js";
import { ReferenceEngine } from "../../src/reference/engine.js";
import { ROOT } from "../helpers/cli.js";

// vocabulary of 6: id 0 = "x", A = {1, 2} ("A", " A"), B = 3, C = 4, D = 5
const LETTERS = { A: [1, 2], B: [3], C: [4], D: [5] };
const ln = Math.log;

describe("helpfulness read at the first generated letter (the paper's)", () => {
  test("hand-computed: P = max over the correct letter's forms at the letter's step; P(A-D) from step 0", () => {
    // step 0: weights x 4, A 1 + 2, B 1, C 1, D 1 (total 10); step 1: x 1, A 6 + 1, B 1, C 1, D 0 (total 10)
    const s0 = [ln(4), ln(1), ln(2), ln(1), ln(1), ln(1)];
    const s1 = [ln(1), ln(6), ln(1), ln(1), ln(1), -Infinity];
    // tokens: "x" then "A" (id 1): the letter is generated at step 1
    const a = scoreGeneratedAnswer([s0, s1], [0, 1, 0], LETTERS, "A");
    assert.equal(a.step, 1);
    assert.equal(a.predicted, "A");
    assert.equal(a.correct, true);
    assert.ok(Math.abs(a.pFull - 0.6) < 1e-12, `${a.pFull}`); // max(6, 1) / 10, not the sum 0.7
    // P(A-D) at step 0, max over forms: A 0.2, B 0.1, C 0.1, D 0.1 -> 0.2 / 0.5
    assert.ok(Math.abs(a.pRelative - 0.4) < 1e-12, `${a.pRelative}`);
    // the correct letter is B: P(B) at the letter step is 0.1, accuracy 0 (A was generated)
    const b = scoreGeneratedAnswer([s0, s1], [0, 1, 0], LETTERS, "B");
    assert.ok(Math.abs(b.pFull - 0.1) < 1e-12);
    assert.ok(Math.abs(b.pRelative - 0.2) < 1e-12);
    assert.equal(b.correct, false);
    // " A" (id 2) counts as the letter A too
    assert.equal(scoreGeneratedAnswer([s0], [2], LETTERS, "A").predicted, "A");
  });

  test("hand-computed: no letter generated gives P = 0 and accuracy 0", () => {
    const s0 = [ln(6), ln(1), ln(1), ln(1), ln(0.5), ln(0.5)];
    const r = scoreGeneratedAnswer([s0, s0, s0], [0, 0, 0], LETTERS, "C");
    assert.equal(r.pFull, 0);
    assert.equal(r.predicted, null);
    assert.equal(r.correct, false);
    assert.equal(r.step, -1);
    // P(A-D) still from step 0: C 0.5 / (1 + 1 + 0.5 + 0.5)
    assert.ok(Math.abs(r.pRelative - 0.5 / 3) < 1e-12);
  });
});

describe("sweep with helpfulness: generated on the demo base model (it answers with a letter)", () => {
  let dir: string;
  let engine: ReferenceEngine;
  let tok: Tokenizer;
  let plan: SweepPlan;
  const demo = [join(ROOT, "demo"), join(ROOT, "..", "demo")].find((d) => existsSync(join(d, "models")))!;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "steerlab-genmcq-"));
    const model = join(demo, "models/base");
    const m = await loadModel(model);
    engine = ReferenceEngine.fromModel(m);
    tok = m.tokenizer!;
    const config = parseSweepConfig(
      {
        model,
        backend: "reference",
        vectors: [{ name: "rnd", source: "random:3" }],
        layers: ["1..3"],
        coeffs: [-150, 0, 150],
        protocol: "paper",
        tasks: [{ id: "mcq", kind: "mcq", data: join(demo, "tasks/mmlu.csv"), limit: 6, maxNewTokens: 6 }],
      },
      dir,
    );
    assert.equal(config.tasks[0]!.helpfulness, "generated"); // the paper protocol's default
    plan = await planSweep(config, engine, tok);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("records equal an independent re-scoring: teacher-forced logits of prompt + generated text", async () => {
    const store = ResultStore.open(join(dir, "run"), { plan: "test" });
    let recs: SweepRecord[];
    try {
      await runSweep(engine, tok, plan, store, { batchSize: 4, maxRows: 5 });
      recs = store.records();
    } finally {
      store.close();
    }
    const letters = letterIds(tok);
    const of = new Map<number, string>();
    for (const [L, ids] of Object.entries(letters)) for (const id of ids) of.set(id, L);
    const v = plan.variants[0]!;
    const items = plan.tasks[0]!.items;
    let none = 0;
    let some = 0;
    for (const r of [-150, 0, 150]) {
      for (const it of items) {
        // one question at a time (no batching), then one full forward over prompt + generated tokens
        const hooks = rowSteeringHooks(v.vector, v.layers, [r]);
        const [g] = await generateBatch(engine, tok, [it.prompt], { maxNewTokens: 6, hooks });
        const ids = [...g!.promptIds, ...g!.ids];
        const out = await engine.forward({ ids: [ids], mask: [ids.map(() => 1)] }, { hooks, logits: "all" });
        const V = out.vocab;
        const probsAt = (pos: number) => {
          const row = out.logits.subarray(pos * V, (pos + 1) * V);
          const m = Math.max(...row);
          const z = row.reduce((s, x) => s + Math.exp(x - m), 0);
          return (id: number) => Math.exp(row[id]! - m) / z;
        };
        const P = g!.promptIds.length - 1; // logits at P predict the first generated token
        const k = g!.ids.findIndex((t) => of.has(t));
        const p0 = probsAt(P);
        const maxf = (p: (id: number) => number, L: string) => Math.max(...letters[L as "A"]!.map(p));
        const rel = maxf(p0, it.correct!) / ["A", "B", "C", "D"].reduce((s, L) => s + maxf(p0, L), 0);
        const want = k < 0 ? 0 : maxf(probsAt(P + k), it.correct!);
        if (k < 0) none++;
        else some++;
        const rec = recs.find((x) => x.item === it.index && x.r === r)!;
        // A1: ||steered - unsteered next-token logits|| at the prompt's end, from the first generated step
        const ids0 = g!.promptIds;
        const plain = await engine.forward({ ids: [ids0], mask: [ids0.map(() => 1)] }, { logits: "last" });
        let d2 = 0;
        for (let j = 0; j < V; j++) d2 += (out.logits[P * V + j]! - plain.logits[j]!) ** 2;
        assert.ok(
          Math.abs(rec.dNorm! - Math.sqrt(d2)) < 1e-3 * Math.max(1, Math.sqrt(d2)),
          `dNorm ${rec.dNorm} vs ${Math.sqrt(d2)}`,
        );
        assert.ok(
          Math.abs(rec.pFull! - want) < 1e-5,
          `pFull ${rec.pFull} vs ${want} (item ${it.index}, r ${r})`,
        );
        assert.ok(Math.abs(rec.pRelative! - rel) < 1e-5, `pRelative ${rec.pRelative} vs ${rel}`);
        assert.equal(rec.predicted, k < 0 ? "" : of.get(g!.ids[k]!));
        assert.equal(rec.score, k >= 0 && of.get(g!.ids[k]!) === it.correct ? 1 : 0);
        assert.equal(rec.text, g!.text);
      }
    }
    // both cases occur: a letter (unsteered, the model answers) and none (steered far, it does not)
    assert.ok(some > 0 && none > 0, `${some} cells with a letter, ${none} without`);
  });
});
