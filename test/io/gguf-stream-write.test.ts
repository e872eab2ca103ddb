/**
 * Streaming writes of random models: lazyRandomWeights generates each tensor when the GGUF writer reaches it
 * (what lets the bench write a 7B file in about one tensor of memory). The file must be byte for byte the one the
 * in-memory path writes from randomWeights, for every dtype, including K-quants on a shape whose rows fit them.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { byteLevelTokenizerJson } from "../../src/io/bpe-train.js";
import { readGguf } from "../../src/io/gguf.js";
import { type GgufWriteDtype, loadGgufModel, saveGgufModel } from "../../src/io/gguf-model.js";
import { ggufTokenizerMetadata } from "../../src/io/tokenizer.js";
import type { ModelConfig } from "../../src/model/config.js";
import {
  fillGaussian,
  gaussian,
  gaussianFrom,
  lazyRandomWeights,
  randomWeights,
  rng,
  TINY_CONFIGS,
} from "../../src/model/random.js";
import { expectedWeights, type ModelWeights } from "../../src/model/weights.js";

const dir = mkdtempSync(join(tmpdir(), "steerlab-stream-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Rows of 256: every matrix takes Q4_K / Q6_K as asked (the tiny configs fall back to Q8_0). */
const KQUANT_SHAPE: ModelConfig = {
  ...TINY_CONFIGS.llama!,
  vocabSize: 512,
  hiddenSize: 256,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  headDim: 64,
  intermediateSize: 512,
};

function write(file: string, c: ModelConfig, w: ModelWeights, dtype: GgufWriteDtype): Uint8Array {
  saveGgufModel(file, c, w, {
    tokenizerMeta: ggufTokenizerMetadata(byteLevelTokenizerJson(c.vocabSize), {
      bosTokenId: null,
      eosTokenId: null,
    }),
    dtype,
  });
  return readFileSync(file);
}

test("gaussianFrom(seed, n) continues the sequential stream at any offset, odd or even", () => {
  const g = gaussian(rng(42));
  const seq = Array.from({ length: 1001 }, g);
  for (const n of [0, 1, 2, 7, 500, 999, 1000]) {
    const h = gaussianFrom(42, n);
    assert.equal(h(), seq[n], `sample ${n}`);
    if (n + 1 < seq.length) assert.equal(h(), seq[n + 1], `sample ${n + 1}`);
  }
  // Far offsets (a 7B model draws ~6.7e9 samples): the state arithmetic wraps at 2^32 draws as mulberry32 does.
  const far = 3_000_001;
  const s = gaussian(rng(9));
  for (let i = 0; i < far; i++) s();
  assert.equal(gaussianFrom(9, far)(), s());
  assert.equal(gaussianFrom(9, 2 ** 32 + 6)(), gaussianFrom(9, 6)());
  assert.notEqual(gaussianFrom(9, 6)(), gaussianFrom(9, 8)());
  // fillGaussian (the loop randomWeights uses) gives the same samples, scaled, from odd and even offsets.
  for (const [n, len] of [
    [0, 7],
    [3, 8],
    [5, 1],
    [far, 33],
  ] as const) {
    const d = new Float32Array(len);
    fillGaussian(d, 9, n, 0.3, 1);
    const h = gaussianFrom(9, n);
    assert.deepEqual(
      d,
      Float32Array.from({ length: len }, () => 1 + 0.3 * h()),
      `offset ${n}`,
    );
  }
});

test("randomWeights draws its first tensor straight from gaussian(rng(seed))", () => {
  const c = TINY_CONFIGS.llama!;
  const g = gaussian(rng(3));
  const first = [...expectedWeights(c)][0]!;
  const t = randomWeights(c, 3).get(first[0])!;
  assert.deepEqual(t.data, Float32Array.from({ length: t.data.length }, g), first[0]);
});

test("lazyRandomWeights equals randomWeights tensor for tensor and keeps nothing", () => {
  for (const [name, c] of Object.entries(TINY_CONFIGS)) {
    const eager = randomWeights(c, 3);
    const lazy = lazyRandomWeights(c, 3);
    assert.deepEqual([...lazy.keys()], [...expectedWeights(c).keys()], name);
    for (const [k, t] of eager) {
      const a = lazy.get(k)!;
      assert.deepEqual(a.shape, t.shape, `${name} ${k}`);
      assert.ok("data" in a && Buffer.from(a.data.buffer).equals(Buffer.from(t.data.buffer)), `${name} ${k}`);
      assert.notEqual(lazy.get(k), a, "each get() generates a fresh tensor: none is cached");
    }
  }
});

for (const dtype of ["F32", "Q8_0", "Q4_0", "Q4_K", "Q6_K"] as const) {
  test(`streaming ${dtype} GGUF write is byte-identical to the in-memory write`, async () => {
    const configs: [string, ModelConfig][] = [
      ["kquant-shape", KQUANT_SHAPE],
      ...Object.entries(TINY_CONFIGS),
    ];
    for (const [name, c] of configs) {
      const a = write(join(dir, `${name}-${dtype}-mem.gguf`), c, randomWeights(c, 5), dtype);
      const b = write(join(dir, `${name}-${dtype}-lazy.gguf`), c, lazyRandomWeights(c, 5), dtype);
      assert.ok(Buffer.from(a).equals(Buffer.from(b)), `${name} ${dtype}: files differ`);
    }
    // The K-quant shape really holds the requested type (not the Q8_0 fallback) and loads back.
    const file = join(dir, `kquant-shape-${dtype}-lazy.gguf`);
    const types = new Set(
      readGguf(file)
        .header.tensors.filter((t) => t.shape.length === 2)
        .map((t) => t.type),
    );
    const want = { F32: 0, Q8_0: 8, Q4_0: 2, Q4_K: 12, Q6_K: 14 }[dtype];
    assert.deepEqual([...types], [want]);
    const m = await loadGgufModel(file);
    assert.deepEqual(m.config, KQUANT_SHAPE);
  });
}

test("saveGgufModel reports progress once per tensor, in order", () => {
  const c = TINY_CONFIGS.llama!;
  const seen: [number, number][] = [];
  saveGgufModel(join(dir, "progress.gguf"), c, lazyRandomWeights(c, 1), {
    dtype: "Q8_0",
    onProgress: (e) => seen.push([e.done, e.total]),
  });
  const n = readGguf(join(dir, "progress.gguf")).header.tensors.length;
  assert.equal(n, expectedWeights(c).size);
  assert.deepEqual(
    seen,
    Array.from({ length: n }, (_, i) => [i + 1, n]),
  );
});
