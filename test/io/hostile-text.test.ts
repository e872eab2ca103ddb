/**
 * Issue 9: untrusted text never reaches a prototype (GGUF tokenizer.ggml.pre, template and placeholder names,
 * vector metadata, keyword rules), and code shipped in a model file (a tokenizer.json regex, a chat template) is
 * stopped with a clear error naming the file when it runs away.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { Template } from "@huggingface/jinja";
import { isSteerlabError } from "../../src/errors.js";
import { fillTemplate } from "../../src/eval/prompts.js";
import { classifyKeywords, type KeywordRules } from "../../src/eval/score-behavior.js";
import { parseSweepConfig } from "../../src/eval/sweep-config.js";
import { renderChatTemplate } from "../../src/io/chat-template.js";
import { readGguf } from "../../src/io/gguf.js";
import { plainMetadata } from "../../src/io/gguf-model.js";
import { encodeSafetensors } from "../../src/io/safetensors.js";
import { tokenizerFromGguf, tokenizerFromJson } from "../../src/io/tokenizer.js";
import { LLAMA3_PATTERN_HF } from "../../src/io/tokenizer-gguf.js";
import { needsSandbox } from "../../src/io/tokenizer-sandbox.js";
import { decodeVector } from "../../src/steer/vector-file.js";
import { tensor } from "../../src/tensor.js";
import { writeTinyModels } from "../helpers/tiny-models.js";

const dir = mkdtempSync(join(tmpdir(), "steerlab-hostile-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const PROTO_KEYS = ["__proto__", "constructor", "toString", "hasOwnProperty"];

test("GGUF tokenizer.ggml.pre naming an Object.prototype member is an unsupported pre-tokenizer, not a crash", () => {
  const t = writeTinyModels(mkdtempSync(join(dir, "pre-")), "gpt2");
  const meta = plainMetadata(readGguf(t.ggufFile).header.metadata);
  assert.ok(tokenizerFromGguf(meta, "m.gguf"), "the file as written loads");
  for (const pre of PROTO_KEYS) {
    const m = new Map(meta);
    m.set("tokenizer.ggml.pre", pre);
    assert.throws(
      () => tokenizerFromGguf(m, "m.gguf"),
      (e) =>
        isSteerlabError(e, "unsupported") &&
        e.details.field === "tokenizer.ggml.pre" &&
        e.details.got === pre,
      pre,
    );
  }
  // Tokens spelled like prototype members are ordinary tokens.
  const m = new Map(meta);
  const tokens = [...(m.get("tokenizer.ggml.tokens") as string[])];
  tokens[tokens.length - 1] = "__proto__";
  m.set("tokenizer.ggml.tokens", tokens);
  assert.equal(tokenizerFromGguf(m, "m.gguf").tokenString(tokens.length - 1), "__proto__");
});

test("template names and placeholders are looked up as own keys only", () => {
  assert.equal(
    fillTemplate("mmlu-paper", { question: "Q", A: "a", B: "b", C: "c", D: "d" }).slice(0, 4),
    "Q\nA)",
  );
  // A template named like a prototype member is a literal template string, not Object's function.
  for (const name of PROTO_KEYS) assert.equal(fillTemplate(name, {}), name);
  for (const name of PROTO_KEYS.filter((k) => /^\w+$/.test(k))) {
    assert.throws(
      () => fillTemplate(`say {${name}}`, {}),
      (e) => isSteerlabError(e, "bad_input") && e.details.problems![0] === `{${name}}`,
    );
  }
});

test("a vector file whose steerlab metadata is null, an array or has prototype keys is a bad_file", () => {
  const d = tensor([4], new Float32Array([1, 0, 0, 0]));
  const file = (steerlab: string) =>
    encodeSafetensors([["direction.1", d]], {
      metadata: { format: "steerlab.vector", format_version: "1", steerlab },
    });
  const ok = { site: "resid_post", layer_base: "block0", layers: [1], hidden_size: 4 };
  assert.equal(decodeVector(file(JSON.stringify(ok))).hiddenSize, 4);
  for (const body of [
    "null",
    "[]",
    "42",
    '"x"',
    JSON.stringify({ ...ok, layers: null }),
    JSON.stringify({ ...ok, hidden_size: "4" }),
  ]) {
    assert.throws(
      () => decodeVector(file(body), "v.safetensors"),
      (e) => isSteerlabError(e, "bad_file") && e.details.field === "__metadata__.steerlab",
      body,
    );
  }
  const protoDiag = `{"site":"resid_post","layer_base":"block0","layers":[1],"hidden_size":4,"diagnostics":{"__proto__":{"x":1}}}`;
  assert.throws(
    () => decodeVector(file(protoDiag), "v.safetensors"),
    (e) => isSteerlabError(e, "bad_file"),
  );
});

test("keyword rules: non-string items and an unknown fallback are refused in configs and in the library", () => {
  const cfg = (rules: unknown) => ({
    model: "m",
    vector: "v.safetensors",
    coeffs: [0],
    tasks: [{ kind: "behavior-generate", data: "d.txt", rules }],
  });
  for (const rules of [
    { aligned: [1, 2], misaligned: ["sure"] },
    { aligned: ["no"], misaligned: [null] },
    { aligned: ["no"], misaligned: ["sure"], fallback: "maybe" },
    { aligned: ["no"], misaligned: ["sure"], fallback: "__proto__" },
    { aligned: [], misaligned: ["sure"] },
    "constructor",
  ]) {
    assert.throws(
      () => parseSweepConfig(cfg(rules), dir),
      (e) =>
        isSteerlabError(e, "bad_config") && e.details.problems!.some((p) => p.startsWith("tasks[0].rules")),
      JSON.stringify(rules),
    );
  }
  const good = parseSweepConfig(cfg({ aligned: ["no"], misaligned: ["sure"], fallback: "misaligned" }), dir);
  assert.deepEqual(good.tasks[0]!.rules, { aligned: ["no"], misaligned: ["sure"], fallback: "misaligned" });
  assert.throws(
    () => classifyKeywords("I refuse.", { aligned: [42], misaligned: [] } as unknown as KeywordRules),
    (e) => isSteerlabError(e, "bad_input") && /aligned\[0\]/.test(e.details.problems![0]!),
  );
  assert.throws(
    () =>
      classifyKeywords("ok then", {
        aligned: ["no"],
        misaligned: ["sure"],
        fallback: "maybe",
      } as unknown as KeywordRules),
    (e) => isSteerlabError(e, "bad_input") && /fallback/.test(e.details.problems![0]!),
  );
  assert.equal(classifyKeywords("Sure, here it is.", { aligned: ["no"], misaligned: ["sure"] }).score, -1);
});

test("a chat template that loops (range(10**9)), nests loops or doubles a string is stopped, naming the file", () => {
  const msgs = [{ role: "user", content: "hi" }];
  const file = "m/tokenizer_config.json";
  for (const [tpl, why, ms] of [
    ["{% for i in range(10**9) %}x{% endfor %}", /range\(\) made more than 1000000 items/, 1000],
    [
      "{% set ns = namespace(s='a') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}",
      /a string longer than 4194304 characters/,
      2000,
    ],
    [
      "{% for i in range(1000) %}{% for j in range(1000) %}{{ i }}{% endfor %}{% endfor %}",
      /range\(\) made more than|evaluation steps|took more than/,
      7000,
    ],
  ] as const) {
    const t0 = Date.now();
    assert.throws(
      () => renderChatTemplate(tpl, msgs, { file }),
      (e) => isSteerlabError(e, "bad_config") && e.details.file === file && why.test(e.message),
      tpl,
    );
    assert.ok(Date.now() - t0 < ms, `${tpl}: stopped after ${Date.now() - t0} ms`);
  }
  // Real templates render exactly as the library's own Template.render does (with its globals).
  const llama3 =
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] | trim }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}{{ range(3) | join(',') }}{{ True }}{{ none is none }}";
  const vars = { messages: msgs, add_generation_prompt: true, bos_token: "<s>", eos_token: "" };
  assert.equal(
    renderChatTemplate(llama3, msgs, { addGenerationPrompt: true, bosToken: "<s>" }),
    new Template(llama3).render(vars),
  );
  assert.equal(renderChatTemplate("{{ strftime_now('%Y') }}", msgs), String(new Date().getFullYear()));
  assert.throws(
    () => renderChatTemplate("{{ raise_exception('no system role') }}", msgs, { file }),
    (e) => isSteerlabError(e, "bad_input") && /no system role/.test(e.message),
  );
});

test("a tokenizer.json regex that backtracks catastrophically is stopped with an error naming the file", () => {
  const t = writeTinyModels(mkdtempSync(join(dir, "redos-")), "gpt2");
  const evil = structuredClone(t.tokenizerJson) as Record<string, unknown>;
  evil.pre_tokenizer = {
    type: "Sequence",
    pretokenizers: [
      { type: "Split", pattern: { Regex: "(a+)+$" }, behavior: "Isolated", invert: false },
      { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
    ],
  };
  assert.ok(needsSandbox(evil));
  assert.ok(!needsSandbox(t.tokenizerJson), "steerlab's own tokenizers run inline");
  const tok = tokenizerFromJson(evil, {}, "evil/tokenizer.json");
  const plain = tokenizerFromJson(t.tokenizerJson, {}, "ok/tokenizer.json");
  // Benign inputs: the sandboxed tokenizer answers, and the same as without the Split (it only isolates "a" runs).
  assert.deepEqual(tok.encode("hello world"), plain.encode("hello world"));
  const t0 = Date.now();
  assert.throws(
    () => tok.encode(`${"a".repeat(48)}!`),
    (e) =>
      isSteerlabError(e, "bad_file") &&
      e.details.file === "evil/tokenizer.json" &&
      /did not finish within/.test(e.message),
  );
  assert.ok(Date.now() - t0 < 8000, `stopped after ${Date.now() - t0} ms`);
  // The worker is replaced: the tokenizer keeps working.
  assert.deepEqual(tok.encode("hello world"), plain.encode("hello world"));
  assert.equal(tok.decode(tok.encode("hello world", { addSpecialTokens: false })), "hello world");
  // A known pattern written by a model's own tokenizer.json runs inline.
  const known = structuredClone(evil);
  (known.pre_tokenizer as { pretokenizers: { pattern: { Regex: string } }[] })
    .pretokenizers[0]!.pattern.Regex = LLAMA3_PATTERN_HF;
  assert.ok(!needsSandbox(known));
});
