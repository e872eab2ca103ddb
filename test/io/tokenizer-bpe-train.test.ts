import assert from "node:assert/strict";
import { test } from "node:test";
import { Tokenizer } from "@huggingface/tokenizers";
import { isSteerlabError } from "../../src/errors.js";
import {
  byteLevelTokenizerJson,
  byteToUnicode,
  DEFAULT_SPECIAL_TOKENS,
  FIXTURE_TEXT,
  trainByteLevelBpe,
} from "../../src/io/bpe-train.js";

const SAMPLES = [
  "Hello world! The quick brown fox.",
  "  leading spaces, trailing  \n\n and tabs\tinside",
  "Unicode: Café 東京 ñ 😀 — “quotes” and ©",
  "code: x = f(1, 2) + 3.5e-7; // done",
  "",
];

test("byteToUnicode is a bijection onto 256 printable characters", () => {
  const t = byteToUnicode();
  assert.equal(new Set(t).size, 256);
  assert.equal(t[0x41], "A");
  assert.equal(t[0x20], "Ġ");
  assert.equal(t[0x0a], "Ċ");
});

test("trained tokenizer has specials first, bytes next, merges last, and exactly vocabSize entries", () => {
  const json = trainByteLevelBpe([FIXTURE_TEXT], 320, { specialTokens: DEFAULT_SPECIAL_TOKENS });
  const vocab = json.model.vocab;
  assert.equal(Object.keys(vocab).length, 320);
  assert.equal(vocab["<pad>"], 0);
  assert.equal(vocab["<s>"], 1);
  assert.equal(vocab["</s>"], 2);
  assert.equal(vocab["<unk>"], 3);
  assert.equal(vocab.A, 4 + 0x41);
  assert.equal(json.model.merges.length, 320 - 4 - 256);
  // Every merge's result is the next vocab entry, in order.
  for (const [i, [a, b]] of json.model.merges.entries()) assert.equal(vocab[a + b], 260 + i);
  // The first merge joins a pair of bytes that really occurs in the text.
  const inverse = new Map(byteToUnicode().map((c, b) => [c, b]));
  const first = json.model.merges[0].join("");
  const firstText = Buffer.from(Array.from(first, (c) => inverse.get(c) as number)).toString("utf8");
  assert.ok(FIXTURE_TEXT.includes(firstText), JSON.stringify(firstText));
});

test("training is deterministic", () => {
  const a = trainByteLevelBpe([FIXTURE_TEXT, "more text here"], 400, { specialTokens: ["<s>"] });
  const b = trainByteLevelBpe([FIXTURE_TEXT, "more text here"], 400, { specialTokens: ["<s>"] });
  assert.deepEqual(a, b);
});

test("trained tokenizer loads in @huggingface/tokenizers and round-trips text, including unicode", () => {
  const json = byteLevelTokenizerJson(320);
  const tok = new Tokenizer(json, {});
  for (const s of SAMPLES) {
    const ids = tok.encode(s).ids;
    assert.equal(ids[0], 1, "BOS <s> is prepended");
    assert.ok(ids.every((id: number) => id >= 0 && id < 320));
    assert.equal(tok.decode(ids, { skip_special_tokens: true }), s);
  }
  // Merges are used: the fixture text compresses below one token per byte.
  const ids = tok.encode(FIXTURE_TEXT, { add_special_tokens: false }).ids;
  assert.ok(ids.length < 0.8 * Buffer.byteLength(FIXTURE_TEXT), `${ids.length} tokens`);
  // Special tokens in text are recognised as single tokens.
  assert.deepEqual(tok.encode("</s>", { add_special_tokens: false }).ids, [2]);
});

test("trains ~1 MB of text quickly into a larger vocabulary", () => {
  const words = FIXTURE_TEXT.split(/\s+/);
  let s = 0x9e3779b9;
  const parts: string[] = [];
  let bytes = 0;
  while (bytes < 1_000_000) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const w = `${words[s % words.length]}${s % 7 === 0 ? "\n" : " "}${s % 13 === 0 ? s % 1000 : ""}`;
    parts.push(w);
    bytes += w.length;
  }
  const text = parts.join("");
  const t0 = performance.now();
  const json = trainByteLevelBpe([text], 2000, { specialTokens: DEFAULT_SPECIAL_TOKENS, bosToken: "<s>" });
  const ms = performance.now() - t0;
  assert.ok(ms < 10_000, `took ${ms.toFixed(0)} ms`);
  const tok = new Tokenizer(json, {});
  const sample = text.slice(0, 2000);
  assert.equal(tok.decode(tok.encode(sample).ids, { skip_special_tokens: true }), sample);
});

test("byteLevelTokenizerJson has exactly vocabSize ids, padding with reserved special tokens", () => {
  const json = byteLevelTokenizerJson(1000);
  assert.equal(Object.keys(json.model.vocab).length, 1000);
  assert.equal(json.model.vocab["<|reserved_0|>"], 4 + 256 + json.model.merges.length);
  const tok = new Tokenizer(json, {});
  assert.equal(tok.id_to_token(999), `<|reserved_${999 - 260 - json.model.merges.length}|>`);
  assert.equal(tok.decode(tok.encode("Zürich <|reserved_3|>").ids, { skip_special_tokens: true }), "Zürich ");
  // Fixtures are copies: changing one does not change the next.
  json.model.vocab.A = -1;
  assert.equal(byteLevelTokenizerJson(1000).model.vocab.A, 4 + 0x41);
});

test("rejects a vocabulary too small for the byte alphabet and duplicate specials", () => {
  assert.throws(
    () => trainByteLevelBpe(["x"], 100, { specialTokens: [] }),
    (e) => isSteerlabError(e, "bad_input"),
  );
  assert.throws(
    () => trainByteLevelBpe(["x"], 300, { specialTokens: ["<s>", "<s>"] }),
    (e) => isSteerlabError(e, "bad_input"),
  );
});
