import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { isSteerlabError } from "../../src/errors.js";
import { loadHfModel, saveHfModel, toHfTensors } from "../../src/io/hf-model.js";
import { readSafetensors, writeSafetensorsDir } from "../../src/io/safetensors.js";
import { toHfConfig } from "../../src/model/config.js";
import { randomWeights, TINY_CONFIGS } from "../../src/model/random.js";
import { assertWeightsClose, writeTinyModels } from "../helpers/tiny-models.js";

const dir = mkdtempSync(join(tmpdir(), "steerlab-hf-"));
after(() => rmSync(dir, { recursive: true, force: true }));

for (const name of Object.keys(TINY_CONFIGS)) {
  test(`${name}: an F32 HF folder loads back to the same config and bit-exact canonical weights`, async () => {
    const t = writeTinyModels(mkdtempSync(join(dir, `${name}-`)), name);
    const m = await loadHfModel(t.hfDir);
    assert.deepEqual(m.config, t.config);
    assertWeightsClose(m.weights, t.weights);
    assert.equal(m.source.format, "hf");
    assert.equal(m.spec.name, t.config.arch);
    assert.match(m.fingerprint, /^[0-9a-f]{64}$/);
    assert.equal(
      Object.values(m.dtypes).reduce((a, b) => a + b, 0),
      readSafetensors(join(t.hfDir, "model.safetensors")).tensors.size,
    );
    assert.ok(m.tokenizer, "tokenizer.json is loaded");
    assert.deepEqual(
      m.tokenizer.decode(m.tokenizer.encode("hello world", { addSpecialTokens: false })),
      "hello world",
    );
    if (t.config.tiedEmbeddings) assert.ok(!m.weights.has("lm_head.weight"));
  });
}

test("gpt2: c_attn is one Conv1D [D, 3D] tensor whose column blocks are q, k, v transposed", () => {
  const t = writeTinyModels(mkdtempSync(join(dir, "gpt2c-")), "gpt2");
  const st = readSafetensors(join(t.hfDir, "model.safetensors")).tensors;
  const D = t.config.hiddenSize;
  const F = t.config.intermediateSize;
  const cattn = st.get("h.1.attn.c_attn.weight")!;
  assert.deepEqual(cattn.shape, [D, 3 * D]);
  assert.deepEqual(st.get("h.1.mlp.c_fc.weight")!.shape, [D, F]);
  assert.deepEqual(st.get("h.1.mlp.c_proj.weight")!.shape, [F, D]);
  const k = t.weights.get("blocks.1.attn.k.weight")!.data; // [out, in]
  for (const [o, i] of [
    [0, 0],
    [5, 17],
    [D - 1, D - 2],
  ] as const) {
    assert.equal(cattn.data[i * 3 * D + D + o], k[o * D + i]);
  }
  const kb = t.weights.get("blocks.1.attn.k.bias")!.data;
  assert.deepEqual(st.get("h.1.attn.c_attn.bias")!.data.slice(D, 2 * D), kb);
});

test("gpt2 checkpoints with the transformer. prefix (GPT2LMHeadModel.save_pretrained) load", async () => {
  const c = TINY_CONFIGS.gpt2!;
  const w = randomWeights(c, 5);
  const sub = join(dir, "gpt2-prefixed");
  writeSafetensorsDir(
    sub,
    toHfTensors(c, w).map(([n, t]) => [`transformer.${n}`, t]),
  );
  writeFileSync(join(sub, "config.json"), JSON.stringify(toHfConfig(c)));
  assertWeightsClose((await loadHfModel(sub)).weights, w);
});

test("F16 and BF16 folders load within half an ulp; dtypes are reported", async () => {
  for (const [dtype, rel] of [
    ["F16", 2 ** -11],
    ["BF16", 2 ** -8],
  ] as const) {
    const t = writeTinyModels(mkdtempSync(join(dir, `${dtype}-`)), "qwen2", { hfDtype: dtype });
    const m = await loadHfModel(t.hfDir);
    assertWeightsClose(m.weights, t.weights, rel);
    assert.deepEqual(Object.keys(m.dtypes), [dtype]);
  }
});

test("sharded folders (model.safetensors.index.json) load", async () => {
  const t = writeTinyModels(mkdtempSync(join(dir, "shard-")), "llama", { shardBytes: 40_000 });
  const index = JSON.parse(readFileSync(join(t.hfDir, "model.safetensors.index.json"), "utf8"));
  assert.ok(new Set(Object.values(index.weight_map)).size > 2);
  const m = await loadHfModel(t.hfDir);
  assertWeightsClose(m.weights, t.weights);
  assert.equal(
    m.fingerprint,
    (await loadHfModel(writeTinyModels(mkdtempSync(join(dir, "one-")), "llama").hfDir)).fingerprint,
  );
});

test("a tensor of the wrong shape is named with both shapes", async () => {
  const t = writeTinyModels(mkdtempSync(join(dir, "shape-")), "llama");
  const cfgPath = join(t.hfDir, "config.json");
  const cfg = JSON.parse(readFileSync(cfgPath, "utf8"));
  cfg.intermediate_size = 96;
  writeFileSync(cfgPath, JSON.stringify(cfg));
  await assert.rejects(loadHfModel(t.hfDir), (e) => {
    assert.ok(isSteerlabError(e, "bad_tensor"));
    assert.match(
      e.message,
      /model\.layers\.0\.mlp\.up_proj\.weight \(blocks\.0\.mlp\.up\.weight\) has shape \[160, 64\], expected \[96, 64\]/,
    );
    assert.ok(e.details.problems!.length >= 9, "every bad tensor is listed");
    return true;
  });
});

test("a missing tensor is named; an unsupported model_type names the file", async () => {
  const c = TINY_CONFIGS.llama!;
  const sub = join(dir, "missing");
  saveHfModel(sub, c, randomWeights(c));
  writeSafetensorsDir(
    sub,
    toHfTensors(c, randomWeights(c)).filter(([n]) => n !== "model.layers.2.self_attn.v_proj.weight"),
  );
  await assert.rejects(
    loadHfModel(sub),
    (e) =>
      isSteerlabError(e, "bad_tensor") &&
      e.message.includes("missing tensor model.layers.2.self_attn.v_proj.weight"),
  );
  writeFileSync(join(sub, "config.json"), JSON.stringify({ ...toHfConfig(c), model_type: "bert" }));
  await assert.rejects(
    loadHfModel(sub),
    (e) =>
      isSteerlabError(e, "unsupported") &&
      e.message.includes(join(sub, "config.json")) &&
      e.message.includes("bert"),
  );
  writeFileSync(join(sub, "config.json"), JSON.stringify({ ...toHfConfig(c), num_hidden_layers: 1e9 }));
  await assert.rejects(
    loadHfModel(sub),
    (e) => isSteerlabError(e, "bad_config") && e.message.includes("num_hidden_layers"),
  );
  writeFileSync(join(sub, "config.json"), "{oops");
  await assert.rejects(loadHfModel(sub), (e) => isSteerlabError(e, "bad_file"));
});
