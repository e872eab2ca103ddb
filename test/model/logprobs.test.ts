import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isSteerlabError } from "../../src/errors.js";
import type { HookBinding } from "../../src/model/engine.js";
import { nextTokenLogprobs, scoreContinuations } from "../../src/model/logprobs.js";
import { randomWeights, TINY_CONFIGS } from "../../src/model/random.js";
import { logSoftmax } from "../../src/model/sampling.js";
import { ReferenceEngine } from "../../src/reference/engine.js";

for (const name of ["qwen2", "gpt2"]) {
  describe(`logprobs: ${name}`, () => {
    const c = TINY_CONFIGS[name]!;
    const engine = new ReferenceEngine(c, randomWeights(c, 31));
    const V = c.vocabSize;
    const seqA = [1, 40, 41, 42, 100, 7, 8];
    const seqB = [1, 250, 3];

    test("the last-position distribution is the log-softmax of the engine's last logits", async () => {
      const [d] = await nextTokenLogprobs(engine, seqA, { top: 5 });
      const r = await engine.forward({ ids: [seqA] }, { logits: "last" });
      const want = logSoftmax(r.logits);
      assert.equal(d!.position, seqA.length - 1);
      for (let i = 0; i < V; i++) assert.ok(Math.abs(d!.logprobs[i]! - want[i]!) < 1e-9);
      assert.ok(Math.abs(d!.logprobs.reduce((s, v) => s + Math.exp(v), 0) - 1) < 1e-9);
      const sorted = [...d!.logprobs].map((lp, id) => ({ id, lp })).sort((a, b) => b.lp - a.lp);
      assert.deepEqual(
        d!.top.map((t) => t.id),
        sorted.slice(0, 5).map((t) => t.id),
      );
    });

    test("chosen positions in a left-padded batch equal each row run alone", async () => {
      const batch = await nextTokenLogprobs(engine, [seqA, seqB], {
        positions: [0, -1],
        top: 3,
        batchSize: 2,
      });
      for (const [i, row] of [seqA, seqB].entries()) {
        const alone = await engine.forward({ ids: [row] }, { logits: "all" });
        for (const [j, t] of [0, row.length - 1].entries()) {
          const d = batch[i]![j]!;
          assert.equal(d.position, t);
          const want = logSoftmax(alone.logits, t * V, V);
          let m = 0;
          for (let k = 0; k < V; k++) m = Math.max(m, Math.abs(d.logprobs[k]! - want[k]!));
          assert.ok(m < 2e-5, `row ${i} pos ${t}: ${m}`);
        }
      }
      const all = await nextTokenLogprobs(engine, seqB, { positions: "all" });
      assert.deepEqual(
        all.map((d) => d.position),
        [0, 1, 2],
      );
    });

    test("continuation scores are the chained next-token log-probs, independent of batching", async () => {
      const prompt = [1, 60, 61, 62];
      const conts = [[5], [9, 10, 11], [200, 201], [7, 7, 7, 7]];
      const s8 = await scoreContinuations(engine, prompt, conts);
      const s1 = await scoreContinuations(engine, prompt, conts, { batchSize: 1 });
      for (const [i, cont] of conts.entries()) {
        let sum = 0;
        for (let j = 0; j < cont.length; j++) {
          const [d] = await nextTokenLogprobs(engine, [...prompt, ...cont.slice(0, j)]);
          sum += d!.logprobs[cont[j]!]!;
        }
        assert.ok(Math.abs(s8[i]!.sum - sum) < 1e-4, `cont ${i}: ${s8[i]!.sum} vs ${sum}`);
        assert.ok(Math.abs(s1[i]!.sum - s8[i]!.sum) < 1e-4);
        assert.equal(s8[i]!.tokens.length, cont.length);
        assert.ok(Math.abs(s8[i]!.mean - s8[i]!.sum / cont.length) < 1e-12);
      }
    });

    test("single-token continuations over the whole vocabulary sum to probability one", async () => {
      const all = Array.from({ length: V }, (_, i) => [i]);
      const s = await scoreContinuations(engine, [1, 2, 3], all, { batchSize: 64 });
      assert.ok(Math.abs(s.reduce((a, x) => a + Math.exp(x.sum), 0) - 1) < 1e-5);
    });

    test("hooks apply to scoring and do not persist", async () => {
      const zero: HookBinding = { point: { layer: 0, site: "attn_out" }, fn: (ctx) => ctx.hidden.fill(0) };
      const base = await scoreContinuations(engine, [1, 2, 3], [[4, 5]]);
      const hooked = await scoreContinuations(engine, [1, 2, 3], [[4, 5]], { hooks: [zero] });
      const again = await scoreContinuations(engine, [1, 2, 3], [[4, 5]]);
      assert.ok(Math.abs(base[0]!.sum - hooked[0]!.sum) > 1e-3);
      assert.equal(again[0]!.sum, base[0]!.sum);
    });

    test("bad inputs are input errors", async () => {
      const bad = (e: unknown) => isSteerlabError(e, "bad_input");
      await assert.rejects(nextTokenLogprobs(engine, seqB, { positions: [3] }), bad);
      await assert.rejects(nextTokenLogprobs(engine, [], {}), bad);
      await assert.rejects(scoreContinuations(engine, [1], [[]]), bad);
      await assert.rejects(scoreContinuations(engine, [1], [[V]]), bad);
      await assert.rejects(scoreContinuations(engine, [1], [[2]], { batchSize: 0 }), bad);
    });
  });
}
