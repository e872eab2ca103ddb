/**
 * The GGUF files steerlab writes load in llama.cpp (node-llama-cpp 3.21.1): proves the metadata and tensor
 * set are complete for every architecture. Logit parity is tested elsewhere.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { TINY_CONFIGS } from "../../src/model/random.js";
import { llamaCpp } from "../helpers/llama-cpp.js";
import { writeTinyModels } from "../helpers/tiny-models.js";

const dir = mkdtempSync(join(tmpdir(), "steerlab-gguf-llama-"));
after(() => rmSync(dir, { recursive: true, force: true }));

for (const name of Object.keys(TINY_CONFIGS)) {
  const dtypes = name === "llama" ? (["F32", "F16", "Q8_0", "Q4_0"] as const) : (["F32", "Q8_0"] as const);
  for (const dtype of dtypes) {
    test(`llama.cpp loads a ${dtype} ${name} GGUF written by steerlab`, async () => {
      const sub = mkdtempSync(join(dir, `${name}-${dtype}-`));
      const t = writeTinyModels(sub, name, { ggufDtype: dtype });
      const llama = await llamaCpp();
      const model = await llama.loadModel({ modelPath: t.ggufFile, gpuLayers: 0 });
      try {
        assert.equal(
          model.fileInfo.metadata.general.architecture,
          t.config.arch === "mistral" ? "llama" : t.config.arch,
        );
        assert.equal(model.trainContextSize, t.config.maxPositions);
        assert.equal(model.embeddingVectorSize, t.config.hiddenSize);
        // The vocabulary made it through: llama.cpp tokenizes with it.
        const ids = model.tokenize("hello world");
        assert.ok(ids.length > 0 && ids.every((id) => Number(id) < t.config.vocabSize));
        // A context can be created and a token evaluated (all tensors present with the right shapes).
        const ctx = await model.createContext({ contextSize: 32, threads: 1 });
        try {
          const seq = ctx.getSequence();
          const out = await seq.controlledEvaluate([[ids[0]!, { generateNext: { probabilities: true } }]]);
          const probs = out[0]?.next.probabilities;
          assert.ok(probs && probs.size > 0);
        } finally {
          await ctx.dispose();
        }
      } finally {
        await model.dispose();
      }
    });
  }
}
