/**
 * openModel's "auto" backend: ggml for quantized or half-precision matrices, ONNX Runtime for f32 ones and
 * whenever an ONNX Runtime-only option is asked for; an explicit backend is kept.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { storedMatrixTypes } from "../../src/model/load.js";
import { chooseBackend, openModel } from "../../src/model/open.js";
import { ggmlAvailable } from "../../src/runtime/ggml/addon.js";
import { writeTinyModels } from "../helpers/tiny-models.js";

const dir = mkdtempSync(join(tmpdir(), "steerlab-auto-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const f32 = writeTinyModels(join(dir, "f32"), "llama");
const q4 = writeTinyModels(join(dir, "q4"), "llama", { ggufDtype: "Q4_0" });
const f16 = writeTinyModels(join(dir, "f16"), "llama", { hfDtype: "F16", ggufDtype: "F16" });
const ggml = ggmlAvailable().ok;

describe("auto backend", () => {
  test("the headers tell the matrices' stored types", () => {
    assert.deepEqual([...storedMatrixTypes(f32.ggufFile)!.types], ["F32"]);
    assert.deepEqual([...storedMatrixTypes(f32.hfDir)!.types], ["F32"]);
    assert.ok(storedMatrixTypes(q4.ggufFile)!.types.has("Q4_0"));
    assert.deepEqual([...storedMatrixTypes(f16.hfDir)!.types], ["F16"]);
    assert.equal(storedMatrixTypes(join(dir, "missing.gguf")), null);
  });

  test("f32 matrices run on ONNX Runtime", async () => {
    assert.equal(await chooseBackend(f32.ggufFile), "onnxruntime");
    assert.equal(await chooseBackend(f32.hfDir, { backend: "auto" }), "onnxruntime");
  });

  test("quantized and half-precision matrices run on ggml (where its addon is built)", async () => {
    const want = ggml ? "ggml" : "onnxruntime";
    assert.equal(await chooseBackend(q4.ggufFile), want);
    assert.equal(await chooseBackend(f16.hfDir), want);
    assert.equal(await chooseBackend(f16.ggufFile), want);
    const notes: string[] = [];
    const m = await openModel(q4.ggufFile, { onInfo: (s) => notes.push(s) });
    assert.equal(m.engine.kind, want);
    await m.engine.dispose();
  });

  test("ONNX Runtime-only options and explicit backends are kept", async () => {
    assert.equal(await chooseBackend(q4.ggufFile, { granularity: "block" }), "onnxruntime");
    assert.equal(await chooseBackend(q4.ggufFile, { quantCompute: "f32" }), "onnxruntime");
    assert.equal(await chooseBackend(f16.hfDir, { dtype: "q8" }), "onnxruntime");
    assert.equal(await chooseBackend(q4.ggufFile, { backend: "reference" }), "reference");
    assert.equal(await chooseBackend(f32.ggufFile, { backend: "ggml" }), "ggml");
    await assert.rejects(chooseBackend(f32.ggufFile, { backend: "tpu" as never }), /unknown backend "tpu"/);
  });
});
