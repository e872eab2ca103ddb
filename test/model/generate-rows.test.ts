/**
 * streamGenerateRows: rows of one batch with options of their own (sampling seed and temperature, budget, stop
 * strings, steering hooks, cancellation) each equal their solo run, and a cancelled row does not disturb the rest.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { byteLevelTokenizerJson } from "../../src/io/bpe-train.js";
import { tokenizerFromJson } from "../../src/io/tokenizer.js";
import type { HookBinding } from "../../src/model/engine.js";
import { generate, type RowRequest, streamGenerateRows } from "../../src/model/generate.js";
import { randomWeights, rng, TINY_CONFIGS } from "../../src/model/random.js";
import { rowHooks } from "../../src/model/row-hooks.js";
import { ReferenceEngine } from "../../src/reference/engine.js";
import { steeringHooks } from "../../src/steer/apply.js";
import { makeVector } from "../../src/steer/vector.js";

const tokenizer = tokenizerFromJson(byteLevelTokenizerJson(320), { bos_token: "<s>", eos_token: "</s>" });
const c = TINY_CONFIGS.llama!;
const engine = new ReferenceEngine(c, randomWeights(c, 5));
const r = rng(3);
const dir = Float32Array.from({ length: c.hiddenSize }, () => r() - 0.5);
const vector = makeVector(new Map([[1, dir]]));

async function rows(reqs: RowRequest[]): Promise<{ ids: number[]; text: string }[]> {
  const out = reqs.map(() => ({ ids: [] as number[], text: "" }));
  for await (const e of streamGenerateRows(engine, tokenizer, reqs)) {
    if (e.finishReason === "stop_token") continue;
    out[e.row]!.ids.push(e.tokenId);
    out[e.row]!.text += e.text;
  }
  return out;
}

test("each row equals its solo generate with its own options", async () => {
  const steer = (coeff: number, positions: "all" | "generated", promptLength: number): HookBinding[] =>
    steeringHooks(vector, {
      coeff,
      positions: positions === "all" ? "all" : { mode: "generated", promptLength },
    });
  const p1 = tokenizer.encode("The quick brown fox");
  const p2 = tokenizer.encode("Hi");
  const p3 = tokenizer.encode("A longer prompt than the others, by far");
  const reqs: RowRequest[] = [
    { prompt: p1, maxNewTokens: 9, stopTokens: [] },
    {
      prompt: p2,
      maxNewTokens: 5,
      temperature: 1.1,
      topP: 0.9,
      seed: 4,
      stopTokens: [],
      hooks: steer(3, "all", p2.length),
    },
    { prompt: p3, maxNewTokens: 12, temperature: 0.8, seed: 11, hooks: steer(-3, "generated", p3.length) },
    { prompt: p1, maxNewTokens: 7, stopTokens: [], hooks: steer(4, "generated", p1.length) },
  ];
  const batched = await rows(reqs);
  for (const [i, q] of reqs.entries()) {
    const solo = await generate(engine, tokenizer, q.prompt, { ...q });
    assert.deepEqual(batched[i]!.ids, solo.ids, `row ${i}`);
    assert.equal(batched[i]!.text, solo.text, `row ${i}`);
  }
  // Rows 0 and 3 share a prompt; only steering tells them apart (so a leak between rows would show).
  assert.notDeepEqual(batched[0]!.ids.slice(0, 7), batched[3]!.ids);
});

test("rowHooks touch their row only", async () => {
  const seen: number[] = [];
  const spy: HookBinding = {
    point: { layer: 0, site: "resid_post" },
    fn: (ctx) => void seen.push(ctx.batch, ctx.hidden.length),
  };
  const zero: HookBinding = { point: { layer: 0, site: "resid_post" }, fn: (ctx) => void ctx.hidden.fill(0) };
  const ids = [tokenizer.encode("abc"), tokenizer.encode("abd")];
  const plain = await engine.forward({ ids }, { logits: "last" });
  const out = await engine.forward({ ids }, { hooks: [...rowHooks([spy, zero], 1)], logits: "last" });
  const V = out.vocab;
  assert.deepEqual(seen, [1, ids[0]!.length * c.hiddenSize]);
  assert.deepEqual(out.logits.subarray(0, V), plain.logits.subarray(0, V));
  assert.notDeepEqual(out.logits.subarray(V), plain.logits.subarray(V));
});

test("a cancelled row ends with no effect on the others", async () => {
  const ac = new AbortController();
  const p = tokenizer.encode("The quick brown fox");
  const reqs: RowRequest[] = [
    { prompt: p, maxNewTokens: 10, stopTokens: [] },
    { prompt: p, maxNewTokens: 10, stopTokens: [], signal: ac.signal },
  ];
  const out = reqs.map(() => [] as number[]);
  for await (const e of streamGenerateRows(engine, tokenizer, reqs)) {
    out[e.row]!.push(e.tokenId);
    if (e.row === 1 && out[1]!.length === 3) ac.abort();
  }
  assert.equal(out[1]!.length, 3);
  const solo = await generate(engine, tokenizer, p, { maxNewTokens: 10, stopTokens: [] });
  assert.deepEqual(out[0], solo.ids);
  assert.deepEqual(out[1], solo.ids.slice(0, 3));
});
