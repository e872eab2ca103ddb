/**
 * Queue mode end to end on a real Redis (Debian's redis-server, started here on a free port) with BullMQ:
 * three `steerlab worker` processes run the demo sweep that `queueSweep` enqueued; one is killed with SIGKILL
 * in the middle of a chunk. The collected store must equal the single-process store exactly, with every record
 * once; enqueueing the same sweep again adds no work; a worker with another model file is refused and leaves
 * the queue untouched; a chunk that fails on every try is reported with its error after its attempts.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { type Job, Worker } from "bullmq";
import { queueSweep } from "../../src/distrib/coordinator.js";
import {
  type ChunkJobData,
  type ChunkJobResult,
  connectionOf,
  DEFAULT_QUEUE_NAME,
  openQueue,
} from "../../src/distrib/queue.js";
import { queueStatus } from "../../src/distrib/status.js";
import { RESULTS_FILE, ResultStore, type SweepRecord } from "../../src/eval/store.js";
import { loadSweepConfig, type SweepConfig } from "../../src/eval/sweep-config.js";
import { sweepToDir } from "../../src/eval/sweep-plan.js";
import { CLI, steerlab } from "../helpers/cli.js";
import { DEMO, writeDemoSweep } from "../helpers/demo-sweep.js";
import { REDIS_MISSING, startRedis, type TestRedis } from "../helpers/redis.js";

/** Generous: the machine running the tests may be heavily loaded, and a renewal must never be late. */
const LOCK_MS = 8000;

interface WorkerProc {
  name: string;
  proc: ChildProcess;
  stdout: string;
  stderr: string;
  exited: Promise<number | null>;
}

let dir: string;
let redis: TestRedis;
let config: SweepConfig;
let single: SweepRecord[];
const workers: WorkerProc[] = [];

function startWorker(name: string, ...extra: string[]): WorkerProc {
  const proc = spawn(
    process.execPath,
    [
      ...CLI,
      "worker",
      "--queue",
      redis.url,
      "--name",
      name,
      "--threads",
      "1",
      "--lock-duration",
      String(LOCK_MS),
      "--json",
      ...extra,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const w: WorkerProc = {
    name,
    proc,
    stdout: "",
    stderr: "",
    exited: new Promise((r) => proc.once("exit", (code) => r(code))),
  };
  proc.stdout!.on("data", (b: Buffer) => (w.stdout += b.toString()));
  proc.stderr!.on("data", (b: Buffer) => (w.stderr += b.toString()));
  workers.push(w);
  return w;
}

/** Chunks a worker finished (its "done" events). */
function doneChunks(w: WorkerProc): string[] {
  return w.stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as { type: string; chunk: string })
    .filter((e) => e.type === "done")
    .map((e) => e.chunk);
}

function canon(recs: readonly SweepRecord[]): string[] {
  return recs.map((r) => JSON.stringify(r)).sort();
}

async function withQueue<T>(fn: (q: ReturnType<typeof openQueue>) => Promise<T>): Promise<T> {
  const q = openQueue({ url: redis.url });
  try {
    return await fn(q);
  } finally {
    await q.close();
  }
}

describe("queued sweep on Redis with three worker processes", { skip: REDIS_MISSING ?? false }, () => {
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "steerlab-queue-"));
    redis = await startRedis();
    config = loadSweepConfig(writeDemoSweep(join(dir, "exp")));
    writeDemoSweep(join(dir, "other"), { model: "chat" });
    await sweepToDir(config, join(dir, "single"), { threads: 1 });
    single = ResultStore.readRecords(join(dir, "single"));
  });

  after(async () => {
    for (const w of workers)
      if (w.proc.exitCode === null && w.proc.signalCode === null) w.proc.kill("SIGKILL");
    await Promise.all(workers.map((w) => w.exited));
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("enqueueing the same sweep twice adds no work", async () => {
    const first = await queueSweep(config, join(dir, "q"), { url: redis.url, noWait: true });
    assert.equal(first.chunks, 9);
    assert.deepEqual([first.enqueued, first.alreadyQueued], [9, 0]);
    const again = await queueSweep(config, join(dir, "q"), { url: redis.url, noWait: true });
    assert.equal(again.run, first.run);
    assert.deepEqual([again.enqueued, again.alreadyQueued], [0, 9]);
    const s = await queueStatus({ url: redis.url });
    assert.deepEqual(
      s.runs.map((r) => [r.run, r.waiting, r.active, r.completed]),
      [[first.run, 9, 0, 0]],
    );
  });

  test("a worker holding another model file refuses the sweep and leaves its jobs untouched", async () => {
    const bad = startWorker("bad", "--base", join(dir, "other"));
    assert.equal(await bad.exited, 1);
    assert.match(bad.stderr, /error \[mismatch\]: worker bad does not hold the files of sweep [0-9a-f]{16}/);
    assert.match(bad.stderr, /model weights: fingerprint [0-9a-f]{12}… here, the plan's is [0-9a-f]{12}…/);
    assert.deepEqual(doneChunks(bad), []);
    await withQueue(async (q) => {
      const waiting = (await q.getJobs(["waiting"])) as Job<ChunkJobData, ChunkJobResult>[];
      assert.equal(waiting.length, 9);
      assert.ok(waiting.every((j) => j.attemptsMade === 0));
      const refused = waiting.filter((j) => j.attemptsStarted > 0);
      assert.equal(refused.length, 1); // the one job it took, handed back
      const logs = await q.getJobLogs(refused[0]!.id!);
      assert.match(logs.logs[0]!, /^refused by bad: /);
    });
    // A machine without the files at all says where it looked.
    const lost = startWorker("lost", "--base", join(dir, "nowhere"));
    assert.equal(await lost.exited, 1);
    assert.match(
      lost.stderr,
      /worker lost cannot plan sweep [0-9a-f]{16}: model path does not exist: .*nowhere/,
    );
    assert.match(lost.stderr, /hint: the config's relative paths resolve against .*nowhere; pass --base/);
    await withQueue(async (q) => assert.equal((await q.getJobs(["waiting"])).length, 9));
  });

  test("a coordinator whose last worker refuses ends with the worker and the mismatch; while another is connected it waits and says so", async () => {
    // A connected worker that takes no jobs (not running) stands for a healthy one busy elsewhere.
    const idle = new Worker(DEFAULT_QUEUE_NAME, async () => ({ records: [], worker: "idle", computeMs: 0 }), {
      connection: connectionOf(redis.url),
      name: "idle",
      autorun: false,
    });
    await idle.waitUntilReady();
    const seen: { worker: string; others: number; message: string }[] = [];
    const t0 = Date.now();
    const collecting = queueSweep(config, join(dir, "q"), {
      url: redis.url,
      pollMs: 100,
      onRefusal: (r, others) => seen.push({ worker: r.worker, others, message: r.message }),
    });
    const outcome = collecting.then(
      () => null,
      (e: Error & { code?: string }) => e,
    );
    const bad = startWorker("bad2", "--base", join(dir, "other"));
    assert.equal(await bad.exited, 1);
    const t1 = Date.now();
    while (seen.length === 0 && Date.now() - t1 < 20_000) await new Promise((r) => setTimeout(r, 50));
    assert.equal(seen.length, 1, "the coordinator learnt of the refusal");
    assert.equal(seen[0]!.worker, "bad2");
    assert.equal(seen[0]!.others, 1);
    assert.match(seen[0]!.message, /worker bad2 does not hold the files of sweep [0-9a-f]{16}/);
    await idle.close();
    const e = await outcome;
    assert.ok(e, "the coordinator ended");
    assert.equal(e.code, "mismatch");
    assert.match(
      e.message,
      /^no worker can run sweep [0-9a-f]{16}: worker bad2 refused it and no other worker is connected; problems:\n {2}- bad2: worker bad2 does not hold the files of sweep [0-9a-f]{16}.*model weights: fingerprint [0-9a-f]{12}… here, the plan's is [0-9a-f]{12}…/s,
    );
    assert.match(
      e.message,
      /hint: give a worker the plan's files .* rerun the same command: the chunks stay queued/,
    );
    assert.ok(Date.now() - t0 < 60_000);
    assert.equal(existsSync(join(dir, "q", "lock")), false, "the run folder's lock is released");
    await withQueue(async (q) => assert.equal((await q.getJobs(["waiting"])).length, 9));
    // `steerlab status` shows who refused and why, until the coordinator tries the run again.
    assert.match(
      await steerlab(dir, "status", "--queue", redis.url),
      /\n {2}refused by bad2: worker bad2 does not hold the files of sweep [0-9a-f]{16}/,
    );
  });

  test("three workers, one killed -9 mid-chunk: the store equals the single-process store exactly", async () => {
    // w3 runs two chunks at once, each on its own engine.
    const ws = [startWorker("w1"), startWorker("w2"), startWorker("w3", "--concurrency", "2")];
    const collecting = queueSweep(config, join(dir, "q"), { url: redis.url, pollMs: 200 });
    // Kill the first worker seen computing a chunk (progress reported, not finished).
    let victim: WorkerProc | null = null;
    let victimJob = "";
    await withQueue(async (q) => {
      const t0 = Date.now();
      while (!victim && Date.now() - t0 < 120_000) {
        for (const j of (await q.getJobs(["active"])) as Job<ChunkJobData, ChunkJobResult>[]) {
          const p = j.progress as { done?: number; total?: number };
          const w = ws.find((x) => x.name === j.processedBy);
          if (w && p && typeof p.total === "number" && p.total > 0 && (p.done ?? 0) < p.total) {
            w.proc.kill("SIGKILL");
            victim = w;
            victimJob = j.id!;
            break;
          }
        }
        await new Promise((r) => setTimeout(r, 30));
      }
    });
    assert.ok(victim, "no worker was caught in the middle of a chunk");
    const v = victim as WorkerProc;
    assert.equal(await v.exited, null); // died of the signal
    const res = await collecting;
    assert.deepEqual(res.failed, []);
    assert.ok(res.complete);
    assert.equal(res.ingested, single.length);
    // Exactly the single-process records, each once in the file.
    const got = ResultStore.readRecords(join(dir, "q"));
    assert.deepEqual(canon(got), canon(single));
    const lines = readFileSync(join(dir, "q", RESULTS_FILE), "utf8")
      .trim()
      .split("\n");
    assert.equal(lines.length, single.length);
    // The killed chunk was redone by a live worker after its lock expired (a stall, not an error).
    await withQueue(async (q) => {
      const j = (await q.getJob(victimJob)) as Job<ChunkJobData, ChunkJobResult>;
      assert.equal(await j.getState(), "completed");
      assert.notEqual(j.returnvalue.worker, v.name);
      assert.ok(j.attemptsStarted >= 2, `attempts started ${j.attemptsStarted}`);
      assert.ok(j.stalledCounter >= 1, `stalled ${j.stalledCounter}`);
      assert.equal(j.attemptsMade, 1); // the finished attempt: the stall used none of the bounded retries
    });
    assert.ok(!doneChunks(v).includes(victimJob.slice(victimJob.indexOf("/") + 1)));
    // Every chunk was finished by exactly one worker.
    const done = ws.flatMap(doneChunks).sort();
    assert.equal(done.length, 9);
    assert.equal(new Set(done).size, 9);
    // The report ran on the collected store.
    const s = await queueStatus({ url: redis.url });
    const run = s.runs.find((r) => r.run === res.run)!;
    assert.deepEqual([run.completed, run.waiting, run.active, run.failed], [9, 0, 0, 0]);
    assert.equal(
      s.workers.reduce((n, w) => n + w.completed, 0),
      9,
    );
    assert.equal(s.workers.find((w) => w.worker === v.name)?.connected ?? false, false);
    for (const w of ws.filter((x) => x !== v))
      assert.ok(s.workers.find((x) => x.worker === w.name)?.connected);
    assert.match(
      await steerlab(dir, "status", "--queue", redis.url),
      new RegExp(`run ${res.run}: 9 done, 0 running`),
    );
  });

  test("enqueueing the finished sweep again adds no work; a fresh folder collects the finished chunks", async () => {
    const before = workers.flatMap(doneChunks).length;
    const same = await queueSweep(config, join(dir, "q"), { url: redis.url });
    assert.deepEqual([same.enqueued, same.alreadyQueued, same.ingested, same.complete], [0, 0, 0, true]);
    const fresh = await queueSweep(config, join(dir, "q2"), { url: redis.url });
    assert.deepEqual([fresh.enqueued, fresh.alreadyQueued, fresh.complete], [0, 9, true]);
    assert.deepEqual(canon(ResultStore.readRecords(join(dir, "q2"))), canon(single));
    assert.equal(workers.flatMap(doneChunks).length, before);
  });

  test("a chunk that fails on every try is reported with its error after its attempts; CLI writes the report", async () => {
    // A judge model without a tokenizer: its weights load (and match the plan's fingerprint) but judging fails.
    const judge = join(dir, "exp", "judge-no-tokenizer");
    mkdirSync(judge);
    for (const f of ["config.json", "model.safetensors"])
      copyFileSync(join(DEMO, "models", "base", f), join(judge, f));
    const cfgPath = join(dir, "exp", "judge.yaml");
    writeFileSync(
      cfgPath,
      readFileSync(join(dir, "exp", "exp.yaml"), "utf8")
        .replace(/tasks:[\s\S]*$/, "tasks:\n")
        .concat(
          "  - { id: judged, kind: behavior-generate, data: tasks/harmful.jsonl, template: harmful-plain, maxNewTokens: 4, limit: 3, judge: { model: judge-no-tokenizer } }\n",
        ),
    );
    const res = await queueSweep(loadSweepConfig(cfgPath), join(dir, "judged"), {
      url: redis.url,
      attempts: 2,
    });
    assert.equal(res.chunks, 1);
    assert.equal(res.failed.length, 1);
    assert.equal(res.failed[0]!.chunk, "judged/rnd@1..3/0-2");
    assert.equal(res.failed[0]!.attempts, 2);
    assert.match(res.failed[0]!.error, /this model has no tokenizer.*judge-no-tokenizer/);
    assert.equal(res.complete, false);
    // Rerunning the coordinator retries the failed chunk with fresh attempts (here it fails again the same way).
    const rerun = await queueSweep(loadSweepConfig(cfgPath), join(dir, "judged"), {
      url: redis.url,
      attempts: 2,
    });
    assert.deepEqual([rerun.enqueued, rerun.alreadyQueued, rerun.retried], [0, 1, 1]);
    assert.equal(rerun.failed[0]!.attempts, 2);
    // The CLI on the finished demo sweep: collects nothing new and writes the report.
    const out = await steerlab(
      dir,
      "sweep",
      "-c",
      join(dir, "exp", "exp.yaml"),
      "--queue",
      redis.url,
      "-o",
      join(dir, "q"),
    );
    assert.match(out, /0 enqueued now/);
    assert.match(out, /every chunk landed; report in .*q\/report/);
    assert.ok(readFileSync(join(dir, "q", "report", "report.html"), "utf8").includes("<svg"));
    // Collected: the run's jobs and their records can go.
    const run = (await queueStatus({ url: redis.url })).runs.find((r) => r.completed === 9)!.run;
    assert.match(
      await steerlab(dir, "status", "--queue", redis.url, "--remove", run),
      /removed 9 job\(s\) of run/,
    );
    assert.equal((await queueStatus({ url: redis.url })).runs.filter((r) => r.run === run).length, 0);
  });
});
