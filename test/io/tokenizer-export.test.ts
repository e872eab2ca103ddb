/**
 * ggufTokenizerMetadata against llama.cpp itself: a trained byte-level BPE tokenizer is written as a vocab-only GGUF,
 * loaded by llama.cpp (node-llama-cpp, vocabOnly) and must tokenize exactly as steerlab does, for each pre-tokenizer
 * steerlab can export (gpt-2, llama-bpe, dbrx = llama-bpe without ignore_merges, qwen2).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { byteLevelTokenizerJson, FIXTURE_TEXT } from "../../src/io/bpe-train.js";
import { encodeGguf, type GgufValue, gv } from "../../src/io/gguf.js";
import { tokenizerFromGguf, tokenizerFromJson } from "../../src/io/tokenizer.js";
import { LLAMA3_PATTERN_HF, QWEN2_PATTERN_HF } from "../../src/io/tokenizer-gguf.js";
import { ggufTokenizerMetadata } from "../../src/io/tokenizer-gguf-export.js";
import { llamaCpp } from "../helpers/llama-cpp.js";

const dir = mkdtempSync(join(tmpdir(), "steerlab-tokexport-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const TEXTS = [
  "Hello world! The quick brown fox.",
  "  leading spaces, trailing  \n\n and tabs\tinside\r\n",
  "Café 東京 ñ 😀 — “quotes”, 12345 and 3.14159",
  "I can't help with that. They'RE here; we'll see 1000000 items",
  FIXTURE_TEXT.slice(0, 400),
];

/** Plain metadata (as ggufTokenizerMetadata returns it) -> typed GGUF values. */
function typed(meta: Record<string, unknown>): Map<string, GgufValue> {
  const out = new Map<string, GgufValue>();
  out.set("general.architecture", gv.str("llama"));
  // llama.cpp reads the hyperparameters even for a vocab-only load.
  for (const [k, v] of Object.entries({
    "llama.context_length": 64,
    "llama.embedding_length": 16,
    "llama.feed_forward_length": 32,
    "llama.block_count": 1,
    "llama.attention.head_count": 2,
    "llama.attention.head_count_kv": 2,
  })) {
    out.set(k, gv.u32(v));
  }
  out.set("llama.attention.layer_norm_rms_epsilon", gv.f32(1e-5));
  for (const [k, v] of Object.entries(meta)) {
    if (typeof v === "string") out.set(k, gv.str(v));
    else if (typeof v === "boolean") out.set(k, gv.bool(v));
    else if (typeof v === "number") out.set(k, gv.u32(v));
    else if (Array.isArray(v) && v.every((x) => typeof x === "string")) out.set(k, gv.arr("str", v));
    else if (Array.isArray(v)) out.set(k, gv.arr("i32", v as number[]));
    else throw new Error(`unexpected metadata ${k}`);
  }
  return out;
}

type Pre = "gpt-2" | "llama-bpe" | "dbrx" | "qwen2";
function variant(pre: Pre): Record<string, unknown> {
  const json = byteLevelTokenizerJson(400) as unknown as Record<string, unknown>;
  const split = (regex: string) => ({
    type: "Sequence",
    pretokenizers: [
      { type: "Split", pattern: { Regex: regex }, behavior: "Isolated", invert: false },
      { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
    ],
  });
  if (pre === "llama-bpe" || pre === "dbrx") json.pre_tokenizer = split(LLAMA3_PATTERN_HF);
  // Llama-3's tokenizer.json (and llama.cpp for llama-bpe) skip BPE for words that are whole vocab entries.
  if (pre === "llama-bpe") (json.model as Record<string, unknown>).ignore_merges = true;
  if (pre === "qwen2") json.pre_tokenizer = split(QWEN2_PATTERN_HF);
  return json;
}

for (const pre of ["gpt-2", "llama-bpe", "dbrx", "qwen2"] as const) {
  test(`exported ${pre} vocabulary: llama.cpp loads it and tokenizes exactly as steerlab`, async () => {
    const json = variant(pre);
    const meta = ggufTokenizerMetadata(json, { eosTokenId: 2, chatTemplate: "{{ messages[0]['content'] }}" });
    assert.equal(meta["tokenizer.ggml.pre"], pre);
    assert.equal(meta["tokenizer.ggml.bos_token_id"], 1);
    assert.equal(meta["tokenizer.ggml.add_bos_token"], true);
    const file = join(dir, `${pre}.gguf`);
    writeFileSync(file, encodeGguf(typed(meta), []));

    const ours = tokenizerFromJson(json);
    const fromGguf = tokenizerFromGguf(meta, file);
    const llama = await llamaCpp();
    const model = await llama.loadModel({ modelPath: file, vocabOnly: true });
    try {
      assert.equal(model.tokens.bos, 1);
      assert.equal(model.tokens.eos, 2);
      assert.equal(model.tokens.shouldPrependBosToken, true);
      for (const text of TEXTS) {
        const theirs = [...model.tokenize(text)].map(Number);
        assert.deepEqual(ours.encode(text, { addSpecialTokens: false }), theirs, JSON.stringify(text));
        assert.deepEqual(fromGguf.encode(text), [1, ...theirs], JSON.stringify(text));
        assert.equal(model.detokenize(model.tokenize(text)), text);
      }
    } finally {
      await model.dispose();
    }
  });
}

test("ggufTokenizerMetadata: add_bos/add_eos follow the post-processor, explicit options and missing ids", () => {
  const json = byteLevelTokenizerJson(300);
  const dflt = ggufTokenizerMetadata(json);
  assert.equal(dflt["tokenizer.ggml.add_bos_token"], true);
  assert.equal(dflt["tokenizer.ggml.bos_token_id"], 1);
  assert.equal(dflt["tokenizer.ggml.add_eos_token"], false);
  assert.equal(dflt["tokenizer.ggml.eos_token_id"], undefined);
  const noBos = ggufTokenizerMetadata(json, { bosTokenId: null, eosTokenId: 2 });
  assert.equal(noBos["tokenizer.ggml.add_bos_token"], false);
  assert.equal(noBos["tokenizer.ggml.bos_token_id"], undefined);
  assert.equal(noBos["tokenizer.ggml.eos_token_id"], 2);
  const forced = ggufTokenizerMetadata(json, { eosTokenId: 2, addBos: false, addEos: true });
  assert.equal(forced["tokenizer.ggml.add_bos_token"], false);
  assert.equal(forced["tokenizer.ggml.add_eos_token"], true);
  // The GGUF side honours them: encode() adds exactly what the flags say.
  const tok = tokenizerFromGguf(forced, "forced.gguf");
  const plain = tok.encode("hi", { addSpecialTokens: false });
  assert.deepEqual(tok.encode("hi"), [...plain, 2]);
});

test("ggufTokenizerMetadata rejects tokenizers llama.cpp could not run the same way", () => {
  const json = byteLevelTokenizerJson(300) as unknown as Record<string, unknown>;
  assert.throws(() => ggufTokenizerMetadata({ ...json, decoder: { type: "Metaspace" } }), /decoder/);
  assert.throws(
    () => ggufTokenizerMetadata({ ...json, pre_tokenizer: { type: "Whitespace" } }),
    (e) => e instanceof Error && /pre_tokenizer/.test(e.message),
  );
  assert.throws(() => ggufTokenizerMetadata({ model: { type: "Unigram", vocab: [] } }), /model/);
  assert.throws(() => ggufTokenizerMetadata({ ...json, normalizer: { type: "NFC" } }), /normalizer/);
  // ignore_merges is implied by the pre-tokenizer name in llama.cpp: only the Llama-3 regex can carry it.
  const model = json.model as Record<string, unknown>;
  assert.throws(
    () => ggufTokenizerMetadata({ ...json, model: { ...model, ignore_merges: true } }),
    /ignore_merges/,
  );
  const llama3NoIgnore = { ...variant("llama-bpe"), model: { ...model, ignore_merges: false } };
  assert.equal(ggufTokenizerMetadata(llama3NoIgnore)["tokenizer.ggml.pre"], "dbrx");
});
