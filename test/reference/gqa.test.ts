import assert from "node:assert/strict";
import { test } from "node:test";
import type { ModelConfig } from "../../src/model/config.js";
import { randomWeights, TINY_CONFIGS } from "../../src/model/random.js";
import type { Weights } from "../../src/model/weights.js";
import { ReferenceEngine } from "../../src/reference/engine.js";
import { tensor } from "../../src/tensor.js";

/** The same model with every KV head repeated, so each query head owns a copy of the KV head it shares. */
function expandKv(c: ModelConfig, w: Weights): { c: ModelConfig; w: Weights } {
  const rep = c.nHeads / c.nKvHeads;
  const hd = c.headDim;
  const D = c.hiddenSize;
  const out: Weights = new Map(w);
  for (let l = 0; l < c.nLayers; l++) {
    for (const kind of ["k", "v"]) {
      for (const part of ["weight", "bias"]) {
        const name = `blocks.${l}.attn.${kind}.${part}`;
        const t = w.get(name);
        if (!t) continue;
        const cols = part === "weight" ? D : 1;
        const data = new Float32Array(c.nHeads * hd * cols);
        for (let h = 0; h < c.nHeads; h++) {
          const src = Math.floor(h / rep) * hd * cols;
          data.set(t.data.subarray(src, src + hd * cols), h * hd * cols);
        }
        out.set(name, tensor(part === "weight" ? [c.nHeads * hd, D] : [c.nHeads * hd], data));
      }
    }
  }
  return { c: { ...c, nKvHeads: c.nHeads }, w: out };
}

const ids = [[5, 17, 3, 99, 250, 8, 41, 7]];

for (const nKv of [1, 2]) {
  for (const base of ["llama", "qwen2"]) {
    test(`GQA ${base} nKvHeads=${nKv}: equals the model with KV heads repeated to nKvHeads=nHeads`, async () => {
      const c: ModelConfig = { ...TINY_CONFIGS[base]!, nKvHeads: nKv };
      const w = randomWeights(c, 4);
      const full = expandKv(c, w);
      assert.equal(full.c.nKvHeads, c.nHeads);
      const a = await new ReferenceEngine(c, w).forward({ ids }, { logits: "all" });
      const b = await new ReferenceEngine(full.c, full.w).forward({ ids }, { logits: "all" });
      let m = 0;
      for (let i = 0; i < a.logits.length; i++) m = Math.max(m, Math.abs(a.logits[i]! - b.logits[i]!));
      assert.ok(m < 1e-5, `max diff ${m}`);
    });
  }
}

test("GQA: the head-to-KV mapping matters (swapping KV heads changes the output)", async () => {
  const c: ModelConfig = { ...TINY_CONFIGS.llama!, nKvHeads: 2 };
  const w = randomWeights(c, 4);
  const swapped: Weights = new Map(w);
  const hd = c.headDim;
  const D = c.hiddenSize;
  for (const kind of ["k", "v"]) {
    const name = `blocks.0.attn.${kind}.weight`;
    const t = w.get(name)!;
    const data = new Float32Array(t.data.length);
    data.set(t.data.subarray(hd * D, 2 * hd * D), 0);
    data.set(t.data.subarray(0, hd * D), hd * D);
    swapped.set(name, tensor(t.shape, data));
  }
  const a = await new ReferenceEngine(c, w).forward({ ids });
  const b = await new ReferenceEngine(c, swapped).forward({ ids });
  let m = 0;
  for (let i = 0; i < a.logits.length; i++) m = Math.max(m, Math.abs(a.logits[i]! - b.logits[i]!));
  assert.ok(m > 1e-2, `max diff ${m}`);
});
