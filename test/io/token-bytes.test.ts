import assert from "node:assert/strict";
import { test } from "node:test";
import { byteLevelTokenizerJson } from "../../src/io/bpe-train.js";
import { tokenBytes } from "../../src/io/token-bytes.js";
import { tokenizerFromJson } from "../../src/io/tokenizer.js";

test("tokenBytes: whole characters as UTF-8, pieces of a multi-byte character as their raw bytes", () => {
  const tok = tokenizerFromJson(byteLevelTokenizerJson(300), { bos_token: "<s>", eos_token: "</s>" });
  const text = "aé€😀";
  const ids = tok.encode(text, { addSpecialTokens: false });
  const bytes = ids.flatMap((id) => tokenBytes(tok, id));
  assert.deepEqual(bytes, [...Buffer.from(text, "utf8")]);
  // At least one token here is a lone piece of a character (it decodes to U+FFFD by itself).
  assert.ok(ids.some((id) => tok.decode([id]).includes("\ufffd")));
});
