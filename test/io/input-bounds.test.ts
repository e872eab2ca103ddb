/**
 * Issue 9, crashes and hangs on the read side: sizes read from a file or a flag are bounded before anything is
 * allocated or looped over (contexts, token ids, coefficient lists, threads, line lengths, encode lengths), and a
 * directory or a device where a file is expected is a clear error everywhere. Each case used to crash with a
 * RangeError/EISDIR or run for minutes; each now ends in a SteerlabError within a second.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { isSteerlabError } from "../../src/errors.js";
import { loadInstructions, loadMmlu } from "../../src/eval/datasets.js";
import { loadSweepConfig, MAX_COEFFS, parseCoeffs } from "../../src/eval/sweep-config.js";
import { gv } from "../../src/io/gguf.js";
import { loadGgufModel } from "../../src/io/gguf-model.js";
import { loadHfModel } from "../../src/io/hf-model.js";
import { tokenizerFromJson } from "../../src/io/tokenizer.js";
import { loadModel } from "../../src/model/load.js";
import { resolveThreads } from "../../src/runtime/session.js";
import { loadDataset } from "../../src/steer/pairs.js";
import { loadVector } from "../../src/steer/vector-load.js";
import { rewriteGguf, writeTinyModels } from "../helpers/tiny-models.js";

const dir = mkdtempSync(join(tmpdir(), "steerlab-bounds-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Assert a SteerlabError (optionally of one code, with a message matching `re`) within `ms`. */
async function refusedFast(f: () => unknown, re: RegExp, code?: string, ms = 2000): Promise<void> {
  const t0 = Date.now();
  await assert.rejects(
    async () => f(),
    (e) => {
      assert.ok(isSteerlabError(e), `a SteerlabError, got ${String(e)}`);
      if (code) assert.equal(e.code, code, e.message);
      assert.match(e.message, re);
      return true;
    },
  );
  assert.ok(Date.now() - t0 < ms, `answered in ${Date.now() - t0} ms`);
}

test("context lengths of 1e12, 2^40 and 1e308 are refused with the limit (GGUF and config.json)", async () => {
  const t = writeTinyModels(mkdtempSync(join(dir, "ctx-")), "llama");
  for (const v of [
    gv.f32(1e12),
    { type: "u64" as const, value: 2 ** 40 },
    { type: "f64" as const, value: 1e308 },
  ]) {
    const f = join(dir, "ctx.gguf");
    rewriteGguf(t.ggufFile, f, (m) => m.set("llama.context_length", v));
    await refusedFast(() => loadGgufModel(f), /context_length/, "bad_config");
  }
  const cfgPath = join(t.hfDir, "config.json");
  const cfg = JSON.parse(readFileSync(cfgPath, "utf8"));
  for (const v of [1e12, 2 ** 40]) {
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, max_position_embeddings: v }));
    await refusedFast(
      () => loadHfModel(t.hfDir),
      /max_position_embeddings .* is outside \[1, 16777216\]/,
      "bad_config",
    );
  }
  // A real long context (Llama 3.1's 131072) loads, and the reference engine does not allocate for all of it.
  writeFileSync(cfgPath, JSON.stringify({ ...cfg, max_position_embeddings: 131072 }));
  assert.equal((await loadModel(t.hfDir)).config.maxPositions, 131072);
});

test("vocabulary and added-token ids of 1e9 are refused before the tokenizer builds its id table", async () => {
  const t = writeTinyModels(mkdtempSync(join(dir, "ids-")), "gpt2");
  const base = t.tokenizerJson as { added_tokens: object[]; model: { vocab: Record<string, number> } };
  const added = structuredClone(base);
  added.added_tokens.push({ id: 1e9, content: "<big>", special: true });
  await refusedFast(
    () => tokenizerFromJson(added, {}, "t/tokenizer.json"),
    /added_tokens\.\d+\.id.*token ids stop at 4194303/,
    "bad_file",
  );
  const vocab = structuredClone(base);
  vocab.model.vocab.zzz = 1e9;
  await refusedFast(() => tokenizerFromJson(vocab, {}, "t/tokenizer.json"), /model\.vocab\.zzz/, "bad_file");
  const neg = structuredClone(base);
  neg.model.vocab.zzz = -1;
  await refusedFast(() => tokenizerFromJson(neg, {}, "t/tokenizer.json"), /model\.vocab\.zzz/, "bad_file");
});

test("encoding a 16 MB string is refused at once; a maxChars override raises the limit", async () => {
  const t = writeTinyModels(mkdtempSync(join(dir, "enc-")), "gpt2");
  const tok = tokenizerFromJson(t.tokenizerJson, {}, "t/tokenizer.json");
  await refusedFast(
    () => tok.encode("a".repeat(16 << 20)),
    /too long \(limit 4194304 characters\)/,
    "bad_input",
  );
  await refusedFast(() => tok.encode("hello world", { maxChars: 5 }), /limit 5 characters/);
  assert.ok(tok.encode("hello world", { maxChars: 11 }).length > 0);
});

test("coefficient lists of 200k values and --threads 100000 are refused with their limits", async () => {
  const many = Array.from({ length: 200_000 }, (_, i) => i / 1000);
  await refusedFast(() => parseCoeffs(many), new RegExp(`limit ${MAX_COEFFS}`), "bad_config");
  await refusedFast(() => parseCoeffs(many.join(",")), new RegExp(`limit ${MAX_COEFFS}`), "bad_config");
  await refusedFast(() => parseCoeffs("0:200:0.001"), /too large/, "bad_config");
  assert.deepEqual(parseCoeffs("-1:1:0.5"), [-1, -0.5, 0, 0.5, 1]);
  await refusedFast(() => parseCoeffs("1,,2"), /bad coefficient list/);
  await refusedFast(() => resolveThreads(100_000), /\[1, 1024\]/, "bad_input");
  assert.equal(resolveThreads(2), 2);
});

test("data files: a 64 MB line, /dev/zero and a directory are refused before parsing", async () => {
  const long = join(dir, "long.jsonl");
  writeFileSync(long, `{"goal": "${"x".repeat(64 << 20)}"}\n`);
  await refusedFast(() => loadInstructions(long), /line 1 is too long .*limit 1048576/, "bad_file", 5000);
  rmSync(long);
  const longCsv = join(dir, "long.csv");
  writeFileSync(longCsv, `question,A,B,C,D,answer\nq,a,b,c,"${"d".repeat(2 << 20)}",A\n`);
  await refusedFast(() => loadMmlu(longCsv), /line 2 is too long/, "bad_file");
  await refusedFast(() => loadInstructions("/dev/zero"), /not a regular file/, "bad_input");
  await refusedFast(() => loadDataset("/dev/zero"), /not a regular file/, "bad_input");
  const d = join(dir, "data.csv");
  mkdirSync(d);
  await refusedFast(() => loadInstructions(d), /data file is a directory/, "bad_input");
  await refusedFast(() => loadDataset(d), /dataset is a directory/, "bad_input");
  const cfg = join(dir, "sweep.yaml");
  mkdirSync(cfg);
  await refusedFast(() => loadSweepConfig(cfg), /sweep config is a directory/, "bad_input");
});

test("a directory where a model file, a shard, tokenizer.json or a vector file is expected is a clear error", async () => {
  const t = writeTinyModels(mkdtempSync(join(dir, "dirs-")), "llama");
  const g = join(dir, "model.gguf");
  mkdirSync(g);
  await refusedFast(() => loadModel(g), /model path is a directory, not a \.gguf file/, "bad_input");
  await refusedFast(() => loadGgufModel(g), /is a directory/, "bad_input");
  // A shard that is a directory.
  rmSync(join(t.hfDir, "model.safetensors"));
  mkdirSync(join(t.hfDir, "model.safetensors"));
  await refusedFast(() => loadModel(t.hfDir), /model\.safetensors/, "bad_input");
  // tokenizer.json that is a directory.
  const t2 = writeTinyModels(mkdtempSync(join(dir, "dirs2-")), "llama");
  rmSync(join(t2.hfDir, "tokenizer.json"));
  mkdirSync(join(t2.hfDir, "tokenizer.json"));
  await refusedFast(() => loadModel(t2.hfDir), /tokenizer file is a directory/, "bad_input");
  for (const v of ["vec.safetensors", "vec.gguf"]) {
    mkdirSync(join(dir, v));
    await refusedFast(() => loadVector(join(dir, v)), /is a directory/, "bad_input");
  }
  await refusedFast(() => loadVector(join(dir, "missing.safetensors")), /not found/, "not_found");
});
