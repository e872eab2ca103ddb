/**
 * End to end on a real (tiny, random) model: extract a vector from pairs that differ by one planted token, then
 * steer a neutral prompt with it. Steering +c must move the next-token distribution towards what follows the
 * positive member (and -c away from it); c = 0 and v - v must equal the unsteered run exactly.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { nextTokenLogprobs } from "../../src/model/logprobs.js";
import { openModel, requireTokenizer } from "../../src/model/open.js";
import { sum } from "../../src/steer/arithmetic.js";
import { extractFromModel } from "../../src/steer/extract-model.js";
import { loadDataset } from "../../src/steer/pairs.js";
import { preparePrompt, steerCallHooks } from "../../src/steer/steer-call.js";
import { loadVector, saveVector } from "../../src/steer/vector-load.js";
import { writeTinyModels } from "../helpers/tiny-models.js";

const dir = mkdtempSync(join(tmpdir(), "steerlab-e2e-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const PROMPTS = [
  "the cat sat",
  "a dog ran home",
  "we went to the sea",
  "birds fly south",
  "she reads a book",
  "rain falls",
  "he plays music",
  "snow is cold",
  "stars shine at night",
  "the river flows",
];

for (const backend of ["reference", "onnxruntime"] as const) {
  test(`${backend}: a planted-token vector steers the next-token distribution in its direction`, async () => {
    const tiny = writeTinyModels(dir, "llama", { seed: 11 });
    const pairsFile = join(dir, "pairs.jsonl");
    writeFileSync(
      pairsFile,
      PROMPTS.map((p) => JSON.stringify({ prompt: `${p} `, positive: "yes", negative: "no" })).join("\n"),
    );
    const data = loadDataset(pairsFile);
    const m = await openModel(tiny.hfDir, { backend });
    try {
      const tok = requireTokenizer(m);
      const v = await extractFromModel({ engine: m.engine, tokenizer: tok, model: m.model }, data, {
        method: "repe-pca",
        batchSize: 4,
      });
      assert.equal(v.directions.size, tiny.config.nLayers);
      // The planted token separates every pair perfectly at the last layer.
      assert.equal(v.diagnostics.get(tiny.config.nLayers - 1)!.trainAccuracy, 1);

      // Round trip through both file formats keeps the directions.
      const f = join(dir, `v-${backend}.safetensors`);
      saveVector(f, v);
      const back = loadVector(f);
      assert.deepEqual(back.directions.get(1), v.directions.get(1));

      // What the planted token does to the next-token distribution, averaged over prompts.
      const V = tiny.config.vocabSize;
      const meanLp = async (texts: string[]) => {
        const acc = new Float64Array(V);
        for (const t of texts) {
          const [d] = await nextTokenLogprobs(m.engine, tok.encode(t), { positions: "last" });
          for (let i = 0; i < V; i++) acc[i]! += d!.logprobs[i]! / texts.length;
        }
        return acc;
      };
      const target = await meanLp(PROMPTS.map((p) => `${p} yes`));
      const neg = await meanLp(PROMPTS.map((p) => `${p} no`));
      for (let i = 0; i < V; i++) target[i] = target[i]! - neg[i]!;

      const p = preparePrompt(tok, "the moon is bright ");
      const lpWith = async (coeff: number, vec = v) => {
        const hooks = steerCallHooks(tok, p, {
          vector: vec,
          coeff,
          layers: "all",
          nLayers: tiny.config.nLayers,
        });
        const [d] = await nextTokenLogprobs(m.engine, p.ids, { positions: "last", hooks });
        return d!.logprobs;
      };
      const base = await lpWith(0);
      const [dBase] = await nextTokenLogprobs(m.engine, p.ids, { positions: "last" });
      assert.deepEqual(base, dBase!.logprobs, "coefficient 0 is identical to no steering");
      const zero = sum([v, v], [1, -1]);
      assert.deepEqual(await lpWith(3, zero), dBase!.logprobs, "v - v is the baseline");

      const shift = (lp: Float64Array) => {
        let s = 0;
        for (let i = 0; i < V; i++) s += (lp[i]! - base[i]!) * target[i]!;
        return s;
      };
      const up = shift(await lpWith(4));
      const down = shift(await lpWith(-4));
      assert.ok(up > 0, `steering +4 moves towards the positive member's next-token distribution (${up})`);
      assert.ok(down < 0, `steering -4 moves away from it (${down})`);
    } finally {
      await m.engine.dispose();
    }
  });
}
