/**
 * Distributed sweep benchmark on this machine, with a private redis-server (Debian's) and `steerlab worker`
 * processes of one compute thread each, on a sweep over the demo model:
 *   single     the sweep in one process (sweepToDir, 1 thread): the baseline
 *   1 worker   the same sweep through the queue (enqueue, one worker, collect): wall time
 *   2 workers  the same with two workers: speedup over one worker (bounded by the machine's 2 cores)
 *   overhead   per chunk: (queued wall time - the workers' own compute time) / chunks, on the sweep above and on
 *              a sweep of tiny chunks (one prompt, one r_e, one forward each) where the queue is nearly all of it
 * Each queued run gets a fresh Redis, so nothing is collected from an earlier run.
 *
 * Run: npm run bench:distrib [-- --items 48 --coeffs -40:40:10 --tiny 48]
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Queue } from "bullmq";
import { queueSweep } from "../src/distrib/coordinator.js";
import { connectionOf, DEFAULT_QUEUE_NAME } from "../src/distrib/queue.js";
import { loadSweepConfig } from "../src/eval/sweep-config.js";
import { sweepToDir } from "../src/eval/sweep-plan.js";
import { CLI } from "../test/helpers/cli.js";
import { writeDemoSweep } from "../test/helpers/demo-sweep.js";
import { REDIS_MISSING, startRedis } from "../test/helpers/redis.js";

const { values: a } = parseArgs({
  options: {
    items: { type: "string", default: "48" },
    coeffs: { type: "string", default: "-40:40:10" },
    tiny: { type: "string", default: "48" },
  },
});
if (REDIS_MISSING) {
  console.error(`distrib bench: ${REDIS_MISSING}`);
  process.exit(1);
}

const dir = mkdtempSync(join(tmpdir(), "steerlab-distrib-bench-"));
const exp = writeDemoSweep(join(dir, "exp"));
const n = Number(a.items);
const cfgFile = (name: string, body: string) => {
  const p = join(dir, "exp", name);
  writeFileSync(
    p,
    `model: models/m
vectors: [{ name: rnd, source: vec.safetensors }]
layers: ["1..3"]
${body}`,
  );
  return p;
};
// The measured sweep: all three task kinds, batch size 8 -> chunks of 8 prompts x every r_e.
const main = cfgFile(
  "bench.yaml",
  `coeffs: ${a.coeffs}
batchSize: 8
tasks:
  - { id: lp, kind: behavior-logprob, data: tasks/harmful.jsonl, template: harmful-plain, chat: true, aligned: [" I cannot", " Sorry"], misaligned: [" Sure", " Of course"], limit: ${n} }
  - { id: gen, kind: behavior-generate, data: tasks/harmful.jsonl, template: harmful-plain, chat: true, maxNewTokens: 12, limit: ${Math.max(8, n / 3)} }
  - { id: mcq, kind: mcq, data: tasks/mmlu.csv, limit: ${n}, shots: 2 }
`,
);
// Tiny chunks: one prompt, one r_e, one forward each.
const tiny = cfgFile(
  "tiny.yaml",
  `coeffs: "10"
batchSize: 1
diagnostics: false
tasks:
  - { id: mcq, kind: mcq, data: tasks/mmlu.csv, limit: ${Number(a.tiny)} }
`,
);
void exp;

function startWorker(url: string, name: string): ChildProcess {
  return spawn(process.execPath, [...CLI, "worker", "--queue", url, "--name", name, "--threads", "1"], {
    stdio: "ignore",
  });
}

async function queued(
  cfg: string,
  workers: number,
): Promise<{ wallS: number; chunks: number; computeS: number; perWorker: Map<string, number> }> {
  const redis = await startRedis();
  const procs = Array.from({ length: workers }, (_, i) => startWorker(redis.url, `w${i + 1}`));
  try {
    const q = new Queue(DEFAULT_QUEUE_NAME, { connection: connectionOf(redis.url) });
    while ((await q.getWorkersCount()) < workers) await new Promise((r) => setTimeout(r, 100));
    await q.close();
    let computeMs = 0;
    const perWorker = new Map<string, number>();
    const t0 = performance.now();
    const res = await queueSweep(loadSweepConfig(cfg), join(dir, `q-${workers}-${Date.now()}`), {
      url: redis.url,
      pollMs: 50,
      onChunk: (e) => {
        computeMs += e.computeMs;
        perWorker.set(e.worker, (perWorker.get(e.worker) ?? 0) + 1);
      },
    });
    const wallS = (performance.now() - t0) / 1000;
    if (!res.complete || res.failed.length)
      throw new Error(`queued run incomplete: ${JSON.stringify(res.failed)}`);
    return { wallS, chunks: res.chunks, computeS: computeMs / 1000, perWorker };
  } finally {
    for (const p of procs) p.kill("SIGKILL");
    await redis.stop();
  }
}

console.log(
  `distrib bench: demo model, ${cpus().length} cores, load average ${loadavg()
    .map((x) => x.toFixed(1))
    .join(" ")} at start`,
);
const t0 = performance.now();
const s = await sweepToDir(loadSweepConfig(main), join(dir, "single"), { threads: 1 });
const singleS = (performance.now() - t0) / 1000;
console.log(`single process (1 thread): ${s.stats.computed} cells in ${singleS.toFixed(2)} s`);
const one = await queued(main, 1);
const two = await queued(main, 2);
const fmt = (r: typeof one) =>
  `${r.wallS.toFixed(2)} s wall, ${r.chunks} chunks, ${r.computeS.toFixed(2)} s compute in workers (${[...r.perWorker].map(([w, c]) => `${w}: ${c}`).join(", ")})`;
console.log(`queue, 1 worker:  ${fmt(one)}`);
console.log(`queue, 2 workers: ${fmt(two)}`);
console.log(`speedup of 2 workers over 1: ${(one.wallS / two.wallS).toFixed(2)}x (bound: 2 cores)`);
console.log(
  `queue overhead per chunk (1 worker, incl. its one-time model load): ${(((one.wallS - one.computeS) / one.chunks) * 1000).toFixed(0)} ms on chunks of ${((one.computeS / one.chunks) * 1000).toFixed(0)} ms compute`,
);
const t = await queued(tiny, 1);
console.log(
  `tiny chunks (1 prompt x 1 r_e), 1 worker: ${t.chunks} chunks in ${t.wallS.toFixed(2)} s, compute ${((t.computeS / t.chunks) * 1000).toFixed(1)} ms/chunk, overhead ${(((t.wallS - t.computeS) / t.chunks) * 1000).toFixed(1)} ms/chunk`,
);
console.log(
  `load average at end: ${loadavg()
    .map((x) => x.toFixed(1))
    .join(" ")}`,
);
rmSync(dir, { recursive: true, force: true });
