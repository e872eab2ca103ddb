/**
 * More GGUF vocabularies (further pre-tokenizer families) against llama.cpp: its test vectors where the sources have
 * them, and llama.cpp itself (node-llama-cpp, vocab-only load) for the "default" pre-tokenizer, which no test vector
 * file covers.
 */
import assert from "node:assert/strict";
import { before, test } from "node:test";
import { tokenizerFromGguf } from "../../src/io/tokenizer.js";
import { llamaCpp } from "../helpers/llama-cpp.js";
import { llamaRepo, vocabCases, vocabFailures, vocabFile, vocabMetadata } from "../helpers/llama-vocab.js";

let repo: string | null = null;
before(() => {
  repo = llamaRepo();
});
const needRepo = (): string => {
  if (!repo)
    throw new Error("node-llama-cpp (dev dependency) with its llama.cpp bundle is required for these tests");
  return repo;
};

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
    const r = needRepo();
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

test("pre-tokenizer 'default' (no tokenizer.ggml.pre): gpt-neox and aquila vocabs tokenize as llama.cpp does", async () => {
  const r = needRepo();
  const inputs = vocabCases(r, "gpt-2").map((c) => c.input);
  const llama = await llamaCpp();
  for (const name of ["gpt-neox", "aquila"]) {
    const meta = vocabMetadata(r, name);
    assert.equal(meta.get("tokenizer.ggml.pre"), undefined);
    const tok = tokenizerFromGguf(meta, name);
    const model = await llama.loadModel({ modelPath: vocabFile(r, name), vocabOnly: true });
    try {
      const bad: string[] = [];
      for (const s of inputs) {
        const theirs = [...model.tokenize(s)].map(Number);
        if (JSON.stringify(tok.encode(s, { addSpecialTokens: false })) !== JSON.stringify(theirs)) {
          bad.push(JSON.stringify(s));
        }
        // (llama.cpp's own detokenize applies clean_spaces for these vocabs; ours decodes without clean-up.)
        assert.equal(tok.decode(theirs), s);
      }
      assert.deepEqual(bad, [], `${name}: ${bad.length} of ${inputs.length} inputs differ`);
      assert.equal(model.tokens.shouldPrependBosToken, tok.encode("x").length === 2);
    } finally {
      await model.dispose();
    }
  }
});
