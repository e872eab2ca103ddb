/**
 * A sweep worker: takes chunk jobs from the queue, runs each with the ordinary sweep runner into memory, and
 * returns its records as the job's result. One process can serve any sweep whose files it holds; it keeps the
 * last model open between jobs (one engine per concurrency slot) and plans each run once.
 *
 * Failure handling is BullMQ's: a worker holds a lock on its job and renews it every lockDuration / 2 while it
 * computes; a killed worker's lock expires and a live worker's stalled check (every stalledInterval) puts the job
 * back in the queue, where another worker redoes the whole chunk (its records only ever travel as one result,
 * so nothing is half-stored). An error fails the attempt; after `attempts` the job stays failed with its error.
 * A worker that lacks the plan's files (another model, vector, data, tokenizer or judge) puts the job back untouched,
 * without using an attempt, records why in Redis (queue.ts recordRefusal: the coordinator reads it) and stops.
 */
import { hostname } from "node:os";
import { type Job, WaitingError, Worker } from "bullmq";
import { SteerlabError } from "../errors.js";
import { recordKey, type SweepRecord } from "../eval/store.js";
import { type RecordSink, runSweep, type SweepPlan } from "../eval/sweep.js";
import { planChunks } from "../eval/sweep-chunks.js";
import { resolvePath, runIdentity, type SweepConfig } from "../eval/sweep-config.js";
import { planSweep } from "../eval/sweep-plan.js";
import { type OpenedModel, openModel } from "../model/open.js";
import { judgeFingerprints, planProblems, promptsDigest } from "./fingerprints.js";
import {
  type ChunkJobData,
  type ChunkJobResult,
  checkRedis,
  connectionOf,
  DEFAULT_QUEUE_NAME,
  Refusals,
} from "./queue.js";

export interface SweepWorkerOptions {
  url: string;
  queueName?: string;
  /** Shown by `steerlab status` and stored on every job it runs. Default "<host>#<pid>". */
  name?: string;
  /** Chunks run at once, each on its own engine (default 1). */
  concurrency?: number;
  /** Folder the config's relative paths resolve against (default: the coordinator's config folder). */
  base?: string;
  threads?: number;
  /**
   * How long a job's lock lasts without renewal (default 60 s). It must exceed the longest stretch the event loop
   * is blocked (one forward of the reference engine; ONNX Runtime forwards are asynchronous), and it bounds
   * how soon a dead worker's chunk is redone.
   */
  lockDurationMs?: number;
  /** How often this worker looks for stalled jobs (default lockDuration / 2). */
  stalledIntervalMs?: number;
  onEvent?: (e: WorkerEvent) => void;
}

export type WorkerEvent =
  | { type: "start"; run: string; chunk: string }
  | { type: "done"; run: string; chunk: string; records: number; computeMs: number }
  | { type: "failed"; run: string; chunk: string; error: string };

export interface SweepWorker {
  readonly name: string;
  /** Resolves when close() finished; rejects with the refusal when this worker could not run a plan. */
  readonly closed: Promise<void>;
  close(): Promise<void>;
}

/** Records of one chunk, in memory until the job returns them. */
class ChunkRecords implements RecordSink {
  readonly records: SweepRecord[] = [];
  private readonly keys = new Set<string>();
  has(task: string, variant: string, item: number, r: number): boolean {
    return this.keys.has(recordKey(task, variant, item, r));
  }
  append(recs: readonly SweepRecord[]): void {
    for (const r of recs) {
      this.keys.add(recordKey(r.task, r.variant, r.item, r.r));
      this.records.push(r);
    }
  }
}

/** Open engines by model path; a job takes one and gives it back. Models of another path are closed when idle. */
class EnginePool {
  private readonly idle = new Map<string, OpenedModel[]>();
  constructor(private readonly threads: number | undefined) {}

  async take(path: string, backend: SweepConfig["backend"]): Promise<OpenedModel> {
    const key = `${backend ?? "onnxruntime"}\u0000${path}`;
    const have = this.idle.get(key)?.pop();
    if (have) return have;
    for (const [k, ms] of this.idle) {
      if (k === key) continue;
      for (const m of ms) await m.engine.dispose();
      this.idle.delete(k);
    }
    return openModel(path, {
      backend: backend ?? "onnxruntime",
      ...(this.threads ? { threads: this.threads } : {}),
    });
  }

  give(path: string, backend: SweepConfig["backend"], m: OpenedModel): void {
    const key = `${backend ?? "onnxruntime"}\u0000${path}`;
    this.idle.set(key, [...(this.idle.get(key) ?? []), m]);
  }

  async close(): Promise<void> {
    for (const ms of this.idle.values()) for (const m of ms) await m.engine.dispose();
    this.idle.clear();
  }
}

export async function startSweepWorker(o: SweepWorkerOptions): Promise<SweepWorker> {
  await checkRedis(o.url);
  const name = o.name ?? `${hostname()}#${process.pid}`;
  const queueName = o.queueName ?? DEFAULT_QUEUE_NAME;
  const refusals = new Refusals(o.url, queueName);
  const lockDuration = o.lockDurationMs ?? 60_000;
  const pool = new EnginePool(o.threads);
  const plans = new Map<string, Promise<SweepPlan>>();
  let refusal: Error | null = null;
  let worker: Worker<ChunkJobData, ChunkJobResult> | null = null;

  const localConfig = (d: ChunkJobData): SweepConfig => ({
    ...d.config,
    baseDir: o.base ?? d.config.baseDir,
  });

  /** Plan the run here and check this machine's files against the plan's fingerprints (once per run). */
  const prepare = (d: ChunkJobData): Promise<SweepPlan> => {
    let p = plans.get(d.run);
    if (!p) {
      p = (async () => {
        const config = localConfig(d);
        const path = resolvePath(config.model, config.baseDir ?? process.cwd());
        const m = await pool.take(path, config.backend);
        try {
          const plan = await planSweep(config, m.engine, m.tokenizer, m.model.fingerprint);
          const problems = planProblems(d, {
            identity: runIdentity(config, m.model.fingerprint),
            prompts: promptsDigest(plan, m.tokenizer),
            judges: await judgeFingerprints(plan),
          });
          if (problems.length)
            throw new SteerlabError("mismatch", `worker ${name} does not hold the files of sweep ${d.run}`, {
              file: path,
              problems,
              hint: "give this machine the same model, vector and data files as the coordinator (or --base their folder)",
            });
          // A refusal of an earlier start of this worker (same name) no longer holds.
          await refusals.clear(d.run, name).catch(() => {});
          return plan;
        } finally {
          pool.give(path, config.backend, m);
        }
      })();
      plans.set(d.run, p);
    }
    return p;
  };

  const processor = async (
    job: Job<ChunkJobData, ChunkJobResult>,
    token?: string,
  ): Promise<ChunkJobResult> => {
    const d = job.data;
    let plan: SweepPlan;
    try {
      plan = await prepare(d);
    } catch (e) {
      // This machine cannot run the sweep: hand the job back untouched (no attempt used) and stop.
      refusal ??=
        e instanceof SteerlabError && e.code !== "mismatch"
          ? new SteerlabError(e.code, `worker ${name} cannot plan sweep ${d.run}: ${e.brief}`, {
              ...e.details,
              hint: `the config's relative paths resolve against ${localConfig(d).baseDir}; pass --base <this machine's copy of the config folder>`,
            })
          : (e as Error);
      await job.log(`refused by ${name}: ${refusal.message}`);
      // Tell the coordinator why this worker leaves (it ends, or says it waits for the others).
      await refusals
        .record(d.run, {
          worker: name,
          code: refusal instanceof SteerlabError ? refusal.code : "bad_input",
          message: refusal.message,
          at: Date.now(),
        })
        .catch(() => {});
      await job.moveToWait(token);
      setImmediate(() => void worker?.close());
      throw new WaitingError();
    }
    if (!planChunks(plan, d.batchSize).some((c) => c.key === d.chunk))
      throw new SteerlabError("bad_input", `chunk ${d.chunk} is not in the plan of sweep ${d.run}`);
    o.onEvent?.({ type: "start", run: d.run, chunk: d.chunk });
    const config = localConfig(d);
    const path = resolvePath(config.model, config.baseDir ?? process.cwd());
    const m = await pool.take(path, config.backend);
    const sink = new ChunkRecords();
    let last = 0;
    const t0 = performance.now();
    try {
      await runSweep(m.engine, m.tokenizer, plan, sink, {
        batchSize: d.batchSize,
        chunks: new Set([d.chunk]),
        onProgress: (done, total) => {
          if (Date.now() - last < 500 && done < total) return;
          last = Date.now();
          job.updateProgress({ done, total }).catch(() => {});
        },
      });
    } catch (e) {
      o.onEvent?.({ type: "failed", run: d.run, chunk: d.chunk, error: (e as Error).message });
      throw e;
    } finally {
      pool.give(path, config.backend, m);
    }
    const computeMs = performance.now() - t0;
    o.onEvent?.({ type: "done", run: d.run, chunk: d.chunk, records: sink.records.length, computeMs });
    return { records: sink.records, worker: name, computeMs };
  };

  worker = new Worker<ChunkJobData, ChunkJobResult>(queueName, processor, {
    connection: connectionOf(o.url),
    name,
    concurrency: o.concurrency ?? 1,
    lockDuration,
    stalledInterval: o.stalledIntervalMs ?? Math.max(1000, Math.floor(lockDuration / 2)),
    maxStalledCount: 3,
  });
  worker.on("error", () => {}); // connection hiccups: BullMQ reconnects
  const w = worker;
  let closing: Promise<void> | null = null;
  const closed = new Promise<void>((resolve, reject) => {
    w.on("closed", () => {
      refusals.close();
      void pool.close().then(() => (refusal ? reject(refusal) : resolve()), reject);
    });
  });
  closed.catch(() => {}); // the caller awaits it; never an unhandled rejection
  return {
    name,
    closed,
    close() {
      closing ??= w.close();
      return closing;
    },
  };
}
