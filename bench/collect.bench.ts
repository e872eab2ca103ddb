/**
 * What reading activations costs (issue 3): pairs/s of collectActivations (every layer, resid_post, last token)
 * against the same batches run as plain forwards with no hooks (stopping at the same layer, no logits), on a
 * GPT-2-small-shaped llama with random weights, ONNX Runtime, same process, same batches. Target: < 10%.
 * Run: npx tsx bench/collect.bench.ts [--pairs N] [--threads N]
 */
import { fileURLToPath } from "node:url";
import { randomWeights, rng } from "../src/model/random.js";
import { createOrtEngine } from "../src/runtime/ort-engine.js";
import { collectActivations } from "../src/steer/collect.js";
import { BENCH_CONFIGS } from "./cases.js";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

export async function benchCollect(opts: { pairs: number; threads: number; batchSize: number }) {
  const c = BENCH_CONFIGS.llama!;
  const engine = await createOrtEngine(
    { config: c, weights: randomWeights(c, 1) },
    { threads: opts.threads, consumeWeights: true },
  );
  const u = rng(5);
  // 2 members per pair, 24-40 tokens each (varied lengths, so batches are padded as in real data).
  const seqs = Array.from({ length: 2 * opts.pairs }, () =>
    Array.from({ length: 24 + Math.floor(u() * 17) }, () => Math.floor(u() * c.vocabSize)),
  );
  const points = Array.from({ length: c.nLayers }, (_, layer) => ({ layer, site: "resid_post" as const }));
  const plain = async () => {
    const order = seqs.map((_, i) => i).sort((a, b) => seqs[a]!.length - seqs[b]!.length);
    for (let s = 0; s < order.length; s += opts.batchSize) {
      const idx = order.slice(s, s + opts.batchSize);
      const T = Math.max(...idx.map((i) => seqs[i]!.length));
      const ids = idx.map((i) => [...new Array<number>(T - seqs[i]!.length).fill(0), ...seqs[i]!]);
      const mask = idx.map((i) => [
        ...new Array<number>(T - seqs[i]!.length).fill(0),
        ...seqs[i]!.map(() => 1),
      ]);
      await engine.forward({ ids, mask }, { logits: "none", stopAfterLayer: c.nLayers - 1 });
    }
  };
  const read = () =>
    collectActivations(engine, seqs, { points, read: { kind: "last" }, batchSize: opts.batchSize });
  await plain(); // warm-up
  const times = { plain: [] as number[], read: [] as number[] };
  for (let r = 0; r < 3; r++) {
    let t = performance.now();
    await plain();
    times.plain.push(performance.now() - t);
    t = performance.now();
    await read();
    times.read.push(performance.now() - t);
  }
  await engine.dispose();
  const plainS = Math.min(...times.plain) / 1000;
  const readS = Math.min(...times.read) / 1000;
  return {
    pairs: opts.pairs,
    plainPairsPerS: opts.pairs / plainS,
    readPairsPerS: opts.pairs / readS,
    overhead: readS / plainS - 1,
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const r = await benchCollect({ pairs: arg("pairs", 32), threads: arg("threads", 2), batchSize: 8 });
  process.stdout.write(
    `activation reading (${r.pairs} pairs, 12 layers read, GPT-2-small-shaped llama, onnxruntime)\n` +
      `plain forward   ${r.plainPairsPerS.toFixed(2)} pairs/s\n` +
      `with reading    ${r.readPairsPerS.toFixed(2)} pairs/s\n` +
      `overhead        ${(100 * r.overhead).toFixed(1)}% (target < 10%)\n`,
  );
}
