/**
 * More GGUF vocabularies (further pre-tokenizer families) against llama.cpp's test vectors. Vocabs without vectors
 * are checked against llama.cpp itself in tokenizer-gguf-llamacpp.test.ts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { tokenizerFromGguf } from "../../src/io/tokenizer.js";
import { requireLlamaRepo, vocabCases, vocabFailures, vocabMetadata } from "../helpers/llama-vocab.js";

// name -> llama.cpp's add_bos for it (pre-tokenizer in parentheses).
const VOCABS: [string, boolean][] = [
  ["phi-3", true], // SentencePiece
  ["mpt", false], // mpt (GPT-2 regex)
  ["falcon", false], // falcon
  ["starcoder", false], // starcoder (digits split one by one)
  ["refact", false], // refact (as starcoder)
  ["command-r", true], // command-r (as starcoder)
  ["qwen35", false], // qwen35 (letters with marks)
];

for (const [name, addsBos] of VOCABS) {
  test(`ggml-vocab-${name}: every test vector encodes to llama.cpp's ids and decodes back`, () => {
    const r = requireLlamaRepo();
    const meta = vocabMetadata(r, name);
    const tok = tokenizerFromGguf(meta, `ggml-vocab-${name}.gguf`);
    const cases = vocabCases(r, name);
    assert.ok(cases.length >= 30);
    const failures = vocabFailures(tok, cases);
    assert.deepEqual(failures, [], `${failures.length} of ${2 * cases.length} checks failed`);
    const plain = tok.encode("Hello", { addSpecialTokens: false });
    assert.deepEqual(tok.encode("Hello"), addsBos ? [tok.bosTokenId, ...plain] : plain);
  });
}
