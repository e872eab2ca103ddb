/**
 * A 7B-shape quantized model loads, generates and steers (skipped unless STEERLAB_BIG_GGUF names a file: it
 * takes minutes and about 2x the file in memory). Write one with
 *   npx tsx bench/engine.bench.ts --files llama7b --dtypes Q4_0 --write-only --dir /tmp/sl7b
 * then STEERLAB_BIG_GGUF=/tmp/sl7b/llama7b-Q4_0.gguf node --test dist/test/model/big-model.test.js
 * on each backend (STEERLAB_BIG_BACKENDS=ggml,onnxruntime, the default; ggml only where its addon is built).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { generate } from "../../src/model/generate.js";
import { type Backend, openModel } from "../../src/model/open.js";
import { gaussianFrom } from "../../src/model/random.js";
import { ggmlAvailable } from "../../src/runtime/ggml/addon.js";
import { steeringHooks } from "../../src/steer/apply.js";
import { makeVector } from "../../src/steer/vector.js";

const file = process.env.STEERLAB_BIG_GGUF;

const backends = (process.env.STEERLAB_BIG_BACKENDS ?? "ggml,onnxruntime").split(",") as Backend[];

for (const backend of backends)
  test(`a big quantized GGUF loads, generates greedily and steers (${backend})`, {
    skip: !file ? "set STEERLAB_BIG_GGUF" : backend === "ggml" && !ggmlAvailable().ok,
  }, async () => {
    const { model: m, engine } = await openModel(file!, { backend, threads: 2 });
    try {
      const c = m.config;
      const layer = Math.floor(c.nLayers / 2);
      const g = gaussianFrom(11, 0);
      const v = Float32Array.from({ length: c.hiddenSize }, g);
      const norm = Math.hypot(...v);
      for (let i = 0; i < v.length; i++) v[i] = v[i]! / norm;
      const vector = makeVector(new Map([[layer, v]]), { scale: "unit" });
      let steps = 0;
      const opts = {
        maxNewTokens: 6,
        stopTokens: [],
        onLogits: (e: { logits: Float32Array }) => {
          steps++;
          assert.equal(e.logits.length, c.vocabSize);
          assert.ok(e.logits.every(Number.isFinite), "non-finite logits");
        },
      };
      const prompt = Array.from({ length: 12 }, (_, i) => 100 + 37 * i);
      const base = await generate(engine, null, prompt, opts);
      assert.equal(base.ids.length, 6);
      // r_e = 0 leaves every bit as it was; r_e = sqrt(D) (about the residual norm here) changes the greedy text.
      const zero = await generate(engine, null, prompt, {
        ...opts,
        hooks: steeringHooks(vector, { coeff: 0 }),
      });
      assert.deepEqual(zero.ids, base.ids);
      const steered = await generate(engine, null, prompt, {
        ...opts,
        hooks: steeringHooks(vector, { coeff: Math.sqrt(c.hiddenSize) }),
      });
      assert.equal(steered.ids.length, 6);
      assert.notDeepEqual(steered.ids, base.ids);
      assert.equal(steps, 18);
    } finally {
      await engine.dispose();
    }
  });
