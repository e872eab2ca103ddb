/**
 * Write the bench's model files without holding the model in memory: random weights of a FILE_SHAPES shape made
 * one tensor at a time (seeded per tensor name, so every dtype gets the same weights), streamed through the GGUF
 * writer. Peak memory is about one tensor, not the 4.4 GB (TinyLlama) or 27 GB (Llama-2-7B) of f32 weights.
 * Not the same weights as file-bench.ts's randomWeights(c, 1) (one sequential stream), but the same distributions.
 * Run: npx tsx bench/lazy-files.ts --shape tinyllama --dtypes Q4_0,Q8_0 --dir /tmp/steerlab-lazy-files
 */
import { existsSync, mkdirSync } from "node:fs";
import { byteLevelTokenizerJson } from "../src/io/bpe-train.js";
import { type GgufWriteDtype, saveGgufModel } from "../src/io/gguf-model.js";
import { ggufTokenizerMetadata } from "../src/io/tokenizer.js";
import type { ModelConfig } from "../src/model/config.js";
import { gaussian, rng } from "../src/model/random.js";
import { expectedWeights, LazyWeights, W, type Weight } from "../src/model/weights.js";
import { tensor } from "../src/tensor.js";
import { benchFile, FILE_SHAPES } from "./file-bench.js";

/** A tensor's seed from its name (FNV-1a), so tensors can be made in any order. */
function seedOf(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** The randomWeights distributions, one tensor at a time. */
export function lazyRandomWeights(c: ModelConfig): LazyWeights {
  const shapes = expectedWeights(c);
  const readers = new Map<string, () => Weight>();
  for (const [name, shape] of shapes) {
    readers.set(name, () => {
      const g = gaussian(rng(seedOf(name)));
      const t = tensor(shape);
      const d = t.data;
      let s = 1 / Math.sqrt(shape[shape.length - 1]!);
      if (name.endsWith("norm.weight")) {
        for (let i = 0; i < d.length; i++) d[i] = 1 + 0.2 * g();
        return t;
      }
      if (name.endsWith(".bias")) s = 0.1;
      else if (name === W.lmHead || (name === W.tokEmbd && c.tiedEmbeddings)) s = 3 / Math.sqrt(c.hiddenSize);
      else if (name === W.tokEmbd || name === W.posEmbd) s = 1;
      for (let i = 0; i < d.length; i++) d[i] = s * g();
      return t;
    });
  }
  return new LazyWeights(readers, shapes, new Map());
}

export function writeLazyFiles(dir: string, shape: string, dtypes: readonly GgufWriteDtype[]): void {
  mkdirSync(dir, { recursive: true });
  const c = FILE_SHAPES[shape]!;
  const tok = byteLevelTokenizerJson(c.vocabSize);
  for (const dtype of dtypes) {
    const file = benchFile(dir, shape, dtype);
    if (existsSync(file)) continue;
    const t0 = performance.now();
    saveGgufModel(file, c, lazyRandomWeights(c), {
      tokenizerMeta: ggufTokenizerMetadata(tok, { bosTokenId: null, eosTokenId: null }),
      dtype,
    });
    process.stderr.write(`wrote ${file} in ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (k: string) => {
    const i = process.argv.indexOf(`--${k}`);
    return i < 0 ? undefined : process.argv[i + 1];
  };
  writeLazyFiles(
    arg("dir") ?? "/tmp/steerlab-lazy-files",
    arg("shape") ?? "tinyllama",
    (arg("dtypes") ?? "Q4_0").split(",") as GgufWriteDtype[],
  );
}
