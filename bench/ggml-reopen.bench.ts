/**
 * Memory across engines in one process (a server that reloads its model): open a file on ggml, run one forward,
 * dispose, four times, printing RSS after each open and each dispose. Before the addon fixed glibc's mmap
 * threshold, RSS grew by the repacked weights on every cycle.
 * Run: npx tsx bench/ggml-reopen.bench.ts FILE.gguf [--cycles 4]
 */
import { readFileSync } from "node:fs";
import { openModel } from "../src/model/open.js";

const rssMiB = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))![1]) / 1024;

const file = process.argv[2];
if (!file) throw new Error("usage: npx tsx bench/ggml-reopen.bench.ts FILE.gguf [--cycles N]");
const i = process.argv.indexOf("--cycles");
const cycles = i > 0 ? Number(process.argv[i + 1]) : 4;
process.stdout.write(`start: RSS ${rssMiB().toFixed(0)} MiB\n`);
for (let c = 1; c <= cycles; c++) {
  const t0 = performance.now();
  const m = await openModel(file, { backend: "ggml", threads: 1 });
  const s = (performance.now() - t0) / 1000;
  await m.engine.forward({ ids: [[1, 2, 3]] });
  const open = rssMiB();
  await m.engine.dispose();
  process.stdout.write(
    `cycle ${c}: open ${s.toFixed(2)} s, RSS after a forward ${open.toFixed(0)} MiB, after dispose ${rssMiB().toFixed(0)} MiB\n`,
  );
}
