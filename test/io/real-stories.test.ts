/**
 * The real pretrained stories260K (../shared/real-models, trained by others, files as published): its GGUF loads as
 * found (quirks and all), its HF folder is the same model, greedy decoding reproduces llama2.c's published sample,
 * and its next-token probabilities match llama.cpp at every position.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { byteLevelTokenizerJson } from "../../src/io/bpe-train.js";
import { saveGgufModel } from "../../src/io/gguf-model.js";
import { saveHfModel } from "../../src/io/hf-model.js";
import { ggufTokenizerMetadata } from "../../src/io/tokenizer.js";
import type { ModelConfig } from "../../src/model/config.js";
import { generate } from "../../src/model/generate.js";
import { loadModel } from "../../src/model/load.js";
import { randomWeights } from "../../src/model/random.js";
import { isQuant, type LoadDtype } from "../../src/model/weights.js";
import { ReferenceEngine } from "../../src/reference/engine.js";
import { createOrtEngine } from "../../src/runtime/ort-engine.js";
import { extractFromModel } from "../../src/steer/extract-model.js";
import { parseDataset } from "../../src/steer/pairs.js";
import { checkVectorFits } from "../../src/steer/vector.js";
import { softmaxRows } from "../helpers/engines.js";
import { llamaCppProbs } from "../helpers/llama-cpp.js";
import { assertWeightsClose } from "../helpers/tiny-models.js";

const ROOT = "../shared/real-models/stories260K";
const GGUF = join(ROOT, "stories260K.gguf");
const HF = join(ROOT, "hf");
const skip = existsSync(GGUF) ? false : `real model not found at ${ROOT}`;

/** llama2.c's published greedy sample for this model (doc/stories260K.md; README of ../shared/real-models). */
const SAMPLE =
  ", there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball." +
  " She wanted to play with it, but it was too high.";

describe("real model: stories260K", { skip }, () => {
  test("the GGUF loads as found: 0xFFFFFFFF special ids are absent with a warning", async () => {
    const seen: string[] = [];
    const m = await loadModel(GGUF, { onWarning: (w) => seen.push(w) });
    assert.equal(m.config.arch, "llama");
    assert.equal(m.config.nLayers, 5);
    assert.equal(m.config.vocabSize, 512);
    assert.ok(
      seen.some((w) => w.includes("tokenizer.ggml.padding_token_id = 4294967295")),
      seen.join("\n"),
    );
    assert.deepEqual(m.warnings, seen);
    // output.weight is stored but equals token_embd.weight: read once, as the tied model it is.
    assert.equal(m.config.tiedEmbeddings, true);
    assert.equal(m.weights.has("lm_head.weight"), false);
    assert.equal(m.tokenizer!.bosTokenId, 1);
  });

  test("the HF folder is the same model: same weights and fingerprint (context 512 vs the GGUF's 2048)", async () => {
    const g = await loadModel(GGUF);
    const h = await loadModel(HF);
    assert.equal(h.config.maxPositions, 512);
    assert.equal(g.config.maxPositions, 2048);
    assert.equal(h.fingerprint, g.fingerprint);
    assertWeightsClose(g.weights, h.weights);
  });

  test("greedy decoding reproduces llama2.c's published sample (both engines, both formats)", async () => {
    for (const path of [GGUF, HF]) {
      const m = await loadModel(path);
      for (const engine of [ReferenceEngine.fromModel(m), await createOrtEngine(m, { threads: 1 })]) {
        const out = await generate(engine, m.tokenizer, "Once upon a time", { maxNewTokens: 80 });
        assert.ok(out.text.startsWith(SAMPLE), `${path} ${engine.kind}: ${JSON.stringify(out.text)}`);
        await engine.dispose?.();
      }
    }
  });

  test("next-token probabilities match llama.cpp at every position (max |dp| <= 1e-5)", async (t) => {
    const m = await loadModel(GGUF);
    const ids = m.tokenizer!.encode(`Once upon a time${SAMPLE}`);
    assert.ok(ids.length >= 40, `${ids.length} tokens`);
    const want = await llamaCppProbs(GGUF, ids, 512);
    // The published next-token facts (README of ../shared/real-models): after "Once upon a time".
    const at = m.tokenizer!.encode("Once upon a time").length - 1;
    assert.ok(Math.abs(want[at]![432]! - 0.968794) < 2e-6, String(want[at]![432]));
    for (const engine of [ReferenceEngine.fromModel(m), await createOrtEngine(m, { threads: 1 })]) {
      const r = await engine.forward({ ids: [ids] }, { logits: "all" });
      const got = softmaxRows(r.logits, r.seq, r.vocab);
      let d = 0;
      for (let t = 0; t < ids.length; t++) {
        for (let i = 0; i < 512; i++) d = Math.max(d, Math.abs(got[t]![i]! - want[t]![i]!));
      }
      t.diagnostic(`${engine.kind} vs llama.cpp, ${ids.length} positions: max |dp| ${d.toExponential(2)}`);
      assert.ok(d <= 1e-5, `${engine.kind}: max |dp| ${d}`);
      await engine.dispose?.();
    }
  });
});

describe("--dtype on a dense checkpoint (stories260K HF, F32)", { skip }, () => {
  /** log p(next token) at every position of the published sample, on ONNX Runtime with the given dtype. */
  async function logprobs(dtype: LoadDtype, quantCompute: "f32" | "int8"): Promise<number[]> {
    const m = await loadModel(HF, { dtype });
    const ids = m.tokenizer!.encode(`Once upon a time${SAMPLE}`);
    const e = await createOrtEngine(m, { threads: 1, quantCompute });
    const r = await e.forward({ ids: [ids] }, { logits: "all" });
    await e.dispose();
    const rows = softmaxRows(r.logits, r.seq, r.vocab);
    return ids.slice(1).map((id, t) => Math.log(rows[t]![id]!));
  }

  test("q8 and q4 hold matrices quantized; measured log-prob error against f32", async (t) => {
    const q8 = await loadModel(HF, { dtype: "q8" });
    // Matrices with rows of whole 32-value blocks are quantized; the 172-wide down projections stay f32.
    assert.equal(
      q8.weights.get("blocks.0.attn.q.weight") !== undefined &&
        isQuant(q8.weights.get("blocks.0.attn.q.weight")!),
      true,
    );
    assert.equal(isQuant(q8.weights.get("blocks.0.mlp.down.weight")!), false);
    const base = await logprobs("f32", "f32");
    const err: Record<string, number> = {};
    for (const dtype of ["q8", "q4"] as const) {
      for (const qc of ["f32", "int8"] as const) {
        const got = await logprobs(dtype, qc);
        const mean = got.reduce((s, v, i) => s + Math.abs(v - base[i]!), 0) / got.length;
        err[`${dtype}/${qc}`] = mean;
        t.diagnostic(
          `--dtype ${dtype}, ${qc} compute: mean |d log p| ${mean.toFixed(4)} nats over ${got.length} tokens`,
        );
      }
    }
    // Measured here: q8 0.008 (f32 compute) / 0.012 (int8), q4 0.16: round-to-nearest 4-bit costs this tiny model.
    assert.ok(err["q8/f32"]! < 0.02 && err["q8/int8"]! < 0.03, JSON.stringify(err));
    assert.ok(err["q4/f32"]! < 0.3 && err["q4/f32"]! > err["q8/f32"]!, JSON.stringify(err));
  });
});

describe("architecture identity across formats", () => {
  const dir = mkdtempSync(join(tmpdir(), "steerlab-mistral-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("a Mistral HF folder and its GGUF (written as llama) share identity and fingerprint", async () => {
    const config: ModelConfig = {
      arch: "mistral",
      vocabSize: 320,
      hiddenSize: 64,
      nLayers: 2,
      nHeads: 4,
      nKvHeads: 2,
      headDim: 16,
      intermediateSize: 128,
      normEps: 1e-5,
      maxPositions: 256,
      ropeTheta: 1000000,
      ropeScaling: null,
      tiedEmbeddings: false,
      bosTokenId: 1,
      eosTokenIds: [2],
    };
    const weights = randomWeights(config, 3);
    const tokenizerJson = byteLevelTokenizerJson(config.vocabSize);
    saveHfModel(join(dir, "hf"), config, weights, { tokenizerJson });
    saveGgufModel(join(dir, "m.gguf"), config, weights, {
      tokenizerMeta: ggufTokenizerMetadata(tokenizerJson, { bosTokenId: 1, eosTokenId: 2 }),
    });
    const h = await loadModel(join(dir, "hf"));
    const g = await loadModel(join(dir, "m.gguf"));
    assert.equal(h.config.arch, "mistral");
    assert.equal(g.config.arch, "llama");
    assert.equal(h.fingerprint, g.fingerprint);
    // A vector extracted on the HF folder is accepted on the GGUF of the same weights.
    const engine = ReferenceEngine.fromModel(h);
    const pairs = parseDataset(
      ['{"positive": "a b c", "negative": "x y z"}', '{"positive": "d e", "negative": "u v"}'].join("\n"),
      "pairs.jsonl",
    );
    const v = await extractFromModel({ engine, tokenizer: h.tokenizer, model: h }, pairs, {
      method: "mean-diff",
    });
    assert.doesNotThrow(() => checkVectorFits(v, g.config, g.fingerprint));
    // ... and refused on other weights.
    const other = randomWeights(config, 4);
    saveGgufModel(join(dir, "other.gguf"), config, other, {});
    const o = await loadModel(join(dir, "other.gguf"));
    assert.throws(() => checkVectorFits(v, o.config, o.fingerprint), /fingerprint/);
  });
});
