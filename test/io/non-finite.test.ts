/**
 * Issue 9, silent garbage: NaN/Inf in weights (safetensors, GGUF F32, a Q8_0 block scale), in steering directions
 * (and directions of 1e38 whose norm overflows f32), and forwards that produce NaN/Inf (a hook writing NaN, a
 * coefficient of 1e30) all end in a SteerlabError naming file, tensor, layer and index; allowNonFinite lets them
 * through for debugging.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { isSteerlabError } from "../../src/errors.js";
import { parseGguf } from "../../src/io/gguf.js";
import { saveGgufModel } from "../../src/io/gguf-model.js";
import { GGML_TYPE } from "../../src/io/gguf-quant.js";
import type { ModelConfig } from "../../src/model/config.js";
import { loadModel } from "../../src/model/load.js";
import { openModel } from "../../src/model/open.js";
import { randomWeights, TINY_CONFIGS } from "../../src/model/random.js";
import { denseWeight } from "../../src/model/weights.js";
import { ReferenceEngine } from "../../src/reference/engine.js";
import { steeringHooks } from "../../src/steer/apply.js";
import { decodeControlVector, encodeControlVector } from "../../src/steer/control-vector-gguf.js";
import { makeVector } from "../../src/steer/vector.js";
import { decodeVector, encodeVector } from "../../src/steer/vector-file.js";
import { firstNonFinite } from "../../src/tensor.js";
import { writeTinyModels } from "../helpers/tiny-models.js";

const dir = mkdtempSync(join(tmpdir(), "steerlab-nonfinite-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Byte offset of a safetensors tensor's data. */
function stOffset(buf: Buffer, name: string): number {
  const len = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + len).toString("utf8"));
  return 8 + len + header[name].data_offsets[0];
}

test("a NaN weight in safetensors names the file, the tensor (file and canonical name), the layer and the index", async () => {
  const t = writeTinyModels(mkdtempSync(join(dir, "st-")), "llama");
  const f = join(t.hfDir, "model.safetensors");
  const buf = readFileSync(f);
  const at = stOffset(buf, "model.layers.1.self_attn.k_proj.weight");
  buf.writeFloatLE(Number.NaN, at + 4 * 37);
  writeFileSync(f, buf);
  await assert.rejects(loadModel(t.hfDir), (e) => {
    assert.ok(isSteerlabError(e, "bad_tensor"), String(e));
    assert.equal(e.details.file, t.hfDir);
    assert.match(
      e.message,
      /blocks\.1\.attn\.k\.weight \(model\.layers\.1\.self_attn\.k_proj\.weight in the file\)/,
    );
    assert.match(e.message, /layer 1: NaN at index 37 \[0, 37\]/);
    assert.match(e.message, /allow-non-finite/);
    return true;
  });
  // The debugging escape hatch loads it, NaN and all.
  const m = await loadModel(t.hfDir, { allowNonFinite: true });
  assert.ok(Number.isNaN(denseWeight(m.weights.get("blocks.1.attn.k.weight")!).data[37]));
});

test("GGUF: +Inf in an F32 tensor and NaN in a Q8_0 block scale are refused with the tensor named", async () => {
  const f32 = writeTinyModels(mkdtempSync(join(dir, "g32-")), "llama");
  const b = readFileSync(f32.ggufFile);
  const info = parseGguf(b).header.tensors.find((x) => x.name === "blk.0.ffn_down.weight")!;
  assert.equal(info.type, GGML_TYPE.F32);
  b.writeFloatLE(Number.POSITIVE_INFINITY, info.offset + 4 * 5);
  writeFileSync(f32.ggufFile, b);
  await assert.rejects(loadModel(f32.ggufFile), (e) => {
    assert.ok(isSteerlabError(e, "bad_tensor"));
    assert.match(
      e.message,
      /blocks\.0\.mlp\.down\.weight \(blk\.0\.ffn_down\.weight in the file\), layer 0: Infinity at index 5/,
    );
    return true;
  });

  const q8 = writeTinyModels(mkdtempSync(join(dir, "gq8-")), "llama", { ggufDtype: "Q8_0" });
  const q = readFileSync(q8.ggufFile);
  const qi = parseGguf(q).header.tensors.find((x) => x.name === "blk.1.attn_v.weight")!;
  assert.equal(qi.type, GGML_TYPE.Q8_0);
  // Q8_0 block: f16 scale d, then 32 int8; the third block's scale becomes an f16 NaN (0x7e00).
  q.writeUInt16LE(0x7e00, qi.offset + 2 * 34);
  writeFileSync(q8.ggufFile, q);
  await assert.rejects(loadModel(q8.ggufFile), (e) => {
    assert.ok(isSteerlabError(e, "bad_tensor"));
    assert.match(
      e.message,
      /blocks\.1\.attn\.v\.weight \(blk\.1\.attn_v\.weight in the file\), layer 1: NaN at index 64/,
    );
    return true;
  });
});

test("quantized weights are judged by their block scales: a NaN dmin of a Q4_K super-block and an Inf Q4_0 scale are named with their index", async () => {
  // Q4_K super-block: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes of codes (144 bytes, 256 values).
  // Rows of 256 values, so the matrices take Q4_K (the tiny configs' rows fall back to Q8_0).
  const config: ModelConfig = {
    ...TINY_CONFIGS.llama!,
    hiddenSize: 256,
    nHeads: 4,
    headDim: 64,
    intermediateSize: 512,
  };
  const k = { ggufFile: join(mkdtempSync(join(dir, "gq4k-")), "m.gguf") };
  saveGgufModel(k.ggufFile, config, randomWeights(config, 3), { dtype: "Q4_K" });
  const kb = readFileSync(k.ggufFile);
  const ki = parseGguf(kb).header.tensors.find((x) => x.name === "blk.2.ffn_up.weight")!;
  assert.equal(ki.type, GGML_TYPE.Q4_K);
  kb.writeUInt16LE(0x7e00, ki.offset + 144 + 2); // dmin of the second super-block
  writeFileSync(k.ggufFile, kb);
  await assert.rejects(loadModel(k.ggufFile), (e) => {
    assert.ok(isSteerlabError(e, "bad_tensor"));
    assert.match(
      e.message,
      /blocks\.2\.mlp\.up\.weight \(blk\.2\.ffn_up\.weight in the file\), layer 2: NaN at index 256 /,
    );
    return true;
  });

  const q4 = writeTinyModels(mkdtempSync(join(dir, "gq40-")), "llama", { ggufDtype: "Q4_0" });
  const qb = readFileSync(q4.ggufFile);
  const qi = parseGguf(qb).header.tensors.find((x) => x.name === "blk.0.attn_output.weight")!;
  assert.equal(qi.type, GGML_TYPE.Q4_0);
  qb.writeUInt16LE(0xfc00, qi.offset + 5 * 18); // -Inf scale of the sixth block
  writeFileSync(q4.ggufFile, qb);
  await assert.rejects(
    loadModel(q4.ggufFile),
    (e) =>
      isSteerlabError(e, "bad_tensor") &&
      /attn\.o\.weight .*layer 0: (-Infinity|NaN) at index 160 /.test(e.message),
  );

  // Checked on read (what openModel does: one pass over the file): loading succeeds, the engine build that
  // reads the tensor fails with the same description; allowNonFinite still lets it through.
  const lazy = await loadModel(q4.ggufFile, { finiteCheck: "read" });
  assert.throws(
    () => lazy.weights.get("blocks.0.attn.o.weight"),
    (e) =>
      isSteerlabError(e, "bad_tensor") &&
      /attn\.o\.weight .*layer 0: (-Infinity|NaN) at index 160 /.test(e.message),
  );
  assert.ok(lazy.weights.get("blocks.0.attn.q.weight"), "a finite tensor reads as before");
  for (const backend of ["onnxruntime", "reference"] as const) {
    await assert.rejects(
      openModel(q4.ggufFile, { backend }),
      (e) => isSteerlabError(e, "bad_tensor") && /attn\.o\.weight/.test(e.message),
      backend,
    );
  }
  const opened = await openModel(q4.ggufFile, { allowNonFinite: true });
  await opened.engine.dispose();
});

test("firstNonFinite finds the first NaN / Inf anywhere (the 4-wide body and the tail), and none among large finite values", () => {
  for (const n of [0, 1, 3, 4, 7, 4099]) {
    const d = new Float32Array(n).fill(3.4e38);
    if (n) d[0] = -3.4e38;
    assert.equal(firstNonFinite(d), -1, `finite, n = ${n}`);
    for (let at = 0; at < n; at += Math.max(1, Math.floor(n / 5))) {
      for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
        const e = d.slice();
        e[at] = bad;
        if (at + 2 < n) e[at + 2] = Number.NaN; // a later one is not the first
        assert.equal(firstNonFinite(e), at, `${bad} at ${at} of ${n}`);
      }
    }
  }
});

test("steering directions: NaN, Inf and an f32-overflowing norm (values of 1e38) are refused in every vector format", () => {
  const D = 8;
  const ok = new Float32Array(D).fill(0.5);
  const nan = Float32Array.from(ok);
  nan[3] = Number.NaN;
  const huge = new Float32Array(D).fill(1e38);
  assert.throws(
    () => makeVector(new Map([[2, nan]])),
    (e) => isSteerlabError(e, "bad_tensor") && /direction\.2, layer 2: NaN at index 3/.test(e.message),
  );
  assert.throws(
    () =>
      makeVector(
        new Map([
          [1, ok],
          [4, huge],
        ]),
      ),
    (e) => isSteerlabError(e, "bad_tensor") && /direction\.4.*overflows float32/.test(e.message),
  );
  // Files: a valid file whose direction bytes are then overwritten with NaN / 1e38.
  const good = makeVector(
    new Map([
      [1, ok],
      [2, Float32Array.from(ok)],
    ]),
  );
  for (const [bad, pattern] of [
    [Number.NaN, /NaN at index 0/],
    [1e38, /overflows float32/],
  ] as const) {
    const st = Buffer.from(encodeVector(good));
    const at = stOffset(st, "direction.2");
    for (let i = 0; i < D; i++) st.writeFloatLE(bad, at + 4 * i);
    assert.throws(
      () => decodeVector(st, "v.safetensors"),
      (e) =>
        isSteerlabError(e, "bad_tensor") && e.details.file === "v.safetensors" && pattern.test(e.message),
    );
    assert.equal(decodeVector(st, "v.safetensors", { allowNonFinite: true }).directions.size, 2);
    const cv = Buffer.from(encodeControlVector(good));
    const info = parseGguf(cv).header.tensors.find((x) => x.name === "direction.2")!;
    for (let i = 0; i < D; i++) cv.writeFloatLE(bad, info.offset + 4 * i);
    assert.throws(
      () => decodeControlVector(cv, "cv.gguf"),
      (e) => isSteerlabError(e, "bad_tensor") && e.details.file === "cv.gguf" && pattern.test(e.message),
    );
  }
});

test("a hook writing NaN and a coefficient of 1e30 end in an error, not NaN logits; allowNonFinite returns them", async () => {
  const t = writeTinyModels(mkdtempSync(join(dir, "fw-")), "llama");
  for (const backend of ["reference", "onnxruntime"] as const) {
    const { engine } = await openModel(t.hfDir, { backend });
    try {
      const batch = { ids: [[1, 5, 9, 12]] };
      const nanHook = [
        {
          point: { layer: 1, site: "resid_post" as const },
          fn: (c: { hidden: Float32Array }) => c.hidden.fill(Number.NaN, 0, 3),
        },
      ];
      await assert.rejects(
        engine.forward(batch, { hooks: nanHook, logits: "all" }),
        (e) => isSteerlabError(e, "bad_input") && /the forward produced NaN in the logits/.test(e.message),
        backend,
      );
      const raw = await engine.forward(batch, { hooks: nanHook, logits: "all", allowNonFinite: true });
      assert.ok(Number.isNaN(raw.logits[0]), `${backend}: the raw NaN comes back when allowed`);
      // r_e = 1e30 on a unit vector: the residual would overflow float32 in the next norm; refused at call time.
      const D = t.config.hiddenSize;
      const u = new Float32Array(D);
      u[0] = 1;
      assert.throws(
        () => steeringHooks(makeVector(new Map([[0, u]])), { coeff: 1e30, nLayers: t.config.nLayers }),
        (e) =>
          isSteerlabError(e, "bad_input") &&
          /coefficient too large/.test(e.message) &&
          /1e\+30/.test(e.message),
      );
      // Finite steering still works (coefficient 0 is the baseline).
      const h0 = steeringHooks(makeVector(new Map([[0, u]])), { coeff: 0, nLayers: t.config.nLayers });
      const base = await engine.forward(batch);
      assert.deepEqual((await engine.forward(batch, { hooks: h0 })).logits, base.logits);
    } finally {
      await engine.dispose();
    }
  }
});

test("forward after dispose throws on the reference engine, as on ONNX Runtime", async () => {
  const t = writeTinyModels(mkdtempSync(join(dir, "disp-")), "gpt2");
  const m = await loadModel(t.hfDir);
  const e = ReferenceEngine.fromModel(m);
  await e.forward({ ids: [[1, 2]] });
  await e.dispose();
  await assert.rejects(
    e.forward({ ids: [[1, 2]] }),
    (err) => isSteerlabError(err, "bad_input") && /disposed/.test(err.message),
  );
});
