// What one compute() of a tiny graph costs, with the backend's persistent threadpool and without it (ggml then
// starts and joins its threads on every compute). Usage (after `npm run build`):
//   node native/overhead.mjs [runs=1000] [rounds=5]
// Prints microseconds per compute, the median of `rounds` interleaved rounds per setting, and the load average.
import { readFileSync } from "node:fs";
import { GGML_TYPE, loadGgml } from "../dist/src/runtime/ggml/addon.js";

const runs = Number(process.argv[2] ?? 1000);
const rounds = Number(process.argv[3] ?? 5);
const ggml = loadGgml();

function tinyGraph(be) {
  const g = be.graph();
  const x = g.input(GGML_TYPE.F32, [64, 4], new Float32Array(256).fill(1));
  const y = g.op("add", [g.op("scale", [x], [2]), x]);
  g.expand(y);
  return g;
}

const settings = [];
for (const threads of [1, 2]) {
  for (const threadpool of [true, false]) {
    const be = ggml.backend(threads, { threadpool });
    settings.push({ threads, threadpool, be, graph: tinyGraph(be), us: [] });
  }
}
for (let r = 0; r < rounds; r++) {
  for (const s of settings) {
    s.graph.compute(); // warm
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < runs; i++) s.graph.compute();
    s.us.push(Number(process.hrtime.bigint() - t0) / 1e3 / runs);
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const s of settings) {
  console.log(
    `threads ${s.threads} threadpool ${s.threadpool ? "yes" : "no "}: ${median(s.us).toFixed(1)} us per compute (rounds: ${s.us.map((u) => u.toFixed(1)).join(" ")})`,
  );
  s.be.dispose();
}
console.log(`loadavg ${readFileSync("/proc/loadavg", "utf8").trim()}`);
