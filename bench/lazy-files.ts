/**
 * Write the bench's model files without holding the model in memory (file-bench.ts writeBenchFiles: the weights
 * of randomWeights(c, 1), generated one tensor at a time by lazyRandomWeights and streamed through the GGUF
 * writer; peak memory is about one tensor, not the 4.4 GB (TinyLlama) or 27 GB (Llama-2-7B) of f32 weights).
 * The same as `npx tsx bench/engine.bench.ts --files SHAPE --dtypes ... --write-only --dir DIR`.
 * Run: npx tsx bench/lazy-files.ts --shape tinyllama --dtypes Q4_0,Q8_0 --dir /tmp/steerlab-lazy-files
 */
import type { GgufWriteDtype } from "../src/io/gguf-model.js";
import { writeBenchFiles } from "./file-bench.js";

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (k: string) => {
    const i = process.argv.indexOf(`--${k}`);
    return i < 0 ? undefined : process.argv[i + 1];
  };
  writeBenchFiles(
    arg("dir") ?? "/tmp/steerlab-lazy-files",
    arg("shape") ?? "tinyllama",
    (arg("dtypes") ?? "Q4_0").split(",") as GgufWriteDtype[],
  );
}
