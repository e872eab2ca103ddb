import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { isSteerlabError } from "../../src/errors.js";
import {
  byteLevelTokenizerJson,
  DEFAULT_SPECIAL_TOKENS,
  FIXTURE_TEXT,
  trainByteLevelBpe,
} from "../../src/io/bpe-train.js";
import { pickChatTemplate, renderChatTemplate } from "../../src/io/chat-template.js";
import { loadTokenizerFromHfDir, tokenizerFromJson } from "../../src/io/tokenizer.js";

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function hfDir(files: Record<string, unknown>): string {
  const d = mkdtempSync(join(tmpdir(), "steerlab-tok-"));
  dirs.push(d);
  for (const [name, v] of Object.entries(files)) {
    writeFileSync(join(d, name), typeof v === "string" ? v : JSON.stringify(v));
  }
  return d;
}

// A trained tokenizer without a BOS post-processor: BOS comes from tokenizer_config.json here.
const plainJson = trainByteLevelBpe([FIXTURE_TEXT], 330, { specialTokens: DEFAULT_SPECIAL_TOKENS });

// A Llama-3-like template written for this test: header tokens, bos_token, generation prompt.
const HEADER_TEMPLATE =
  "{{ bos_token }}{% for m in messages %}{{ '<|hdr|>' + m['role'] + '<|/hdr|>\\n' + m['content'] | trim + eos_token }}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|hdr|>assistant<|/hdr|>\\n' }}{% endif %}";

test("tokenizerFromJson: encode/decode, BOS/EOS from the config, vocab facts", () => {
  const tok = tokenizerFromJson(plainJson, { bos_token: "<s>", eos_token: "</s>", add_bos_token: true });
  assert.equal(tok.vocabSize, 330);
  assert.equal(tok.bosTokenId, 1);
  assert.deepEqual(tok.eosTokenIds, [2]);
  const ids = tok.encode("Hello there, café!");
  assert.equal(ids[0], 1);
  assert.deepEqual(tok.encode("Hello there, café!", { addSpecialTokens: false }), ids.slice(1));
  assert.equal(tok.decode(ids, { skipSpecialTokens: true }), "Hello there, café!");
  assert.equal(tok.decode(ids), "<s>Hello there, café!");
  assert.equal(tok.decode([]), "");
  assert.equal(tok.tokenString(4 + 0x20), "Ġ");
  assert.equal(tok.tokenString(2), "</s>");
  assert.throws(
    () => tok.decode([330]),
    (e) => isSteerlabError(e, "bad_input"),
  );
  assert.throws(
    () => tok.tokenString(-1),
    (e) => isSteerlabError(e, "bad_input"),
  );
  assert.equal(tok.chatTemplate, null);
  assert.throws(
    () => tok.applyChatTemplate([{ role: "user", content: "x" }]),
    (e) => isSteerlabError(e, "unsupported"),
  );
});

test("tokenizerFromJson: without add_bos_token the tokenizer.json post-processor decides", () => {
  const withBos = tokenizerFromJson(byteLevelTokenizerJson(320), { bos_token: "<s>" });
  assert.equal(withBos.encode("hi")[0], 1);
  const noBos = tokenizerFromJson(plainJson, { bos_token: "<s>" });
  assert.notEqual(noBos.encode("hi")[0], 1);
  // add_bos_token=false in the config overrides a post-processor that adds BOS; add_eos_token appends EOS.
  const overridden = tokenizerFromJson(byteLevelTokenizerJson(320), {
    bos_token: "<s>",
    eos_token: "</s>",
    add_bos_token: false,
    add_eos_token: true,
  });
  const ids = overridden.encode("hi");
  assert.notEqual(ids[0], 1);
  assert.equal(ids[ids.length - 1], 2);
});

test("decode keeps spacing unless clean_up_tokenization_spaces is set", () => {
  const s = "Yes , it is . I do n't";
  const raw = tokenizerFromJson(plainJson);
  assert.equal(raw.decode(raw.encode(s)), s);
  const cleaned = tokenizerFromJson(plainJson, { clean_up_tokenization_spaces: true });
  assert.equal(cleaned.decode(cleaned.encode(s)), "Yes, it is. I don't");
});

test("loadTokenizerFromHfDir reads tokenizer.json, tokenizer_config.json, special_tokens_map.json, generation_config.json", async () => {
  const dir = hfDir({
    "tokenizer.json": plainJson,
    "special_tokens_map.json": { bos_token: "<s>", eos_token: "<unk>" },
    "tokenizer_config.json": {
      eos_token: { content: "</s>", lstrip: false, normalized: false, rstrip: false, single_word: false },
      add_bos_token: true,
      chat_template: [
        { name: "tool_use", template: "TOOLS" },
        { name: "default", template: HEADER_TEMPLATE },
      ],
    },
    "generation_config.json": { eos_token_id: [2, 3] },
  });
  const tok = await loadTokenizerFromHfDir(dir);
  assert.ok(tok);
  assert.equal(tok.bosTokenId, 1, "bos from special_tokens_map.json");
  assert.deepEqual(tok.eosTokenIds, [2, 3], "eos from tokenizer_config.json, then generation_config.json");
  assert.equal(tok.encode("x")[0], 1);
  assert.equal(tok.chatTemplate, HEADER_TEMPLATE);
  const prompt = tok.applyChatTemplate(
    [
      { role: "system", content: "Be brief." },
      { role: "user", content: "  Hi!  " },
    ],
    { addGenerationPrompt: true },
  );
  assert.equal(
    prompt,
    "<s><|hdr|>system<|/hdr|>\nBe brief.</s><|hdr|>user<|/hdr|>\nHi!</s><|hdr|>assistant<|/hdr|>\n",
  );
  assert.equal(
    tok.applyChatTemplate([{ role: "user", content: "Hi" }]),
    "<s><|hdr|>user<|/hdr|>\nHi</s>",
    "no generation prompt by default",
  );
});

test("loadTokenizerFromHfDir: chat_template.jinja file, missing tokenizer.json, malformed JSON", async () => {
  const dir = hfDir({ "tokenizer.json": plainJson, "chat_template.jinja": "{{ messages[0]['content'] }}" });
  const tok = await loadTokenizerFromHfDir(dir);
  assert.equal(tok?.applyChatTemplate([{ role: "user", content: "abc" }]), "abc");
  assert.equal(await loadTokenizerFromHfDir(hfDir({ "config.json": {} })), null);
  await assert.rejects(
    loadTokenizerFromHfDir(hfDir({ "tokenizer.json": "{ not json" })),
    (e) => isSteerlabError(e, "bad_file") && (e.details.file ?? "").endsWith("tokenizer.json"),
  );
  await assert.rejects(
    loadTokenizerFromHfDir(hfDir({ "tokenizer.json": { model: { type: "NoSuchModel" } } })),
    (e) => isSteerlabError(e, "bad_file"),
  );
});

test("chat templates: ChatML rendering, raise_exception and parse errors become SteerlabErrors", () => {
  const chatml =
    "{% for m in messages %}{% if m.role == 'system' and not loop.first %}{{ raise_exception('system must be first') }}" +
    "{% endif %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}" +
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  const msgs = [
    { role: "user", content: "2+2?" },
    { role: "assistant", content: "4" },
  ];
  assert.equal(
    renderChatTemplate(chatml, msgs, { addGenerationPrompt: true }),
    "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n<|im_start|>assistant\n",
  );
  assert.throws(
    () => renderChatTemplate(chatml, [...msgs, { role: "system", content: "late" }]),
    (e) => isSteerlabError(e, "bad_input") && /system must be first/.test(e.message),
  );
  assert.throws(
    () => renderChatTemplate("{% for %}", msgs),
    (e) => isSteerlabError(e, "bad_config"),
  );
  assert.equal(pickChatTemplate("T"), "T");
  assert.equal(pickChatTemplate([{ name: "rag", template: "R" }]), "R");
  assert.equal(pickChatTemplate(undefined), null);
});
