import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isSteerlabError } from "../../src/errors.js";
import { byteLevelTokenizerJson } from "../../src/io/bpe-train.js";
import { tokenizerFromJson } from "../../src/io/tokenizer.js";
import type { Engine, HookBinding } from "../../src/model/engine.js";
import {
  type GenerateStep,
  generate,
  generateBatch,
  streamGenerate,
  streamGenerateBatch,
} from "../../src/model/generate.js";
import { randomWeights, rng, TINY_CONFIGS } from "../../src/model/random.js";
import { argmax } from "../../src/model/sampling.js";
import { ReferenceEngine } from "../../src/reference/engine.js";

const tokenizer = tokenizerFromJson(byteLevelTokenizerJson(320), { bos_token: "<s>", eos_token: "</s>" });

/** Greedy decoding by full recomputation of the whole sequence at every step (no cache). */
async function greedyByRecompute(
  engine: Engine,
  prompt: number[],
  n: number,
  hooksFor: (promptLength: number) => HookBinding[] = () => [],
): Promise<number[]> {
  const seq = [...prompt];
  for (let i = 0; i < n; i++) {
    const r = await engine.forward({ ids: [seq] }, { hooks: hooksFor(prompt.length), logits: "last" });
    seq.push(argmax(r.logits));
  }
  return seq.slice(prompt.length);
}

/** A hook adding `v` at resid_post[layer] to generated positions only (pos >= the row's prompt length). */
function steerGenerated(layer: number, v: Float32Array, promptLengths: readonly number[]): HookBinding {
  return {
    point: { layer, site: "resid_post" },
    fn: (ctx) => {
      for (let b = 0; b < ctx.batch; b++) {
        for (let t = 0; t < ctx.seq; t++) {
          if (ctx.positions[b * ctx.seq + t]! < promptLengths[b]!) continue;
          const o = (b * ctx.seq + t) * ctx.dim;
          for (let i = 0; i < ctx.dim; i++) ctx.hidden[o + i] = ctx.hidden[o + i]! + v[i]!;
        }
      }
    },
  };
}

for (const name of ["llama", "gpt2"]) {
  describe(`generate: ${name}`, () => {
    const c = TINY_CONFIGS[name]!;
    const engine = new ReferenceEngine(c, randomWeights(c, 21));
    const prompt = tokenizer.encode("The quick brown fox");
    const noStop = { stopTokens: [] as number[] };

    test("greedy cached decoding equals greedy by full recomputation, and is deterministic", async () => {
      const a = await generate(engine, tokenizer, prompt, { maxNewTokens: 12, ...noStop });
      const b = await generate(engine, tokenizer, prompt, { maxNewTokens: 12, ...noStop });
      assert.deepEqual(a.ids, await greedyByRecompute(engine, prompt, 12));
      assert.deepEqual(a, b);
      assert.equal(a.finishReason, "length");
      assert.deepEqual(a.promptIds, prompt);
      assert.equal(a.text, tokenizer.decode(a.ids, { skipSpecialTokens: true }));
    });

    test("a text prompt is encoded with the tokenizer (BOS added)", async () => {
      const a = await generate(engine, tokenizer, "The quick brown fox", { maxNewTokens: 3, ...noStop });
      assert.deepEqual(a.promptIds, prompt);
      assert.equal(a.promptIds[0], tokenizer.bosTokenId);
    });

    test("seeded sampling is reproducible; different seeds differ", async () => {
      const opts = { maxNewTokens: 16, temperature: 1.2, topK: 50, ...noStop };
      const a = await generate(engine, tokenizer, prompt, { ...opts, seed: 5 });
      const b = await generate(engine, tokenizer, prompt, { ...opts, seed: 5 });
      const d = await generate(engine, tokenizer, prompt, { ...opts, seed: 6 });
      assert.deepEqual(a.ids, b.ids);
      assert.notDeepEqual(a.ids, d.ids);
    });

    test("a left-padded batch gives each prompt what it gives alone", async () => {
      const prompts = ["Hi", "The quick brown fox jumps", "Alignment rises"];
      const batch = await generateBatch(engine, tokenizer, prompts, { maxNewTokens: 8, ...noStop });
      for (const [i, p] of prompts.entries()) {
        const alone = await generate(engine, tokenizer, p, { maxNewTokens: 8, ...noStop });
        assert.deepEqual(batch[i]!.ids, alone.ids, p);
      }
    });

    test("stop tokens end a row (not included) while other rows go on", async () => {
      const free = await generate(engine, tokenizer, prompt, { maxNewTokens: 10, ...noStop });
      const stopAt = free.ids[3]!;
      const first = free.ids.indexOf(stopAt);
      const r = await generate(engine, tokenizer, prompt, { maxNewTokens: 10, stopTokens: [stopAt] });
      assert.equal(r.finishReason, "stop_token");
      assert.equal(r.stopTokenId, stopAt);
      assert.deepEqual(r.ids, free.ids.slice(0, first));
      const [a, b] = await generateBatch(engine, tokenizer, [prompt, "Hi"], {
        maxNewTokens: 10,
        stopTokens: [stopAt],
      });
      assert.deepEqual(a!.ids, r.ids);
      const bAlone = await generate(engine, tokenizer, "Hi", { maxNewTokens: 10, stopTokens: [stopAt] });
      assert.deepEqual(b!.ids, bAlone.ids);
    });

    test("stop strings cut the text before them; streamed deltas add up to the text and never leak the stop", async () => {
      const free = await generate(engine, tokenizer, "Hello", { maxNewTokens: 24, ...noStop });
      // A stop string taken from the middle of what the model writes anyway.
      const at = [...free.text.matchAll(/[ -~]{2}/g)].find((m) => m.index >= 3);
      assert.ok(at, `no ASCII pair in ${JSON.stringify(free.text)}`);
      const stop = at[0];
      const cut = free.text.indexOf(stop);
      const opts = { maxNewTokens: 24, stopStrings: [stop], ...noStop };
      const r = await generate(engine, tokenizer, "Hello", opts);
      assert.equal(r.finishReason, "stop_string");
      assert.equal(r.stopString, stop);
      assert.equal(r.text, free.text.slice(0, cut));
      assert.ok(r.ids.length < free.ids.length || cut < free.text.length);
      let streamed = "";
      const ids: number[] = [];
      let last: string | undefined;
      for await (const e of streamGenerate(engine, tokenizer, "Hello", opts)) {
        streamed += e.text;
        ids.push(e.tokenId);
        last = e.finishReason;
      }
      assert.equal(streamed, r.text);
      assert.deepEqual(ids, r.ids);
      assert.equal(last, "stop_string");
      // A stop string that only starts to match is held back while streaming, then released in full.
      const never = `${stop}\u0007never`;
      let held = "";
      for await (const e of streamGenerate(engine, tokenizer, "Hello", { ...opts, stopStrings: [never] }))
        held += e.text;
      assert.equal(held, free.text);
    });

    test("streaming without stops yields every token and the full text", async () => {
      const r = await generate(engine, tokenizer, prompt, { maxNewTokens: 20, ...noStop });
      let text = "";
      const ids: number[] = [];
      for await (const e of streamGenerate(engine, tokenizer, prompt, { maxNewTokens: 20, ...noStop })) {
        text += e.text;
        ids.push(e.tokenId);
      }
      assert.deepEqual(ids, r.ids);
      assert.equal(text, r.text);
      const rows = new Set<number>();
      for await (const e of streamGenerateBatch(engine, tokenizer, [prompt, "Hi"], {
        maxNewTokens: 3,
        ...noStop,
      })) {
        rows.add(e.row);
      }
      assert.deepEqual([...rows].sort(), [0, 1]);
    });

    test("steering only generated positions (hooksForStep) equals the same hook under full recomputation", async () => {
      const u = rng(77);
      const v = Float32Array.from({ length: c.hiddenSize }, () => 6 * (u() - 0.5));
      const steps: GenerateStep[] = [];
      const steered = await generate(engine, tokenizer, prompt, {
        maxNewTokens: 10,
        ...noStop,
        hooksForStep: (s) => {
          steps.push(s);
          return [steerGenerated(0, v, s.promptLengths)];
        },
      });
      const oracle = await greedyByRecompute(engine, prompt, 10, (pl) => [steerGenerated(0, v, [pl])]);
      assert.deepEqual(steered.ids, oracle);
      const plain = await generate(engine, tokenizer, prompt, { maxNewTokens: 10, ...noStop });
      assert.equal(
        steered.ids[0],
        plain.ids[0],
        "the prompt is not steered, so the first token is unchanged",
      );
      assert.notDeepEqual(steered.ids, plain.ids, "the steering had no effect");
      assert.deepEqual(
        steps.map((s) => s.step),
        Array.from({ length: 10 }, (_, i) => i),
      );
      assert.deepEqual(steps[0]!.promptLengths, [prompt.length]);
      // Nothing persists: the next unsteered call equals the earlier unsteered one.
      assert.deepEqual(
        (await generate(engine, tokenizer, prompt, { maxNewTokens: 10, ...noStop })).ids,
        plain.ids,
      );
    });

    test("opts.hooks apply at every step, prompt included", async () => {
      const zero: HookBinding = { point: { layer: 0, site: "mlp_out" }, fn: (ctx) => ctx.hidden.fill(0) };
      const r = await generate(engine, tokenizer, prompt, { maxNewTokens: 6, ...noStop, hooks: [zero] });
      assert.deepEqual(r.ids, await greedyByRecompute(engine, prompt, 6, () => [zero]));
    });

    test("budget, context limit, abort and bad inputs", async () => {
      const short = await generate(engine, tokenizer, prompt, { maxNewTokens: 1, ...noStop });
      assert.equal(short.ids.length, 1);
      const long = Array.from({ length: c.maxPositions - 2 }, (_, i) => 10 + (i % 50));
      const capped = await generate(engine, null, long, { maxNewTokens: 10, ...noStop });
      assert.equal(capped.ids.length, 2);
      assert.equal(capped.finishReason, "length");
      const ac = new AbortController();
      ac.abort();
      const aborted = await generate(engine, tokenizer, prompt, {
        maxNewTokens: 10,
        ...noStop,
        signal: ac.signal,
      });
      assert.equal(aborted.finishReason, "aborted");
      assert.equal(aborted.ids.length, 1);
      const bad = (e: unknown) => isSteerlabError(e, "bad_input");
      await assert.rejects(generate(engine, null, "text"), bad);
      await assert.rejects(generate(engine, tokenizer, [], {}), bad);
      await assert.rejects(generate(engine, tokenizer, prompt, { maxNewTokens: 0 }), bad);
      await assert.rejects(generate(engine, tokenizer, prompt, { stopStrings: [""] }), bad);
    });
  });
}
