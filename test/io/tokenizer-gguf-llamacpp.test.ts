/**
 * GGUF vocabularies that have no test vectors in the llama.cpp sources, checked against llama.cpp itself
 * (node-llama-cpp, vocab-only load) on the gpt-2 vectors' inputs: the "default" pre-tokenizer (no
 * tokenizer.ggml.pre: gpt-neox, aquila) and another SentencePiece vocab (baichuan).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { tokenizerFromGguf } from "../../src/io/tokenizer.js";
import { llamaCpp } from "../helpers/llama-cpp.js";
import { requireLlamaRepo, vocabCases, vocabFile, vocabMetadata } from "../helpers/llama-vocab.js";

test("vocabs without test vectors tokenize as llama.cpp does: 'default' pre (gpt-neox, aquila), SentencePiece (baichuan)", async () => {
  const r = requireLlamaRepo();
  const inputs = vocabCases(r, "gpt-2").map((c) => c.input);
  const llama = await llamaCpp();
  for (const name of ["gpt-neox", "aquila", "baichuan"]) {
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
