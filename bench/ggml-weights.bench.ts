/**
 * The ggml engine's quantized matmul weights repacked (AMX / CPU_REPACK, the default, as llama.cpp) or mapped from
 * the file: prefill (one 512-token prompt, best of 2) and decode (32 steps after 16 tokens) per mode, interleaved.
 * Run: npx tsx bench/ggml-weights.bench.ts --file F.gguf [--threads 2] [--modes repack,map] [--rounds 2]
 */
import { loadavg } from "node:os";
import { loadModel } from "../src/model/load.js";
import { createGgmlEngine, type MatmulWeights } from "../src/runtime/ggml/ggml-engine.js";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function run(file: string, mode: MatmulWeights, threads: number): Promise<Record<string, unknown>> {
  const m = await loadModel(file);
  const t0 = performance.now();
  const en = await createGgmlEngine(m, { threads, cacheType: "f32", matmulWeights: mode });
  const loadS = (performance.now() - t0) / 1000;
  const V = m.config.vocabSize;
  const ids = Array.from({ length: 512 }, (_, i) => ((i * 7919) % (V - 10)) + 10);
  let best = Infinity;
  for (let r = 0; r < 2; r++) {
    const t = performance.now();
    await en.forward({ ids: [ids] }, { cache: en.newCache(1) });
    best = Math.min(best, performance.now() - t);
  }
  const cache = en.newCache(1);
  await en.forward({ ids: [ids.slice(0, 16)] }, { cache });
  const t = performance.now();
  for (let i = 0; i < 32; i++) await en.forward({ ids: [[ids[16 + i]!]] }, { cache });
  const decodeMs = (performance.now() - t) / 32;
  const held = en.stats().ggml.copied;
  await en.dispose();
  return {
    mode,
    threads,
    engineS: +loadS.toFixed(2),
    prefillTokS: +((512 / best) * 1000).toFixed(1),
    decodeTokS: +(1000 / decodeMs).toFixed(2),
    copiedMiB: Object.fromEntries(Object.entries(held).map(([k, v]) => [k, Math.round(v / 2 ** 20)])),
    loadavg: loadavg().map((x) => +x.toFixed(2)),
  };
}

async function main(): Promise<void> {
  const file = arg("file");
  if (!file) throw new Error("--file F.gguf is required");
  const threads = Number(arg("threads") ?? 2);
  const modes = (arg("modes") ?? "repack,map").split(",") as MatmulWeights[];
  const rounds = Number(arg("rounds") ?? 2);
  for (let r = 0; r < rounds; r++)
    for (const mode of modes) process.stdout.write(`${JSON.stringify(await run(file, mode, threads))}\n`);
}

await main();
