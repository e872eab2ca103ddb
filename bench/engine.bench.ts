/**
 * Engine benchmark on GPT-2-small-shaped models with random weights (no downloads):
 *   prefill tokens/s (one 128-token prompt), decode tokens/s (1 token/step with the KV cache, 64 steps after a
 *   16-token and after a 448-token prompt), build time, and peak RSS against the weights' bytes. Times are the
 *   best of several runs.
 * Run: npx tsx bench/engine.bench.ts [--model llama|gpt2] [--granularity site|block] [--threads N] [--spin] [--arena]
 * Model files (GGUF F32 / Q8_0 / Q4_0 / Q4_K of real shapes, against llama.cpp on the same file): see file-bench.ts,
 *   npx tsx bench/engine.bench.ts --files tinyllama|llama7b|small [--dtypes F32,Q8_0,Q4_0,Q4_K] [--rounds 2]
 *   [--backends onnxruntime,llama.cpp,ggml] (default onnxruntime,llama.cpp; ggml runs with an F32 cache as llama.cpp)
 *   (rows are appended to DIR/SHAPE-rows.jsonl; --summary that-file prints the table again; --write-only writes
 *   the missing files of SHAPE to --dir, default $TMPDIR/steerlab-bench-files, and stops)
 * Without --model it runs every case in a fresh child process each (so peak RSS is per case) and prints a table.
 *
 * Other backends (llama.cpp on the same weights) plug in as further BenchCase runners: add a function returning
 * a BenchRow and list it in RUNNERS; the table and child-process driver are shared.
 */
import { execFileSync } from "node:child_process";
import { appendFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { GgufWriteDtype } from "../src/io/gguf-model.js";
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
import {
  benchLlamaCppFile,
  benchOrtFile,
  FILE_SHAPES,
  type FileRow,
  fileTable,
  writeBenchFiles,
} from "./file-bench.js";
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

/**
 * --files SHAPE: the file bench (file-bench.ts). Each case runs in a child process (--file-case
 * shape:dtype:backend), ORT and llama.cpp interleaved per dtype, --rounds times; files are written once to --dir.
 */
async function files(shape: string, threads: number): Promise<void> {
  const dir = arg("dir") ?? join(tmpdir(), "steerlab-bench-files");
  const dtypes = (arg("dtypes") ?? "F32,Q8_0,Q4_0,Q4_K").split(",") as GgufWriteDtype[];
  const rounds = Number(arg("rounds") ?? 2);
  const backends = (arg("backends") ?? "onnxruntime,llama.cpp").split(",");
  writeBenchFiles(dir, shape, dtypes);
  if (process.argv.includes("--write-only")) return;
  const self = fileURLToPath(import.meta.url);
  const rows: FileRow[] = [];
  for (let r = 0; r < rounds; r++) {
    for (const dtype of dtypes) {
      for (const backend of backends) {
        const args = [...process.execArgv, self, "--file-case", `${shape}:${dtype}:${backend}`, "--dir", dir];
        args.push("--threads", String(threads));
        const out = execFileSync(process.execPath, args, {
          encoding: "utf8",
          stdio: ["ignore", "pipe", "inherit"],
        });
        const got = JSON.parse(out.trim().split("\n").at(-1)!) as FileRow;
        rows.push(got);
        appendFileSync(join(dir, `${shape}-rows.jsonl`), `${JSON.stringify(got)}\n`);
        process.stderr.write(`round ${r + 1}: ${JSON.stringify(got)}\n`);
      }
    }
  }
  summarize(shape, threads, rounds, dtypes, rows);
}

/** The table of all rows, then per dtype the best-of-rounds ratios of steerlab to llama.cpp. */
function summarize(
  shape: string,
  threads: number,
  rounds: number,
  dtypes: readonly string[],
  rows: FileRow[],
): void {
  process.stdout.write(`${fileTable(rows)}\n\n`);
  for (const r of rows) {
    const s = r.steer;
    if (!s) continue;
    process.stdout.write(
      `${shape} ${r.dtype} steerlab generates and steers: greedy ${s.baseline.join(",")}; with r_e = ${s.coeff.toFixed(0)} ` +
        `on a random unit vector at block ${s.layer}: ${s.steered.join(",")} (${s.changed ? "changed" : "UNCHANGED"}, ` +
        `logits ${s.finite ? "all finite" : "NOT FINITE"})\n`,
    );
  }
  for (const dtype of dtypes) {
    const best = (backend: string, k: "prefillTokS" | "decodeTokS" | "decodeLongTokS") =>
      Math.max(...rows.filter((x) => x.dtype === dtype && x.backend === backend).map((x) => x[k]));
    const minOf = (backend: string, k: "loadS" | "peakRssMiB" | "steadyRssMiB") =>
      Math.min(
        ...rows
          .filter((x) => x.dtype === dtype && x.backend === backend)
          .map((x) => (k === "loadS" ? x.loadS : (x[k] - x.baseRssMiB) / x.fileMiB)),
      );
    // One line per steerlab backend benched (onnxruntime, ggml).
    const ours = [
      ...new Set(rows.filter((x) => x.dtype === dtype && x.backend !== "llama.cpp").map((x) => x.backend)),
    ];
    for (const b of ours) {
      const ratio = (k: "prefillTokS" | "decodeTokS" | "decodeLongTokS") =>
        (best(b, k) / best("llama.cpp", k)).toFixed(2);
      process.stdout.write(
        `${shape} ${dtype}, ${threads} threads, best of ${rounds}: steerlab ${b} / llama.cpp prefill ${ratio("prefillTokS")}x, ` +
          `decode@16 ${ratio("decodeTokS")}x, decode@512 ${ratio("decodeLongTokS")}x, load ` +
          `${(minOf(b, "loadS") / minOf("llama.cpp", "loadS")).toFixed(1)}x; steerlab RSS / file: peak ` +
          `${minOf(b, "peakRssMiB").toFixed(2)}, steady ${minOf(b, "steadyRssMiB").toFixed(2)}` +
          ` (llama.cpp ${minOf("llama.cpp", "peakRssMiB").toFixed(2)} / ${minOf("llama.cpp", "steadyRssMiB").toFixed(2)})\n`,
      );
    }
  }
}

async function main(): Promise<void> {
  const threads = Number(arg("threads") ?? 2);
  const fileCase = arg("file-case");
  if (fileCase) {
    const [shape, dtype, backend] = fileCase.split(":") as [string, string, string];
    const dir = arg("dir")!;
    const row =
      backend === "llama.cpp"
        ? await benchLlamaCppFile(dir, shape, dtype, threads)
        : await benchOrtFile(dir, shape, dtype, threads, backend === "ggml" ? "ggml" : "onnxruntime");
    process.stdout.write(`${JSON.stringify(row)}\n`);
    return;
  }
  const summary = arg("summary");
  if (summary) {
    // Rows saved by earlier runs (DIR/SHAPE-rows.jsonl): the table and ratios without rerunning.
    const rows = readFileSync(summary, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as FileRow);
    const dtypes = [...new Set(rows.map((r) => r.dtype))];
    const nBackends = new Set(rows.map((r) => r.backend)).size;
    const rounds = Math.max(...dtypes.map((d) => rows.filter((r) => r.dtype === d).length / nBackends));
    summarize(rows[0]!.shape, rows[0]!.threads, rounds, dtypes, rows);
    return;
  }
  const shape = arg("files");
  if (shape) {
    if (!FILE_SHAPES[shape])
      throw new Error(`unknown shape ${shape}; known: ${Object.keys(FILE_SHAPES).join(", ")}`);
    await files(shape, threads);
    return;
  }
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
