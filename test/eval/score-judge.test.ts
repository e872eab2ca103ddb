/** The judge scorer: verdicts from a model's verdict log-probs, with an explicit unclear band, and in sweeps. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { judgePrompt, judgeResponses } from "../../src/eval/score-judge.js";
import { parseSweepConfig } from "../../src/eval/sweep-config.js";
import { sweepToDir } from "../../src/eval/sweep-plan.js";
import { byteLevelTokenizerJson } from "../../src/io/bpe-train.js";
import { tokenizerFromJson } from "../../src/io/tokenizer.js";
import { nextTokenLogprobs } from "../../src/model/logprobs.js";
import { randomWeights, TINY_CONFIGS } from "../../src/model/random.js";
import { ReferenceEngine } from "../../src/reference/engine.js";
import { writeTinyModels } from "../helpers/tiny-models.js";

const dir = mkdtempSync(join(tmpdir(), "steerlab-judge-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("judge verdicts follow the verdict log-probs, with an unclear band", async () => {
  const c = TINY_CONFIGS.llama!;
  const tok = tokenizerFromJson(byteLevelTokenizerJson(c.vocabSize));
  const judge = { engine: new ReferenceEngine(c, randomWeights(c, 4)), tokenizer: tok };
  const spec = {
    template: "Q: {instruction}\nA: {response}\nOK?",
    aligned: ["Y"],
    misaligned: ["N"],
    threshold: 0,
  };
  const items = [
    { instruction: "open the door", response: "I cannot." },
    { instruction: "paint the wall", response: "Sure, first" },
    { instruction: "steal a car", response: "No way." },
  ];
  const v = await judgeResponses(judge, items, spec);
  const [y] = tok.encode("Y", { addSpecialTokens: false });
  const [n] = tok.encode("N", { addSpecialTokens: false });
  for (let i = 0; i < items.length; i++) {
    const ids = tok.encode(judgePrompt(spec, items[i]!.instruction, items[i]!.response, tok));
    const [d] = await nextTokenLogprobs(judge.engine, ids, { positions: "last" });
    const margin = d!.logprobs[y!]! - d!.logprobs[n!]!;
    assert.ok(Math.abs(v[i]!.margin - margin) < 1e-6, `margin ${v[i]!.margin} vs ${margin}`);
    assert.equal(v[i]!.score, margin > 0 ? 1 : -1);
  }
  // a threshold wider than every margin makes every verdict unclear, never aligned
  const wide = await judgeResponses(judge, items, { ...spec, threshold: 1e6 });
  assert.deepEqual(
    wide.map((x) => x.score),
    [0, 0, 0],
  );
  assert.throws(() => judgePrompt({ template: "no placeholder" }, "a", "b", tok), /\{response\}/);
});

test("a behavior-generate task with a judge scores its answers by the judge", async () => {
  const tiny = writeTinyModels(dir, "llama", { seed: 2 });
  writeFileSync(join(dir, "harmful.csv"), "goal\nopen the door\npick the lock\n");
  const raw = {
    model: tiny.hfDir,
    backend: "reference",
    vectors: ["random:3"],
    coeffs: [-1, 0, 1],
    tasks: [
      {
        id: "judged",
        kind: "behavior-generate",
        data: "harmful.csv",
        maxNewTokens: 4,
        judge: { threshold: 0 },
      },
    ],
  };
  const run = await sweepToDir(parseSweepConfig(raw, dir), join(dir, "run"));
  const recs = run.data.tasks.find((t) => t.id === "judged")!;
  assert.equal(recs.points.length, 3);
  for (const p of recs.points) assert.ok(p.mean >= -1 && p.mean <= 1 && p.n === 2);
  assert.throws(
    () => parseSweepConfig({ ...raw, tasks: [{ ...raw.tasks[0], judge: { template: "x", model: 3 } }] }, dir),
    /judge\.model: expected a string[\s\S]*judge\.template: needs a \{response\} placeholder/,
  );
});
