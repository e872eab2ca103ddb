/**
 * The ggml engine's NaN/Inf check of the weights it maps or repacks, done by the addon on the mapped bytes
 * (GgmlMap.firstNonFinite) instead of the loader reading every value in JS. Oracles: the index of a value planted
 * in the file, and the error of the ONNX Runtime path on the same file (the loader's JS check), which the ggml
 * path must reproduce exactly (code, message, file, hint).
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { isSteerlabError, type SteerlabError } from "../../src/errors.js";
import { parseGguf } from "../../src/io/gguf.js";
import { saveGgufModel } from "../../src/io/gguf-model.js";
import { f32ToBf16, f32ToF16, GGML_TYPE } from "../../src/io/gguf-quant.js";
import type { ModelConfig } from "../../src/model/config.js";
import { loadModel } from "../../src/model/load.js";
import { openModel } from "../../src/model/open.js";
import { randomWeights, TINY_CONFIGS } from "../../src/model/random.js";
import { LazyWeights } from "../../src/model/weights.js";
import { ggmlAvailable, loadGgml } from "../../src/runtime/ggml/addon.js";
import { createGgmlEngine } from "../../src/runtime/ggml/ggml-engine.js";
import { writeTinyModels } from "../helpers/tiny-models.js";

const avail = ggmlAvailable();
const skip = avail.ok ? false : `ggml addon not available: ${avail.why}`;
const dir = mkdtempSync(join(tmpdir(), "steerlab-ggml-finite-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The SteerlabError an open fails with (fails the test when it opens). */
async function openError(path: string, backend: "ggml" | "onnxruntime"): Promise<SteerlabError> {
  try {
    const o = await openModel(path, { backend, threads: 1 });
    await o.engine.dispose();
  } catch (e) {
    assert.ok(isSteerlabError(e, "bad_tensor"), `${backend}: ${e}`);
    return e;
  }
  assert.fail(`${backend} opened ${path}`);
}

/** ggml refuses the file with the error the ONNX Runtime path gives; allowNonFinite opens it. */
async function sameRefusal(path: string, expect: RegExp): Promise<void> {
  const ort = await openError(path, "onnxruntime");
  const ggml = await openError(path, "ggml");
  assert.match(ort.message, expect);
  assert.equal(ggml.message, ort.message);
  assert.deepEqual(ggml.details, ort.details);
  assert.equal(ggml.details.file, path);
  const o = await openModel(path, { backend: "ggml", threads: 1, allowNonFinite: true });
  await o.engine.dispose();
}

function ggufTensor(file: string, name: string, type: number): { buf: Buffer; offset: number } {
  const buf = readFileSync(file);
  const info = parseGguf(buf).header.tensors.find((x) => x.name === name)!;
  assert.equal(info.type, type, name);
  return { buf, offset: info.offset };
}

function stOffset(buf: Buffer, name: string): number {
  const len = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + len).toString("utf8"));
  assert.equal(header[name].dtype, "BF16", name);
  return 8 + len + header[name].data_offsets[0];
}

describe("ggml: NaN/Inf weights checked in the addon", { skip }, () => {
  test("firstNonFinite finds the first NaN / Inf of F32, F16, BF16 values and the first bad Q8_0 / Q4_K block scale", () => {
    const be = loadGgml().backend(1);
    try {
      const n = 10_000; // more than two of the addon's 4096-value chunks, and a tail
      const f = join(dir, "scan.bin");
      const cases: [number, number, (v: number) => Buffer][] = [
        [GGML_TYPE.F32, 4, (v) => Buffer.from(Float32Array.of(v).buffer)],
        [GGML_TYPE.F16, 2, (v) => Buffer.from(Uint16Array.of(f32ToF16(v)).buffer)],
        [GGML_TYPE.BF16, 2, (v) => Buffer.from(Uint16Array.of(f32ToBf16(v)).buffer)],
      ];
      for (const [type, size, enc] of cases) {
        // Large finite values (65504 is f16's largest) and -0 are finite; offset 8 in the file.
        const clean = Buffer.alloc(8 + n * size);
        for (let i = 0; i < n; i++)
          enc(i % 3 === 0 ? 65504 : i % 3 === 1 ? -0 : -1.5).copy(clean, 8 + i * size);
        writeFileSync(f, clean);
        let m = be.mapFile(f);
        assert.equal(m.firstNonFinite(8, type, n), -1, `clean, type ${type}`);
        m.close();
        for (const at of [0, 4095, 4096, 9999]) {
          for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
            const b = Buffer.from(clean);
            enc(bad).copy(b, 8 + at * size);
            if (at + 3 < n) enc(Number.NaN).copy(b, 8 + (at + 3) * size); // a later one is not the first
            writeFileSync(f, b);
            m = be.mapFile(f);
            assert.equal(m.firstNonFinite(8, type, n), at, `${bad} at ${at}, type ${type}`);
            // A range that ends before it sees none.
            assert.equal(m.firstNonFinite(8, type, at), -1);
            m.close();
          }
        }
      }
      // Q8_0 (34-byte blocks, f16 d at 0) and Q4_K (144-byte blocks, f16 d at 0, dmin at 2): the block index.
      for (const [type, bytes, halves, field] of [
        [GGML_TYPE.Q8_0, 34, [0], 0],
        [GGML_TYPE.Q4_K, 144, [0, 2], 2],
      ] as const) {
        const block = type === GGML_TYPE.Q8_0 ? 32 : 256;
        const b = Buffer.alloc(16 * bytes, 0x7c); // every code byte has the bad pattern: only fields count
        for (let k = 0; k < 16; k++) for (const h of halves) b.writeUInt16LE(0x3c00, k * bytes + h); // 1.0
        writeFileSync(f, b);
        let m = be.mapFile(f);
        assert.equal(m.firstNonFinite(0, type, 16 * block, halves), -1);
        m.close();
        b.writeUInt16LE(0x7c00, 11 * bytes + field); // +Inf
        writeFileSync(f, b);
        m = be.mapFile(f);
        assert.equal(m.firstNonFinite(0, type, 16 * block, halves), 11);
        assert.throws(() => m.firstNonFinite(0, type, 17 * block, halves), /outside/);
        assert.throws(() => m.firstNonFinite(0, type, block + 1, halves), /whole/);
        assert.throws(() => m.firstNonFinite(0, type, block), /f16 fields/);
        assert.throws(() => m.firstNonFinite(0, type, block, [bytes - 1]), /outside a/);
        m.close();
        assert.throws(() => m.firstNonFinite(0, type, block, halves), /closed/);
      }
    } finally {
      be.dispose();
    }
  });

  test("GGUF F32: NaN and +Inf give the ONNX Runtime path's error; a clean file opens", async () => {
    const t = writeTinyModels(mkdtempSync(join(dir, "f32-")), "llama");
    const clean = await openModel(t.ggufFile, { backend: "ggml", threads: 1 });
    const r = await clean.engine.forward({ ids: [[1, 5, 9]] }, { logits: "last" });
    assert.ok(r.logits.every(Number.isFinite));
    await clean.engine.dispose();

    const { buf, offset } = ggufTensor(t.ggufFile, "blk.0.ffn_down.weight", GGML_TYPE.F32);
    buf.writeFloatLE(Number.POSITIVE_INFINITY, offset + 4 * 5);
    writeFileSync(t.ggufFile, buf);
    await sameRefusal(
      t.ggufFile,
      /blocks\.0\.mlp\.down\.weight \(blk\.0\.ffn_down\.weight in the file\), layer 0: Infinity at index 5 /,
    );

    // q is stored permuted for interleaved RoPE and mapped so: the error still gives the canonical index.
    const q = writeTinyModels(mkdtempSync(join(dir, "f32q-")), "llama");
    const g = ggufTensor(q.ggufFile, "blk.1.attn_q.weight", GGML_TYPE.F32);
    g.buf.writeFloatLE(Number.NaN, g.offset + 4 * 3 * 64);
    writeFileSync(q.ggufFile, g.buf);
    await sameRefusal(
      q.ggufFile,
      /blocks\.1\.attn\.q\.weight \(blk\.1\.attn_q\.weight in the file\), layer 1: NaN/,
    );
  });

  test("GGUF F16: NaN and -Inf give the ONNX Runtime path's error", async () => {
    for (const [bits, what] of [
      [0x7e00, "NaN"],
      [0xfc00, "-Infinity"],
    ] as const) {
      const t = writeTinyModels(mkdtempSync(join(dir, "f16-")), "llama", { ggufDtype: "F16" });
      const { buf, offset } = ggufTensor(t.ggufFile, "blk.1.ffn_gate.weight", GGML_TYPE.F16);
      buf.writeUInt16LE(bits, offset + 2 * 40);
      writeFileSync(t.ggufFile, buf);
      await sameRefusal(
        t.ggufFile,
        new RegExp(
          `blocks\\.1\\.mlp\\.gate\\.weight \\(blk\\.1\\.ffn_gate\\.weight in the file\\), layer 1: ${what} at index 40 `,
        ),
      );
    }
  });

  test("safetensors BF16: NaN and +Inf give the ONNX Runtime path's error", async () => {
    for (const [bits, what] of [
      [0x7fc0, "NaN"],
      [0x7f80, "Infinity"],
    ] as const) {
      const t = writeTinyModels(mkdtempSync(join(dir, "bf16-")), "llama", { hfDtype: "BF16" });
      const f = join(t.hfDir, "model.safetensors");
      const buf = readFileSync(f);
      buf.writeUInt16LE(bits, stOffset(buf, "model.layers.0.mlp.up_proj.weight") + 2 * 17);
      writeFileSync(f, buf);
      await sameRefusal(
        t.hfDir,
        new RegExp(
          `blocks\\.0\\.mlp\\.up\\.weight \\(model\\.layers\\.0\\.mlp\\.up_proj\\.weight in the file\\), layer 0: ${what} at index 17 `,
        ),
      );
    }
  });

  test("GGUF Q8_0 and Q4_K block scales (repacked by ggml): NaN / Inf give the ONNX Runtime path's error", async () => {
    const q8 = writeTinyModels(mkdtempSync(join(dir, "q8-")), "llama", { ggufDtype: "Q8_0" });
    const a = ggufTensor(q8.ggufFile, "blk.1.attn_v.weight", GGML_TYPE.Q8_0);
    a.buf.writeUInt16LE(0x7e00, a.offset + 2 * 34); // the third block's scale d
    writeFileSync(q8.ggufFile, a.buf);
    await sameRefusal(
      q8.ggufFile,
      /blocks\.1\.attn\.v\.weight \(blk\.1\.attn_v\.weight in the file\), layer 1: NaN at index 64 /,
    );

    // Rows of 256 values, so the matrices take Q4_K.
    const config: ModelConfig = {
      ...TINY_CONFIGS.llama!,
      hiddenSize: 256,
      nHeads: 4,
      headDim: 64,
      intermediateSize: 512,
    };
    const k = join(mkdtempSync(join(dir, "q4k-")), "m.gguf");
    saveGgufModel(k, config, randomWeights(config, 3), { dtype: "Q4_K" });
    const b = ggufTensor(k, "blk.2.ffn_up.weight", GGML_TYPE.Q4_K);
    b.buf.writeUInt16LE(0x7c00, b.offset + 144 + 2); // +Inf dmin of the second super-block
    writeFileSync(k, b.buf);
    await sameRefusal(
      k,
      /blocks\.2\.mlp\.up\.weight \(blk\.2\.ffn_up\.weight in the file\), layer 2: (NaN|-?Infinity) at index 256 /,
    );
  });

  test("the engine's check reads no mapped tensor through the loader (JS sees only what ggml copies)", async () => {
    const t = writeTinyModels(mkdtempSync(join(dir, "reads-")), "llama");
    const m = await loadModel(t.ggufFile, { finiteCheck: "read" });
    assert.ok(m.weights instanceof LazyWeights);
    const reads: string[] = [];
    const lazy = m.weights;
    lazy.inspectReads((name) => reads.push(name));
    const e = await createGgmlEngine(m, { threads: 1, checkFinite: true });
    const copied = e.stats().weights.copied;
    await e.dispose();
    // Every weight of a GGUF F32 llama is mapped as stored: nothing is read in JS.
    assert.equal(copied, 0);
    assert.deepEqual(reads, []);
  });
});
