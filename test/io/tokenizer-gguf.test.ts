/**
 * GGUF vocabularies against llama.cpp's own tokenizer test vectors (models/ggml-vocab-*.gguf + .inp/.out, from the
 * llama.cpp sources in node-llama-cpp). As in llama.cpp's test-tokenizer-0: encode without BOS (add_special=false),
 * compare every input's ids exactly; we also check that decoding the expected ids gives the input back.
 * More vocabularies (other pre-tokenizers) are in tokenizer-gguf-more.test.ts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { isSteerlabError } from "../../src/errors.js";
import { tokenizerFromGguf, tokenizerFromJson } from "../../src/io/tokenizer.js";
import { tokenizerJsonFromGguf } from "../../src/io/tokenizer-gguf.js";
import { ggufTokenizerMetadata } from "../../src/io/tokenizer-gguf-export.js";
import { requireLlamaRepo, vocabCases, vocabFailures, vocabMetadata } from "../helpers/llama-vocab.js";

// Parsed metadata per vocab, read once (callers that modify it take a copy).
const metas = new Map<string, Map<string, unknown>>();
const metaOf = (name: string): Map<string, unknown> => {
  const m = metas.get(name) ?? vocabMetadata(requireLlamaRepo(), name);
  metas.set(name, m);
  return m;
};

interface Expect {
  name: string;
  /** llama.cpp's add_bos default for this vocab (BOS added by encode() with special tokens). */
  addsBos: boolean;
}
const VOCABS: Expect[] = [
  { name: "gpt-2", addsBos: false },
  { name: "llama-bpe", addsBos: true },
  { name: "qwen2", addsBos: false },
  { name: "llama-spm", addsBos: true },
];

for (const v of VOCABS) {
  test(`ggml-vocab-${v.name}: every test vector encodes to llama.cpp's ids and decodes back`, () => {
    const r = requireLlamaRepo();
    const meta = metaOf(v.name);
    const tok = tokenizerFromGguf(meta, `ggml-vocab-${v.name}.gguf`);
    const cases = vocabCases(r, v.name);
    assert.ok(cases.length >= 30, `${cases.length} cases`);
    const failures = vocabFailures(tok, cases);
    assert.deepEqual(failures, [], `${failures.length} of ${2 * cases.length} checks failed`);

    // BOS as llama.cpp adds it, and the ids the metadata names.
    const bos = meta.get("tokenizer.ggml.bos_token_id") as number;
    assert.equal(tok.bosTokenId, bos);
    assert.ok(tok.eosTokenIds.includes(meta.get("tokenizer.ggml.eos_token_id") as number));
    const plain = tok.encode("Hello world", { addSpecialTokens: false });
    assert.deepEqual(tok.encode("Hello world"), v.addsBos ? [bos, ...plain] : plain);
    assert.equal(tok.vocabSize, (meta.get("tokenizer.ggml.tokens") as string[]).length);
    assert.equal(
      tok.tokenString(plain[0] as number),
      (meta.get("tokenizer.ggml.tokens") as string[])[plain[0] as number],
    );
  });
}

test("special tokens: control tokens are skipped on request and matched verbatim in text", () => {
  const tok = tokenizerFromGguf(metaOf("qwen2"), "qwen2");
  const ids = tok.encode("<|im_start|>user\nhi<|im_end|>", { addSpecialTokens: false });
  assert.equal(ids[0], 151644);
  assert.equal(ids[ids.length - 1], 151645);
  assert.equal(tok.decode(ids), "<|im_start|>user\nhi<|im_end|>");
  assert.equal(tok.decode(ids, { skipSpecialTokens: true }), "user\nhi");
  assert.match(tok.chatTemplate ?? "", /im_start/);
  assert.equal(
    tok.applyChatTemplate([{ role: "user", content: "hi" }], { addGenerationPrompt: true }),
    "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
  );
});

test("the models' own tokenizer.json regex spelling ((?i:...) group) gives the same ids for llama-bpe and qwen2", () => {
  const r = requireLlamaRepo();
  const hfPatterns: Record<string, string> = {
    "llama-bpe":
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    qwen2:
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  };
  for (const [name, pattern] of Object.entries(hfPatterns)) {
    const { json } = tokenizerJsonFromGguf(metaOf(name), name);
    const pre = json.pre_tokenizer as { pretokenizers: { pattern: { Regex: string } }[] };
    assert.notEqual(pre.pretokenizers[0]?.pattern.Regex, pattern);
    (pre.pretokenizers[0] as { pattern: { Regex: string } }).pattern.Regex = pattern;
    const tok = tokenizerFromJson(json);
    let bad = 0;
    const cases = vocabCases(r, name);
    for (const c of cases) {
      if (JSON.stringify(tok.encode(c.input, { addSpecialTokens: false })) !== JSON.stringify(c.ids)) bad++;
    }
    assert.equal(bad, 0, `${name}: ${bad} of ${cases.length} mismatches`);
  }
});

test("ggufTokenizerMetadata reproduces the GGUF vocab it came from (gpt-2, llama-bpe, qwen2)", () => {
  for (const name of ["gpt-2", "llama-bpe", "qwen2"]) {
    const meta = metaOf(name);
    const { json } = tokenizerJsonFromGguf(meta, name);
    const out = ggufTokenizerMetadata(json, {
      bosTokenId: meta.get("tokenizer.ggml.bos_token_id") as number,
      eosTokenId: meta.get("tokenizer.ggml.eos_token_id") as number,
    });
    assert.equal(out["tokenizer.ggml.model"], "gpt2");
    assert.equal(out["tokenizer.ggml.pre"], meta.get("tokenizer.ggml.pre"), name);
    assert.deepEqual(out["tokenizer.ggml.tokens"], meta.get("tokenizer.ggml.tokens"), name);
    assert.deepEqual(out["tokenizer.ggml.token_type"], meta.get("tokenizer.ggml.token_type"), name);
    assert.deepEqual(out["tokenizer.ggml.merges"], meta.get("tokenizer.ggml.merges"), name);
    assert.equal(out["tokenizer.ggml.bos_token_id"], meta.get("tokenizer.ggml.bos_token_id"));
    assert.equal(out["tokenizer.ggml.add_bos_token"], name === "llama-bpe");
  }
});

test("unsupported GGUF tokenizers fail with a SteerlabError naming the field", () => {
  const meta = new Map(metaOf("gpt-2"));
  meta.set("tokenizer.ggml.pre", "no-such-pre");
  assert.throws(
    () => tokenizerFromGguf(meta, "x.gguf"),
    (e) => isSteerlabError(e, "unsupported") && e.details.field === "tokenizer.ggml.pre",
  );
  meta.set("tokenizer.ggml.model", "t5");
  assert.throws(
    () => tokenizerFromGguf(meta, "x.gguf"),
    (e) => isSteerlabError(e, "unsupported") && e.details.field === "tokenizer.ggml.model",
  );
  assert.throws(
    () => tokenizerFromGguf({ "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": 5 }, "y.gguf"),
    (e) => isSteerlabError(e, "bad_config") && e.details.file === "y.gguf",
  );
});
