/**
 * Where the loaders say each canonical weight is in its file (LazyWeights.source): the bytes found there, undone
 * as the location says (rows of a fused tensor, interleaved q/k rows, a Conv1D transpose), are the weight get()
 * returns. Checked on every tiny architecture, GGUF (F32 and Q8_0) and HF (F32, F16, sharded).
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { unpermuteQk } from "../../src/io/gguf-model.js";
import { dequantize, GGML_TYPE, ggmlByteSize } from "../../src/io/gguf-quant.js";
import { loadModel } from "../../src/model/load.js";
import { TINY_CONFIGS } from "../../src/model/random.js";
import { denseWeight, type FileTensor, LazyWeights, qkRole, sliceRows } from "../../src/model/weights.js";
import { numel, tensor } from "../../src/tensor.js";
import { writeTinyModels } from "../helpers/tiny-models.js";

const dir = mkdtempSync(join(tmpdir(), "steerlab-locations-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The canonical f32 values rebuilt from the file bytes the location names. */
function fromFile(s: FileTensor, heads: number): Float32Array {
  const file = readFileSync(s.file);
  const n = numel(s.shape);
  const bytes = new Uint8Array(file.buffer, file.byteOffset + s.offset, ggmlByteSize(s.ggmlType, n)!);
  let t = tensor(s.shape, dequantize(s.ggmlType, bytes, n));
  if (s.transposed) {
    const [r, c] = t.shape as [number, number];
    const out = new Float32Array(r * c);
    for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j]!;
    t = tensor([c, r], out);
  }
  if (s.rows) t = sliceRows(t, s.rows[0], s.rows[1]) as typeof t;
  if (s.interleavedRope) t = unpermuteQk(t, heads);
  return t.data;
}

for (const name of Object.keys(TINY_CONFIGS))
  for (const [label, opts] of [
    ["F32", {}],
    ["GGUF Q8_0 / HF F16 sharded", { ggufDtype: "Q8_0", hfDtype: "F16", shardBytes: 40_000 }],
  ] as const)
    test(`${name}, ${label}: each location holds the canonical weight`, async () => {
      const files = writeTinyModels(mkdtempSync(join(dir, `${name}-`)), name, opts);
      for (const path of [files.ggufFile, files.hfDir]) {
        const m = await loadModel(path);
        assert.ok(m.weights instanceof LazyWeights);
        const c = m.config;
        let interleaved = 0;
        let transposed = 0;
        let fused = 0;
        for (const canonical of m.weights.keys()) {
          const s = m.weights.source(canonical);
          assert.ok(s, `${path}: no location for ${canonical}`);
          const role = qkRole(canonical);
          const heads = role === "q" ? c.nHeads : c.nKvHeads;
          const want: Float32Array = denseWeight(m.weights.get(canonical)!).data;
          assert.deepEqual(fromFile(s, heads), want, `${path}: ${canonical}`);
          if (s.interleavedRope) interleaved++;
          if (s.transposed) transposed++;
          if (s.rows) fused++;
          if (path === files.hfDir && "hfDtype" in opts) assert.equal(s.ggmlType, GGML_TYPE.F16);
        }
        const gguf = path === files.ggufFile;
        // GGUF llama permutes q and k (2 per block); GPT-2 fuses q/k/v weights and biases (6 per block) in
        // both formats and HF GPT-2 stores its 4 linears of a block (q/k/v counted apart) transposed.
        assert.equal(interleaved, gguf && c.arch === "llama" ? 2 * c.nLayers : 0, `${path} interleaved`);
        assert.equal(fused, c.arch === "gpt2" ? 6 * c.nLayers : 0, `${path} fused`);
        assert.equal(transposed, !gguf && c.arch === "gpt2" ? 6 * c.nLayers : 0, `${path} transposed`);
      }
    });

test("a weight pinned with set() has no file location", async () => {
  const files = writeTinyModels(mkdtempSync(join(dir, "pin-")), "llama");
  const m = await loadModel(files.ggufFile);
  const w = m.weights as LazyWeights;
  assert.ok(w.source("tok_embd"));
  w.set("tok_embd", w.get("tok_embd")!);
  assert.equal(w.source("tok_embd"), undefined);
});
