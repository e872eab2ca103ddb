/**
 * The coordinator of a queued sweep: plan the run, enqueue every chunk the run folder still lacks, then collect
 * the records that workers return and append them to the one result store, until every chunk has landed or
 * failed for good. It is resumable like a local sweep: rerunning it re-enqueues nothing that is queued or done
 * (job id = run + chunk key), collects results that finished while it was away, and retries chunks that had
 * failed.
 *
 * Results travel in the job's return value rather than through files written by workers: the queue is the only
 * thing the machines share, so no shared file system is needed, and the coordinator remains the only writer of
 * the run folder (dedup by record key, one lock, one report).
 */

import type { Job, Queue } from "bullmq";
import { SteerlabError } from "../errors.js";
import { gridOf, writeRunGrid } from "../eval/run-grid.js";
import { configHash, keyOf, ResultStore, type StoreRecovery, type SweepRecord } from "../eval/store.js";
import { planChunks, type SweepChunk } from "../eval/sweep-chunks.js";
import { portableIdentity, resolvePath, runIdentity, type SweepConfig } from "../eval/sweep-config.js";
import { planSweep } from "../eval/sweep-plan.js";
import { loadModel } from "../model/load.js";
import { judgeFingerprints, promptsDigest } from "./fingerprints.js";
import {
  type ChunkJobData,
  type ChunkJobResult,
  checkRedis,
  chunkJobId,
  connectedWorkers,
  DEFAULT_ATTEMPTS,
  DEFAULT_QUEUE_NAME,
  openQueue,
  type Refusal,
  Refusals,
} from "./queue.js";

export interface QueuedSweepOptions {
  url: string;
  queueName?: string;
  /** Attempts per chunk before it is reported failed (default 3); exponential backoff from 1 s. */
  attempts?: number;
  batchSize?: number;
  /** Enqueue and return without collecting (a later run of the same command collects). */
  noWait?: boolean;
  /** How often the queue is polled for finished chunks (default 500 ms). */
  pollMs?: number;
  signal?: AbortSignal;
  /** Cells stored out of the grid's total, and the workers connected to the queue. */
  onProgress?: (p: { done: number; total: number; workers: number; pending: number }) => void;
  onChunk?: (e: { chunk: string; worker: string; records: number; computeMs: number }) => void;
  /**
   * A worker refused the run (its files differ from the plan's) while `others` workers that did not refuse are
   * still connected, so collecting goes on. When none is left, queueSweep rejects with the refusals instead.
   */
  onRefusal?: (r: Refusal, others: number) => void;
  /** What opening the run folder found and repaired (a stale lock taken over), as soon as it is opened. */
  onRecovery?: (recovery: StoreRecovery, dir: string) => void;
}

export interface FailedChunk {
  chunk: string;
  error: string;
  attempts: number;
}

export interface QueuedSweepResult {
  dir: string;
  run: string;
  chunks: number;
  /** Chunks this call added to the queue; chunks it found already queued or finished there; failed ones retried. */
  enqueued: number;
  alreadyQueued: number;
  retried: number;
  /** Records appended to the store by this call. */
  ingested: number;
  failed: FailedChunk[];
  /** Every chunk of the plan is in the store. */
  complete: boolean;
}

export async function queueSweep(
  config: SweepConfig,
  dir: string,
  o: QueuedSweepOptions,
): Promise<QueuedSweepResult> {
  await checkRedis(o.url);
  const base = config.baseDir ?? process.cwd();
  // The weights are read once for the fingerprint; nothing runs here, so no engine is built.
  const model = await loadModel(resolvePath(config.model, base));
  const plan = await planSweep(config, model, model.tokenizer, model.fingerprint);
  const prompts = promptsDigest(plan, model.tokenizer);
  const judges = await judgeFingerprints(plan);
  const identity = runIdentity(config, model.fingerprint);
  const run = configHash(portableIdentity(identity)).slice(0, 16);
  const batchSize = o.batchSize ?? config.batchSize ?? 8;
  const chunks = planChunks(plan, batchSize);
  const total = chunks.reduce((s, c) => s + c.items.length, 0) * plan.coeffs.length;
  // Planned above, before the folder is created or locked: a refused config leaves nothing behind.
  const store = ResultStore.open(dir, identity);
  try {
    o.onRecovery?.(store.recovery, dir);
    writeRunGrid(dir, gridOf(plan, batchSize)); // the report's missing-cells check
  } catch (e) {
    store.close();
    throw e;
  }
  const queueName = o.queueName ?? DEFAULT_QUEUE_NAME;
  const queue = openQueue({ url: o.url, name: queueName });
  const refusals = new Refusals(o.url, queueName);
  try {
    const missing = chunks.filter((c) => !chunkDone(store, c, plan.coeffs));
    const res: QueuedSweepResult = {
      dir,
      run,
      chunks: chunks.length,
      enqueued: 0,
      alreadyQueued: 0,
      retried: 0,
      ingested: 0,
      failed: [],
      complete: missing.length === 0,
    };
    const states = await Promise.all(missing.map((c) => queue.getJobState(chunkJobId(run, c.key))));
    const fresh = missing.filter((_, i) => states[i] === "unknown");
    res.alreadyQueued = missing.length - fresh.length;
    for (const [i, c] of missing.entries()) {
      if (states[i] !== "failed") continue;
      await (await queue.getJob(chunkJobId(run, c.key)))?.retry("failed", {
        resetAttemptsMade: true,
        resetAttemptsStarted: true,
      });
      res.retried++;
    }
    await queue.addBulk(
      fresh.map((c) => ({
        name: c.key,
        data: { run, chunk: c.key, config, identity, prompts, judges, batchSize } satisfies ChunkJobData,
        opts: {
          jobId: chunkJobId(run, c.key),
          attempts: o.attempts ?? DEFAULT_ATTEMPTS,
          backoff: { type: "exponential", delay: 1000 },
        },
      })),
    );
    res.enqueued = fresh.length;
    // This run starts afresh: refusals of earlier tries (a worker since fixed, or gone) no longer count.
    await refusals.clear(run).catch(() => {}); // Redis trouble shows up in the queue calls
    if (o.noWait || missing.length === 0) return res;
    await collect(queue, refusals, store, run, missing, plan.coeffs, total, o, res);
    res.complete = chunks.every((c) => chunkDone(store, c, plan.coeffs));
    return res;
  } finally {
    store.close(); // first: the run folder's lock is released even when Redis is gone
    refusals.close();
    await closeWithin(queue, 5000);
  }
}

/** Close a queue, or drop its connection when Redis does not answer in time (close() would wait forever). */
async function closeWithin(queue: Queue, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<"late">((r) => {
    timer = setTimeout(() => r("late"), ms);
  });
  const closed = queue.close().then(
    () => "closed" as const,
    () => "late" as const,
  );
  if ((await Promise.race([closed, late])) === "late") void queue.disconnect().catch(() => {}); // its promise may never settle
  clearTimeout(timer);
}

function chunkDone(store: ResultStore, c: SweepChunk, coeffs: readonly number[]): boolean {
  return c.items.every((i) => coeffs.every((r) => store.has(c.task, c.variant, i, r)));
}

/** Poll the queue until every chunk in `pending` has landed (its records stored) or failed for good. */
async function collect(
  queue: Queue<ChunkJobData, ChunkJobResult>,
  refusals: Refusals,
  store: ResultStore,
  run: string,
  chunks: readonly SweepChunk[],
  coeffs: readonly number[],
  total: number,
  o: QueuedSweepOptions,
  res: QueuedSweepResult,
): Promise<void> {
  const pending = new Map(chunks.map((c) => [chunkJobId(run, c.key), c]));
  let connected: string[] = [];
  let lastWorkers = 0;
  const refused = new Map<string, Refusal>();
  const report = () =>
    o.onProgress?.({ done: store.size, total, workers: connected.length, pending: pending.size });
  while (pending.size > 0) {
    o.signal?.throwIfAborted();
    // A Redis that fails here fails the queue calls below too, which end with the clear "lost Redis" error.
    const now = await refusals.read(run).catch(() => null);
    const news = now?.filter((r) => refused.get(r.worker)?.at !== r.at) ?? [];
    for (const r of now ?? []) refused.set(r.worker, r);
    if (now) for (const w of refused.keys()) if (!now.some((r) => r.worker === w)) refused.delete(w); // since fixed
    if (news.length || Date.now() - lastWorkers > 2000) {
      connected = (await answered(connectedWorkers(queue), o.url)).map((w) => w.name);
      lastWorkers = Date.now();
    }
    if (refused.size > 0) {
      const others = connected.filter((w) => !refused.has(w)).length;
      if (others === 0) throw refusedError(run, [...refused.values()]);
      for (const r of news) o.onRefusal?.(r, others);
    }
    const [completed, failed] = await answered(
      Promise.all([queue.getRanges(["completed"], 0, -1), queue.getRanges(["failed"], 0, -1)]),
      o.url,
    );
    for (const id of completed) {
      const c = pending.get(id);
      if (!c) continue;
      const job = (await queue.getJob(id)) as Job<ChunkJobData, ChunkJobResult> | undefined;
      const out = job?.returnvalue;
      if (!out) continue; // removed meanwhile: it stays pending and shows up as lost below
      pending.delete(id);
      const misfit = misfitRecords(c, coeffs, out.records);
      if (misfit) {
        // Never stored; the chunk is reported and the others go on.
        res.failed.push({ chunk: c.key, error: misfit, attempts: job?.attemptsMade ?? 0 });
        continue;
      }
      const fresh = out.records.filter((r) => !store.has(r.task, r.variant, r.item, r.r));
      store.append(fresh);
      res.ingested += fresh.length;
      o.onChunk?.({
        chunk: c.key,
        worker: out.worker,
        records: out.records.length,
        computeMs: out.computeMs,
      });
      report();
    }
    for (const id of failed) {
      const c = pending.get(id);
      if (!c) continue;
      const job = await queue.getJob(id);
      res.failed.push({
        chunk: c.key,
        error: job?.failedReason ?? "unknown",
        attempts: job?.attemptsMade ?? 0,
      });
      pending.delete(id);
    }
    if (pending.size > 0) {
      // A pending job that the queue no longer knows (removed by hand, or a flushed Redis) would never land.
      const lost = [...pending.keys()].slice(0, 64);
      const states = await answered(Promise.all(lost.map((id) => queue.getJobState(id))), o.url);
      states.forEach((s, i) => {
        if (s !== "unknown") return;
        const c = pending.get(lost[i]!)!;
        res.failed.push({ chunk: c.key, error: "the job disappeared from the queue", attempts: 0 });
        pending.delete(lost[i]!);
      });
      report();
      await new Promise((r) => setTimeout(r, o.pollMs ?? 500));
    }
  }
}

/** The end of a run that no connected worker will compute: every refusal, with the worker and its reason. */
function refusedError(run: string, refusals: readonly Refusal[]): SteerlabError {
  const codes = new Set(refusals.map((r) => r.code));
  return new SteerlabError(
    codes.size === 1 && codes.has("not_found") ? "not_found" : "mismatch",
    `no worker can run sweep ${run}: ${refusals.length === 1 ? `worker ${refusals[0]!.worker} refused it` : `all ${refusals.length} workers refused it`} and no other worker is connected`,
    {
      problems: refusals.map((r) => `${r.worker}: ${r.message}`),
      hint: "give a worker the plan's files (or --base their folder) and rerun the same command: the chunks stay queued, and everything collected is stored",
    },
  );
}

/** Why a worker's records do not fit its chunk (one record per item and r_e of the chunk), or null. */
function misfitRecords(
  c: SweepChunk,
  coeffs: readonly number[],
  recs: readonly SweepRecord[],
): string | null {
  const items = new Set(c.items);
  const grid = new Set(coeffs);
  const bad = recs.find(
    (r) => r.task !== c.task || r.variant !== c.variant || !items.has(r.item) || !grid.has(r.r),
  );
  if (bad)
    return `a worker returned a record outside its chunk: ${bad.task}/${bad.variant}/${bad.item} at r_e ${bad.r}`;
  const keys = new Set(recs.map((r) => keyOf(r)));
  if (keys.size !== c.items.length * coeffs.length)
    return `a worker returned ${keys.size} distinct records for a chunk of ${c.items.length * coeffs.length}`;
  return null;
}

/** How long the coordinator waits for Redis to answer a poll before it gives up (BullMQ would wait forever). */
const REDIS_ANSWER_MS = 30_000;

/** `p`, or a clear error when Redis has not answered within REDIS_ANSWER_MS (the server went away). */
async function answered<T>(p: Promise<T>, url: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const lost = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new SteerlabError("not_found", `lost Redis: no answer for ${REDIS_ANSWER_MS / 1000} s`, {
            field: "queue",
            got: url,
            hint: "everything collected so far is stored; restart redis-server and rerun the same command to resume",
          }),
        ),
      REDIS_ANSWER_MS,
    );
  });
  try {
    return await Promise.race([p, lost]);
  } finally {
    clearTimeout(timer);
  }
}
