/**
 * Quantized GGUF weights run quantized on ONNX Runtime (MatMulNBits / GatherBlockQuantized), for every ggml type
 * steerlab reads. Two oracles per type, teacher-forced next-token probabilities at every position:
 *  - the reference engine on the dequantized weights of the same file: the exact target. With quantCompute
 *    "f32" ONNX Runtime computes that model (tolerance: f32 rounding, 2e-5).
 *  - llama.cpp (node-llama-cpp) on the same file. llama.cpp quantizes the activations to 8 bits before its
 *    quantized matmuls (Q8_0 / Q8_K blocks), and so does our default quantCompute "int8" (MatMulNBits
 *    accuracy_level 4, int8 per block): two different activation roundings. The exact engines differ from
 *    llama.cpp by its rounding alone (bound 0.05 in probability; measured 1.8e-2 .. 4.4e-2 on these peaky tiny
 *    models, logits of std ~3), the int8 engine by both (bound 0.08; measured 2.0e-2 .. 6.3e-2, the offset
 *    types Q4_1/Q5_1/Q4_K/Q5_K the largest).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { byteLevelTokenizerJson } from "../../src/io/bpe-train.js";
import { type GgufWriteDtype, saveGgufModel } from "../../src/io/gguf-model.js";
import { GGML_TYPE, quantize } from "../../src/io/gguf-quant.js";
import { ggufTokenizerMetadata } from "../../src/io/tokenizer.js";
import { toNBits, toNBitsDecoded } from "../../src/model/graph/nbits.js";
import { loadModel } from "../../src/model/load.js";
import { randomWeights, rng } from "../../src/model/random.js";
import { isQuant, LazyWeights } from "../../src/model/weights.js";
import { ReferenceEngine } from "../../src/reference/engine.js";
import { createOrtEngine, engineWeightBytes } from "../../src/runtime/ort-engine.js";
import { maxDp, positionProbs } from "../helpers/engines.js";
import { llamaCppProbs } from "../helpers/llama-cpp.js";
import { assertWeightsClose, KQUANT_CONFIG as CONFIG } from "../helpers/tiny-models.js";

const dir = mkdtempSync(join(tmpdir(), "steerlab-quant-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const TYPES: GgufWriteDtype[] = [
  "Q4_0",
  "Q4_1",
  "Q5_0",
  "Q5_1",
  "Q8_0",
  "Q2_K",
  "Q3_K",
  "Q4_K",
  "Q5_K",
  "Q6_K",
];
const TEXT = "The quick brown fox jumps over the lazy dog, and then it asks: what is steering?";
/** Exact engines on the same dequantized model: f32 rounding only. */
const EXACT = 2e-5;
/** Exact engines against llama.cpp, which rounds the activations of quantized matmuls to 8 bits. */
const LLAMA_CPP = 0.05;
/** Our int8-activation compute against llama.cpp or the exact model: two roundings (see the file comment). */
const INT8 = 0.08;

describe("quantized GGUF weights on ONNX Runtime", () => {
  const weights = randomWeights(CONFIG, 11);
  const tokenizerJson = byteLevelTokenizerJson(CONFIG.vocabSize);
  const tokenizerMeta = ggufTokenizerMetadata(tokenizerJson, { bosTokenId: 1, eosTokenId: 2 });

  for (const type of TYPES) {
    test(`${type}: stays quantized; = dequantized reference (f32 compute); ~ llama.cpp (int8 compute)`, async (t) => {
      const file = join(dir, `${type}.gguf`);
      saveGgufModel(file, CONFIG, weights, { dtype: type, tokenizerMeta });
      const m = await loadModel(file);
      // Every matrix, the embedding and the head included, is held in the file's type; norms are f32.
      const matrices = [...m.weights].filter(([, w]) => w.shape.length === 2);
      assert.equal(matrices.length, 2 + 7 * CONFIG.nLayers);
      for (const [name, w] of matrices) assert.ok(isQuant(w), `${name} was expanded`);
      assert.deepEqual(Object.keys(m.dtypes).sort(), ["F32", type].sort());

      const ids = m.tokenizer!.encode(TEXT);
      const ref = await positionProbs(ReferenceEngine.fromModel(m), ids);
      const exact = await createOrtEngine(m, { threads: 1, quantCompute: "f32" });
      const fast = await createOrtEngine(m, { threads: 1 });
      const dExact = maxDp(await positionProbs(exact, ids), ref);
      const fastProbs = await positionProbs(fast, ids);
      const dFast = maxDp(fastProbs, ref);
      await exact.dispose();
      await fast.dispose();
      const cpp = await llamaCppProbs(file, ids, CONFIG.vocabSize);
      const dCppRef = maxDp(ref, cpp);
      const dCppFast = maxDp(fastProbs, cpp);
      t.diagnostic(
        `${type}: ORT f32 vs dequantized reference ${dExact.toExponential(2)}; ORT int8 vs reference ${dFast.toExponential(2)}; ` +
          `reference vs llama.cpp ${dCppRef.toExponential(2)}; ORT int8 vs llama.cpp ${dCppFast.toExponential(2)} (max |dp|, ${ids.length} positions)`,
      );
      assert.ok(dExact <= EXACT, `ORT f32 vs dequantized reference: ${dExact}`);
      assert.ok(dCppRef <= LLAMA_CPP, `reference vs llama.cpp: ${dCppRef}`);
      assert.ok(dCppFast <= INT8, `ORT int8 vs llama.cpp: ${dCppFast}`);
      assert.ok(dFast <= INT8, `ORT int8 vs reference: ${dFast}`);
    });
  }
});

test("the bit-moving paths (Q4_0, Q8_0, Q4_K) give the decoding path's codes, scales and offsets", () => {
  const u = rng(9);
  const x = Float32Array.from({ length: 8 * 512 }, () => 2 * u() - 1);
  for (const type of [GGML_TYPE.Q4_0, GGML_TYPE.Q8_0, GGML_TYPE.Q4_K]) {
    const q = { shape: [8, 512] as [number, number], ggmlType: type, bytes: quantize(type, x) };
    assert.deepEqual(toNBits(q, 0.125), toNBitsDecoded(q, 0.125), `type ${type}`);
    // The same bytes at an odd offset in a larger buffer (a view into an in-memory file).
    const shifted = new Uint8Array(q.bytes.length + 1);
    shifted.set(q.bytes, 1);
    const view = { ...q, bytes: shifted.subarray(1) };
    assert.deepEqual(toNBits(view, 0.125), toNBitsDecoded(q, 0.125), `type ${type}, unaligned`);
  }
});

describe("block-by-block loading", () => {
  test("a GGUF's tensors are read when asked for, never kept; the engine says what it will hold first", async () => {
    const file = join(dir, "lazy.gguf");
    saveGgufModel(file, CONFIG, randomWeights(CONFIG, 2), { dtype: "Q4_K" });
    const m = await loadModel(file);
    assert.ok(m.weights instanceof LazyWeights);
    const a = m.weights.get("blocks.1.mlp.up.weight")!;
    const b = m.weights.get("blocks.1.mlp.up.weight")!;
    assert.notEqual(a, b, "a second get reads the file again: nothing is cached");
    assert.ok(isQuant(a) && a.ggmlType === 12);
    const notes: string[] = [];
    const steps: number[] = [];
    const e = await createOrtEngine(m, {
      threads: 1,
      consumeWeights: true,
      onInfo: (s) => notes.push(s),
      onProgress: (p) => steps.push(p.done),
    });
    // The estimate said before the build is what was handed to ONNX Runtime, up to small constants it leaves
    // out (block-sum ones, the embedding's unpacked zero points: 2,432 bytes here).
    assert.equal(notes.length, 1);
    const estimate = engineWeightBytes(CONFIG, (await loadModel(file)).weights);
    assert.ok(Math.abs(e.weightBytes - estimate) / e.weightBytes < 0.01, `${e.weightBytes} vs ${estimate}`);
    assert.match(notes[0]!, /building 2 blocks on ONNX Runtime: [\d.]+ MiB of weights/);
    assert.deepEqual(steps, [1, 2, 3]);
    assert.equal(m.weights.size, 0, "every tensor was handed over and dropped");
    await e.dispose();
  });

  test("a loaded model streams into a new GGUF: each tensor read when the writer reaches it", async () => {
    const src = join(dir, "stream-src.gguf");
    saveGgufModel(src, CONFIG, randomWeights(CONFIG, 5), { dtype: "Q4_K" });
    const m = await loadModel(src);
    const out = join(dir, "stream-out.gguf");
    saveGgufModel(out, m.config, m.weights, { dtype: "F32" });
    assertWeightsClose((await loadModel(out)).weights, m.weights);
  });
});
