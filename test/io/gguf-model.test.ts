import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { isSteerlabError, SteerlabError } from "../../src/errors.js";
import { gv, parseGguf, readGguf } from "../../src/io/gguf.js";
import { loadGgufModel, permuteQk, saveGgufModel, unpermuteQk } from "../../src/io/gguf-model.js";
import { llama3RopeFactors } from "../../src/io/gguf-rope.js";
import { loadHfModel } from "../../src/io/hf-model.js";
import { modelFingerprint } from "../../src/model/fingerprint.js";
import { randomWeights, rng, TINY_CONFIGS } from "../../src/model/random.js";
import { ropeInvFreq } from "../../src/model/rope.js";
import { denseWeight } from "../../src/model/weights.js";
import { tensor } from "../../src/tensor.js";
import { assertWeightsClose, rewriteGguf, writeTinyModels } from "../helpers/tiny-models.js";

const dir = mkdtempSync(join(tmpdir(), "steerlab-ggufm-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("the fingerprint reads only its sampled rows, and equals the one of the same weights read whole", async () => {
  for (const [name, ggufDtype] of [
    ["llama", "Q4_K"],
    ["llama", "Q8_0"],
    ["qwen2", "Q4_0"],
    ["gpt2", undefined],
  ] as const) {
    const t = writeTinyModels(mkdtempSync(join(dir, `fp-${name}-`)), name, { ggufDtype });
    for (const m of [await loadGgufModel(t.ggufFile), await loadHfModel(t.hfDir)]) {
      // new Map(lazy) reads every tensor whole (q/k un-permuted, fused parts split): the plain computation.
      assert.equal(
        m.fingerprint,
        modelFingerprint(m.config, new Map(m.weights)),
        `${name} ${m.source.format}`,
      );
    }
    // A changed value inside the sample changes it (the first row of a permuted q and the last of the head).
    const other = structuredClone(t.config);
    const w = new Map(t.weights);
    const q = denseWeight(w.get("blocks.0.attn.q.weight")!);
    const bumped = tensor(q.shape, q.data.slice());
    bumped.data[3]! += 0.5;
    w.set("blocks.0.attn.q.weight", bumped);
    assert.notEqual(modelFingerprint(other, w), modelFingerprint(other, t.weights));
  }
});

for (const name of Object.keys(TINY_CONFIGS)) {
  test(`${name}: HF and GGUF (F32) of the same weights load to identical config, weights and fingerprint`, async () => {
    const t = writeTinyModels(mkdtempSync(join(dir, `${name}-`)), name);
    const g = await loadGgufModel(t.ggufFile);
    const h = await loadHfModel(t.hfDir);
    assert.deepEqual(g.config, t.config);
    assert.deepEqual(g.config, h.config);
    assertWeightsClose(g.weights, t.weights);
    assertWeightsClose(g.weights, h.weights);
    assert.equal(g.fingerprint, h.fingerprint);
    assert.equal(g.source.format, "gguf");
    assert.ok(g.tokenizer);
    assert.deepEqual(
      g.tokenizer.encode("hello world", { addSpecialTokens: false }),
      h.tokenizer!.encode("hello world", { addSpecialTokens: false }),
    );
    // Tied models carry no output.weight (llama.cpp falls back to token_embd).
    const names = readGguf(t.ggufFile).header.tensors.map((x) => x.name);
    assert.equal(names.includes("output.weight"), !t.config.tiedEmbeddings);
  });
}

test("Q/K permutation: the interleaved layout of convert_hf_to_gguf, and its inverse", () => {
  // One head, hd = 4: HF rows (pair halves) [x0, x1 | y0, y1] -> llama.cpp [x0, y0, x1, y1].
  const t = tensor(
    [8, 2],
    Float32Array.from({ length: 16 }, (_, i) => i),
  );
  const p = permuteQk(t, 2);
  const rows = (x: Float32Array) => Array.from({ length: 8 }, (_, r) => x[2 * r]! / 2);
  assert.deepEqual(rows(p.data), [0, 2, 1, 3, 4, 6, 5, 7]);
  assert.deepEqual(unpermuteQk(p, 2).data, t.data);
  const w = randomWeights(TINY_CONFIGS.llama!, 3).get("blocks.0.attn.k.weight")!;
  assert.deepEqual(unpermuteQk(permuteQk(w, 2), 2).data, w.data);
  assert.notDeepEqual(permuteQk(w, 2).data, w.data);
});

test("llama files store permuted q/k; qwen2 files store them as they are", () => {
  for (const [name, permuted] of [
    ["llama", true],
    ["qwen2", false],
  ] as const) {
    const t = writeTinyModels(mkdtempSync(join(dir, `perm-${name}-`)), name);
    const raw = readGguf(t.ggufFile).tensors;
    const c = t.config;
    const q = t.weights.get("blocks.1.attn.q.weight")!;
    const k = t.weights.get("blocks.1.attn.k.weight")!;
    const wantQ = permuted ? permuteQk(q, c.nHeads) : q;
    const wantK = permuted ? permuteQk(k, c.nKvHeads) : k;
    assert.deepEqual(raw.get("blk.1.attn_q.weight")!.data, wantQ.data);
    assert.deepEqual(raw.get("blk.1.attn_k.weight")!.data, wantK.data);
    assert.deepEqual(raw.get("blk.1.attn_v.weight")!.data, t.weights.get("blocks.1.attn.v.weight")!.data);
  }
});

test("gpt2 GGUF fuses q, k, v rows into attn_qkv and keeps position_embd", () => {
  const t = writeTinyModels(mkdtempSync(join(dir, "gpt2f-")), "gpt2");
  const raw = readGguf(t.ggufFile).tensors;
  const D = t.config.hiddenSize;
  const qkv = raw.get("blk.0.attn_qkv.weight")!;
  assert.deepEqual(qkv.shape, [3 * D, D]);
  assert.deepEqual(qkv.data.subarray(2 * D * D), t.weights.get("blocks.0.attn.v.weight")!.data);
  assert.deepEqual(
    raw.get("blk.0.attn_qkv.bias")!.data.subarray(D, 2 * D),
    t.weights.get("blocks.0.attn.k.bias")!.data,
  );
  assert.deepEqual(raw.get("position_embd.weight")!.data, t.weights.get("pos_embd")!.data);
});

test("quantized GGUF: matrices within the Q8_0 / Q4_0 bounds, norms and biases exact", async () => {
  for (const [dtype, steps] of [
    ["Q8_0", 127],
    ["Q4_0", 8],
  ] as const) {
    const t = writeTinyModels(mkdtempSync(join(dir, `${dtype}-`)), "qwen2", { ggufDtype: dtype });
    const m = await loadGgufModel(t.ggufFile);
    assert.deepEqual(Object.keys(m.dtypes).sort(), ["F32", dtype].sort());
    for (const [name, want] of t.weights) {
      const got = denseWeight(m.weights.get(name)!).data;
      if (want.shape.length === 1) {
        assert.deepEqual(got, want.data, name);
        continue;
      }
      for (let b = 0; b < got.length; b += 32) {
        let amax = 0;
        for (let j = b; j < b + 32; j++) amax = Math.max(amax, Math.abs(want.data[j]!));
        for (let j = b; j < b + 32; j++) {
          assert.ok(Math.abs(got[j]! - want.data[j]!) <= (1.01 * amax) / steps, `${dtype} ${name}[${j}]`);
        }
      }
    }
  }
});

/** Rewrite a GGUF file with some metadata changed (tensors re-encoded as F32). */

test("llama3 scaling: rope_freqs.weight as convert_hf_to_gguf writes it, read back exactly or recovered", async () => {
  const t = writeTinyModels(mkdtempSync(join(dir, "l3-")), "llama3");
  const c = t.config;
  const rs = c.ropeScaling!;
  assert.equal(rs.type, "llama3");
  const freqs = readGguf(t.ggufFile).tensors.get("rope_freqs.weight")!;
  assert.deepEqual(freqs.shape, [c.headDim / 2]);
  // hd 16, theta 5e5: wavelengths 6.3, 32.6, 167, ...; thresholds 64/4 = 16 and 64/1 = 64.
  assert.equal(freqs.data[0], 1);
  assert.ok(freqs.data[1]! > 1 && freqs.data[1]! < 8);
  assert.deepEqual([...freqs.data.subarray(2)], new Array(6).fill(8));
  assert.deepEqual(freqs.data, llama3RopeFactors(c.headDim, c.ropeTheta, rs as never));
  // Without steerlab's own keys (a file from llama.cpp's converter), parameters are recovered from the tensor:
  // maybe not the same numbers, but the same frequencies.
  const plain = join(dir, "l3-plain.gguf");
  rewriteGguf(t.ggufFile, plain, (m) => {
    for (const k of [...m.keys()]) if (k.startsWith("steerlab.")) m.delete(k);
  });
  const m = await loadGgufModel(plain);
  assert.equal(m.config.ropeScaling?.type, "llama3");
  const a = ropeInvFreq(c);
  const b = ropeInvFreq(m.config);
  a.forEach((x, i) => {
    assert.ok(Math.abs(b[i]! - x) <= 1e-6 * x, `inv_freq[${i}]`);
  });
  // A real Llama-3.1 shape (hd 128, theta 5e5, 8192 / 1 / 4 / 8) is recovered exactly from its divisors.
  const real = {
    type: "llama3",
    factor: 8,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositions: 8192,
  } as const;
  const big = { ...c, headDim: 128, nHeads: 2, nKvHeads: 1, hiddenSize: 256, ropeScaling: real };
  const bigFile = join(dir, "l3-big.gguf");
  saveGgufModel(bigFile, big, randomWeights(big, 1));
  rewriteGguf(bigFile, bigFile, (md) => {
    for (const k of [...md.keys()]) if (k.startsWith("steerlab.")) md.delete(k);
  });
  const rec = (await loadGgufModel(bigFile)).config.ropeScaling!;
  assert.equal(rec.type, "llama3");
  if (rec.type === "llama3") {
    assert.ok(Math.abs(rec.highFreqFactor - 4) < 1e-3 && Math.abs(rec.originalMaxPositions - 8192) < 1);
  }
});

test("wrong-shape tensors, missing keys and unsupported architectures are named", async () => {
  const t = writeTinyModels(mkdtempSync(join(dir, "err-")), "llama");
  const f = join(dir, "err.gguf");
  rewriteGguf(t.ggufFile, f, (m) => m.set("llama.feed_forward_length", gv.u32(96)));
  await assert.rejects(loadGgufModel(f), (e) => {
    assert.ok(isSteerlabError(e, "bad_tensor"), String(e));
    assert.match(
      e.message,
      /blk\.0\.ffn_gate\.weight \(blocks\.0\.mlp\.gate\.weight\) has shape \[160, 64\], expected \[96, 64\]/,
    );
    assert.ok(e.message.includes(f));
    return true;
  });
  rewriteGguf(t.ggufFile, f, () => {}, "blk.2.attn_output.weight");
  await assert.rejects(
    loadGgufModel(f),
    (e) => isSteerlabError(e, "bad_tensor") && e.message.includes("missing tensor blk.2.attn_output.weight"),
  );
  rewriteGguf(t.ggufFile, f, (m) => m.delete("llama.block_count"));
  await assert.rejects(
    loadGgufModel(f),
    (e) => isSteerlabError(e, "bad_config") && e.message.includes("llama.block_count"),
  );
  // Absurd counts are refused before anything loops over them.
  rewriteGguf(t.ggufFile, f, (m) => m.set("llama.block_count", gv.u32(4_000_000_000)));
  await assert.rejects(
    loadGgufModel(f),
    (e) => isSteerlabError(e, "bad_config") && e.message.includes("block_count"),
  );
  rewriteGguf(t.ggufFile, f, (m) => m.set("general.architecture", gv.str("bert")));
  await assert.rejects(
    loadGgufModel(f),
    (e) => isSteerlabError(e, "unsupported") && e.message.includes(f) && e.message.includes("bert"),
  );
});

test("mistral is written as llama.cpp's llama (permuted q/k) and loads back as the same weights", async () => {
  const c = { ...TINY_CONFIGS.llama!, arch: "mistral" as const };
  const w = randomWeights(c, 4);
  const f = join(dir, "mistral.gguf");
  saveGgufModel(f, c, w);
  const m = await loadGgufModel(f);
  assert.equal(readGguf(f).header.metadata.get("general.architecture")?.value, "llama");
  assert.deepEqual(m.config, { ...c, arch: "llama" });
  assertWeightsClose(m.weights, w);
});

test("end-of-generation ids: eos plus eot / eom when the vocab defines them", async () => {
  const t = writeTinyModels(mkdtempSync(join(dir, "eot-")), "llama");
  const f = join(dir, "eot.gguf");
  rewriteGguf(t.ggufFile, f, (m) => m.set("tokenizer.ggml.eot_token_id", gv.u32(3)));
  assert.deepEqual((await loadGgufModel(f)).config.eosTokenIds, [2, 3]);
});

test("fuzz: a model file truncated anywhere fails with a SteerlabError", async () => {
  const t = writeTinyModels(mkdtempSync(join(dir, "fz-")), "gpt2", { ggufDtype: "Q8_0" });
  const buf = readFileSync(t.ggufFile);
  const dataStart = parseGguf(buf).header.dataStart;
  const f = join(dir, "fz.gguf");
  const cuts = [0, 3, 8, 23, 40, 100, 1000, dataStart - 1, dataStart + 5, buf.length - 100];
  for (let i = 1; i < 30; i++) cuts.push(Math.floor((i * buf.length) / 30));
  for (const n of cuts) {
    writeFileSync(f, buf.subarray(0, n));
    await assert.rejects(loadGgufModel(f), (e) => e instanceof SteerlabError, `cut at ${n}`);
  }
  // Random byte changes in the tensor table (names, dims, types, offsets): loads or a SteerlabError.
  const infoStart = buf.indexOf(Buffer.from("token_embd.weight")) - 8;
  assert.ok(infoStart > 0 && infoStart < dataStart);
  const r = rng(9);
  let failed = 0;
  for (let i = 0; i < 200; i++) {
    const b = Buffer.from(buf);
    b[infoStart + Math.floor(r() * (dataStart - infoStart))] = Math.floor(r() * 256);
    writeFileSync(f, b);
    try {
      await loadGgufModel(f);
    } catch (e) {
      if (!(e instanceof SteerlabError)) throw e;
      failed++;
    }
  }
  assert.ok(failed > 50, `most corruptions are caught (${failed}/200)`);
});
