/**
 * Load-time JavaScript work per quantized matrix (TinyLlama's MLP shape, 5632 x 2048): ggml bytes to
 * MatMulNBits form (toNBits) and the non-finite check by block scales (blocksAllFinite). CPU ms, best of 5.
 * Run: npx tsx bench/repack.bench.ts
 */
import { blocksAllFinite, GGML_TYPE, quantize } from "../src/io/gguf-quant.js";
import { toNBits } from "../src/model/graph/nbits.js";
import { rng } from "../src/model/random.js";

const [N, K] = [5632, 2048];
const u = rng(1);
const x = Float32Array.from({ length: N * K }, () => 2 * u() - 1);
const best = (f: () => void) => {
  let b = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 5; i++) {
    const t = process.cpuUsage();
    f();
    const d = process.cpuUsage(t);
    b = Math.min(b, (d.user + d.system) / 1000);
  }
  return b.toFixed(1);
};
for (const type of [GGML_TYPE.Q4_0, GGML_TYPE.Q8_0, GGML_TYPE.Q4_K]) {
  const q = { shape: [N, K] as [number, number], ggmlType: type, bytes: quantize(type, x) };
  process.stdout.write(
    `type ${type}: toNBits ${best(() => toNBits(q))} ms, blocksAllFinite ${best(() => blocksAllFinite(type, q.bytes))} ms\n`,
  );
}
