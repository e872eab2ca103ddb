/**
 * What the input guards of issue 9 cost (best of several runs each):
 *  - the non-finite check over weights at load (ns per value) and over one forward's logits (us per call);
 *  - tokenizer.json encode: the library alone, steerlab's inline path (length limit + id check), and the
 *    time-limited worker sandbox used for tokenizers with unknown regexes (per call, short and long text);
 *  - chat templates: the library's Template.render against steerlab's bounded render.
 * Run: npm run build && node dist/bench/guards.bench.js [tokenizer.json]   (default: the stories260K tokenizer)
 */
import { readFileSync } from "node:fs";
import { Template } from "@huggingface/jinja";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { renderChatTemplate } from "../src/io/chat-template.js";
import { checkFiniteOutput, checkFiniteTensors } from "../src/io/finite.js";
import { tokenizerFromJson } from "../src/io/tokenizer.js";

function best(reps: number, f: () => void): number {
  let b = Number.POSITIVE_INFINITY;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    f();
    b = Math.min(b, performance.now() - t0);
  }
  return b;
}

const out: Record<string, string> = {};

// Weights: 64 Mi values (256 MiB of f32) in 64 tensors.
const N = 1 << 26;
const tensors = Array.from({ length: 64 }, (_, i) => {
  const data = new Float32Array(N / 64);
  for (let j = 0; j < data.length; j += 97) data[j] = Math.sin(i + j);
  return [`blocks.${i}.mlp.up.weight`, { shape: [data.length], data }] as [
    string,
    { shape: number[]; data: Float32Array },
  ];
});
const tw = best(5, () => checkFiniteTensors(tensors, "bench"));
out["finite check, weights"] = `${((tw * 1e6) / N).toFixed(2)} ns/value (${tw.toFixed(1)} ms for 256 MiB)`;

// Logits of one decode step of 8 rows over a 128K vocabulary.
const logits = new Float32Array(8 * 128256).map((_, i) => Math.cos(i));
const tl = best(50, () => checkFiniteOutput(logits, 128256, "logits"));
out["finite check, logits 8 x 128256"] = `${(tl * 1000).toFixed(0)} us per forward`;

// Tokenizer.
const path = process.argv[2] ?? "../shared/real-models/stories260K/hf/tokenizer.json";
const json = JSON.parse(readFileSync(path, "utf8"));
const hf = new HfTokenizer(json, {});
const inline = tokenizerFromJson(json, {}, path);
// The same tokenizer behind an extra Split that matches nothing: an unknown regex, so the sandbox runs it.
const sandboxedJson = structuredClone(json);
sandboxedJson.pre_tokenizer = {
  type: "Sequence",
  pretokenizers: [
    { type: "Split", pattern: { Regex: "\\u0001+" }, behavior: "Isolated", invert: false },
    ...(json.pre_tokenizer ? [json.pre_tokenizer] : []),
  ],
};
const sandboxed = tokenizerFromJson(sandboxedJson, {}, "sandboxed");
const short = "Once upon a time, there was a little girl named Lily.";
const long = short.repeat(200); // ~10 KB
sandboxed.encode(short); // start the worker outside the timing
for (const [name, text, reps] of [
  ["short (53 chars)", short, 2000],
  ["long (10.6K chars)", long, 20],
] as const) {
  const lib = best(5, () => {
    for (let i = 0; i < reps; i++) hf.encode(text, { add_special_tokens: false });
  });
  const own = best(5, () => {
    for (let i = 0; i < reps; i++) inline.encode(text, { addSpecialTokens: false });
  });
  const sb = best(5, () => {
    for (let i = 0; i < reps; i++) sandboxed.encode(text, { addSpecialTokens: false });
  });
  const us = (ms: number) => `${((ms * 1000) / reps).toFixed(1)} us`;
  out[`encode ${name}`] = `library ${us(lib)}, steerlab inline ${us(own)}, sandboxed ${us(sb)}`;
}

// Chat template (Llama-3 style) on a 4-message conversation.
const tpl =
  "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] | trim }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}";
const msgs = ["system", "user", "assistant", "user"].map((role) => ({ role, content: short }));
const t = new Template(tpl);
const vars = { messages: msgs, add_generation_prompt: true, bos_token: "<s>", eos_token: "" };
const lib = best(5, () => {
  for (let i = 0; i < 500; i++) t.render(vars);
});
const own = best(5, () => {
  for (let i = 0; i < 500; i++) renderChatTemplate(tpl, msgs, { addGenerationPrompt: true, bosToken: "<s>" });
});
out["chat template, 4 messages"] =
  `library ${((lib * 1000) / 500).toFixed(1)} us, bounded ${((own * 1000) / 500).toFixed(1)} us`;

for (const [k, v] of Object.entries(out)) console.log(`${k.padEnd(36)} ${v}`);
