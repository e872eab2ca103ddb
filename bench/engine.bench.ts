/**
 * Engine benchmark on GPT-2-small-shaped models with random weights (no downloads):
 *   prefill tokens/s (one 128-token prompt), decode tokens/s (1 token/step with the KV cache, 64 steps after a
 *   16-token and after a 448-token prompt), build time, and peak RSS against the weights' bytes. Times are the
 *   best of several runs.
 * Run: npx tsx bench/engine.bench.ts [--model llama|gpt2] [--granularity site|block] [--threads N] [--spin] [--arena]
 * Without --model it runs every case in a fresh child process each (so peak RSS is per case) and prints a table.
 *
 * Other backends (llama.cpp on the same weights) plug in as further BenchCase runners: add a function returning
 * a BenchRow and list it in RUNNERS; the table and child-process driver are shared.
 */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { randomWeights } from "../src/model/random.js";
import { createOrtEngine } from "../src/runtime/ort-engine.js";
import {
  BENCH_CONFIGS,
  type BenchCase,
  type BenchRow,
  collect,
  DECODE_PROMPT,
  LONG_PROMPT,
  MiB,
  measureSpeed,
  PROMPT,
  vmKiB,
} from "./cases.js";
import { benchLlamaCpp } from "./llama-cpp.js";

export async function benchOrt(k: BenchCase): Promise<BenchRow> {
  const c = BENCH_CONFIGS[k.model]!;
  collect();
  const baseRssMiB = vmKiB("VmRSS") / 1024;
  let weights: ReturnType<typeof randomWeights> | null = randomWeights(c, 1);
  let bytes = 0;
  for (const t of weights.values()) bytes += t.data.byteLength;
  const t0 = performance.now();
  const engine = await createOrtEngine(
    { config: c, weights },
    { threads: k.threads, spin: k.spin, arena: k.arena, granularity: k.granularity, consumeWeights: true },
  );
  const buildS = (performance.now() - t0) / 1000;
  weights = null;
  collect();

  // Best of several runs: on a shared machine the least-disturbed run is the closest to the engine's speed.
  let cache = engine.newCache(1);
  const speed = await measureSpeed(c.vocabSize, {
    reset: async () => {
      cache = engine.newCache(1);
    },
    prefill: async (p) => {
      await engine.forward({ ids: [p] }, { cache });
    },
    step: async (id) => {
      await engine.forward({ ids: [[id]] }, { cache });
    },
  });
  collect();
  const steady = vmKiB("VmRSS") / 1024;
  await engine.dispose();
  return {
    ...k,
    weightMiB: bytes / MiB,
    buildS,
    ...speed,
    peakRssMiB: vmKiB("VmHWM") / 1024,
    steadyRssMiB: steady,
    baseRssMiB,
  };
}

/** Backends by name: same BenchCase in, BenchRow out. */
export const RUNNERS: Record<string, (k: BenchCase) => Promise<BenchRow>> = {
  onnxruntime: benchOrt,
  "llama.cpp": benchLlamaCpp,
};

function table(rows: BenchRow[]): string {
  const head = [
    "model",
    "backend",
    "graphs",
    "thr",
    "weights MiB",
    "build s",
    `prefill tok/s (T=${PROMPT})`,
    `decode tok/s (@${DECODE_PROMPT})`,
    `decode tok/s (@${LONG_PROMPT})`,
    "peak RSS MiB",
    "steady RSS MiB",
    "base RSS MiB",
  ];
  const body = rows.map((r) => [
    r.model,
    r.backend,
    `${r.granularity}${r.spin ? "+spin" : ""}${r.arena ? "+arena" : ""}`,
    String(r.threads),
    r.weightMiB.toFixed(0),
    r.buildS.toFixed(1),
    r.prefillTokS.toFixed(0),
    r.decodeTokS.toFixed(1),
    r.decodeLongTokS.toFixed(1),
    r.peakRssMiB.toFixed(0),
    r.steadyRssMiB.toFixed(0),
    r.baseRssMiB.toFixed(0),
  ]);
  const width = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((x, i) => x.padEnd(width[i]!)).join(" | ")} |`;
  return [line(head), line(width.map((n) => "-".repeat(n))), ...body.map(line)].join("\n");
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const threads = Number(arg("threads") ?? 2);
  const model = arg("model");
  if (model) {
    const k: BenchCase = {
      model,
      backend: arg("backend") ?? "onnxruntime",
      granularity: (arg("granularity") ?? "site") as BenchCase["granularity"],
      threads,
      spin: process.argv.includes("--spin"),
      arena: process.argv.includes("--arena"),
    };
    const run = RUNNERS[k.backend];
    if (!run) throw new Error(`unknown backend ${k.backend}; known: ${Object.keys(RUNNERS).join(", ")}`);
    process.stdout.write(`${JSON.stringify(await run(k))}\n`);
    return;
  }
  // Driver: one child process per case, so each peak RSS is its own. Cases: ORT with both graph
  // granularities and llama.cpp, per model; then the ratios of ORT (default "site" graphs) to llama.cpp.
  const self = fileURLToPath(import.meta.url);
  const rows: BenchRow[] = [];
  const only = arg("models")?.split(",") ?? Object.keys(BENCH_CONFIGS);
  const cases: [string, string, string][] = [];
  for (const m of only) {
    cases.push([m, "onnxruntime", "site"], [m, "onnxruntime", "block"], [m, "llama.cpp", "site"]);
  }
  for (const [m, backend, g] of cases) {
    const args = [...process.execArgv, self, "--model", m, "--backend", backend, "--granularity", g];
    args.push("--threads", String(threads));
    const out = execFileSync(process.execPath, args, {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    });
    rows.push(JSON.parse(out.trim().split("\n").at(-1)!) as BenchRow);
    process.stderr.write(`done: ${m} ${backend} ${g}\n`);
  }
  process.stdout.write(`${table(rows)}\n\n`);
  for (const m of only) {
    const ort = rows.find((r) => r.model === m && r.backend === "onnxruntime" && r.granularity === "site")!;
    const cpp = rows.find((r) => r.model === m && r.backend === "llama.cpp")!;
    const mem = (ort.steadyRssMiB - ort.baseRssMiB) / ort.weightMiB;
    const peak = (ort.peakRssMiB - ort.baseRssMiB) / ort.weightMiB;
    process.stdout.write(
      `${m}: onnxruntime / llama.cpp (${threads} threads): prefill ${(ort.prefillTokS / cpp.prefillTokS).toFixed(2)}x ` +
        `(target >= 1.5x), decode ${(ort.decodeTokS / cpp.decodeTokS).toFixed(2)}x (target >= 1.0x), ` +
        `decode @${LONG_PROMPT} ${(ort.decodeLongTokS / cpp.decodeLongTokS).toFixed(2)}x; ` +
        `memory above base: steady ${mem.toFixed(2)}x, peak ${peak.toFixed(2)}x the weights (target <= 1.3x)\n`,
    );
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((e) => {
    process.stderr.write(`${(e as Error).stack}\n`);
    process.exitCode = 1;
  });
}
