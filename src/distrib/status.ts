/** Progress of queued sweeps as the queue sees it: per run, per connected worker and per chunk in flight. */
import type { Job } from "bullmq";
import {
  type ChunkJobData,
  type ChunkJobResult,
  checkRedis,
  connectedWorkers,
  DEFAULT_QUEUE_NAME,
  openQueue,
  type Refusal,
  Refusals,
} from "./queue.js";

export interface RunStatus {
  run: string;
  waiting: number;
  active: number;
  completed: number;
  failed: number;
  /** Retries scheduled after an error (BullMQ's delayed state). */
  retrying: number;
  /** Workers that refused this run (their files differ from the plan's), with why. */
  refused: Refusal[];
}

export interface WorkerStatus {
  worker: string;
  /** Connected to Redis now (a dead worker's name stays only in the jobs it finished). */
  connected: boolean;
  address?: string;
  active: number;
  completed: number;
  failed: number;
  /** Sum of compute time of its completed chunks. */
  computeMs: number;
}

export interface ActiveChunk {
  run: string;
  chunk: string;
  worker: string;
  /** Cells done / total of the chunk, as the worker last reported. */
  done: number;
  total: number;
  startedAt: number;
  /** Attempt number (1 = first try); above 1 after an error or a stalled (dead) worker. */
  attempt: number;
}

export interface FailedChunkStatus {
  run: string;
  chunk: string;
  worker: string;
  error: string;
  attempts: number;
}

export interface QueueStatus {
  queue: string;
  runs: RunStatus[];
  workers: WorkerStatus[];
  active: ActiveChunk[];
  failed: FailedChunkStatus[];
}

type ChunkJob = Job<ChunkJobData, ChunkJobResult>;

export async function queueStatus(o: {
  url: string;
  queueName?: string;
  run?: string;
}): Promise<QueueStatus> {
  await checkRedis(o.url);
  const name = o.queueName ?? DEFAULT_QUEUE_NAME;
  const queue = openQueue({ url: o.url, name });
  try {
    const [waiting, active, completed, failed, delayed, clients] = await Promise.all([
      queue.getJobs(["waiting", "prioritized"]),
      queue.getJobs(["active"]),
      queue.getJobs(["completed"]),
      queue.getJobs(["failed"]),
      queue.getJobs(["delayed"]),
      connectedWorkers(queue),
    ]);
    const mine = (js: readonly Job[]) =>
      (js as ChunkJob[]).filter((j) => j?.data && (!o.run || j.data.run === o.run));
    const runs = new Map<string, RunStatus>();
    const runOf = (j: ChunkJob) => {
      let r = runs.get(j.data.run);
      if (!r) {
        r = { run: j.data.run, waiting: 0, active: 0, completed: 0, failed: 0, retrying: 0, refused: [] };
        runs.set(j.data.run, r);
      }
      return r;
    };
    const workers = new Map<string, WorkerStatus>();
    const workerOf = (w: string) => {
      let s = workers.get(w);
      if (!s) {
        s = { worker: w, connected: false, active: 0, completed: 0, failed: 0, computeMs: 0 };
        workers.set(w, s);
      }
      return s;
    };
    for (const c of clients) {
      const s = workerOf(c.name);
      s.connected = true;
      if (c.address) s.address = c.address;
    }
    for (const j of mine(waiting)) runOf(j).waiting++;
    for (const j of mine(delayed)) runOf(j).retrying++;
    const act: ActiveChunk[] = [];
    for (const j of mine(active)) {
      runOf(j).active++;
      const w = j.processedBy ?? "?";
      workerOf(w).active++;
      const p = (j.progress ?? {}) as { done?: number; total?: number };
      act.push({
        run: j.data.run,
        chunk: j.data.chunk,
        worker: w,
        done: p.done ?? 0,
        total: p.total ?? 0,
        startedAt: j.processedOn ?? 0,
        attempt: j.attemptsStarted ?? 1,
      });
    }
    for (const j of mine(completed)) {
      runOf(j).completed++;
      const s = workerOf(j.returnvalue?.worker ?? j.processedBy ?? "?");
      s.completed++;
      s.computeMs += j.returnvalue?.computeMs ?? 0;
    }
    const fl: FailedChunkStatus[] = [];
    for (const j of mine(failed)) {
      runOf(j).failed++;
      const w = j.processedBy ?? "?";
      workerOf(w).failed++;
      fl.push({
        run: j.data.run,
        chunk: j.data.chunk,
        worker: w,
        error: j.failedReason,
        attempts: j.attemptsMade,
      });
    }
    const refusals = new Refusals(o.url, name);
    try {
      for (const r of runs.values()) r.refused = await refusals.read(r.run);
    } finally {
      refusals.close();
    }
    return {
      queue: name,
      runs: [...runs.values()],
      workers: [...workers.values()].sort((a, b) => a.worker.localeCompare(b.worker)),
      active: act,
      failed: fl,
    };
  } finally {
    await queue.close();
  }
}

/**
 * Remove a run's jobs (and the records they carry) from the queue, once its coordinator has collected them.
 * Chunks in flight are left alone and counted; rerunning the coordinator afterwards would enqueue afresh
 * whatever its run folder lacks.
 */
export async function removeRun(o: {
  url: string;
  queueName?: string;
  run: string;
}): Promise<{ removed: number; active: number }> {
  await checkRedis(o.url);
  const queue = openQueue({ url: o.url, name: o.queueName ?? DEFAULT_QUEUE_NAME });
  try {
    const refusals = new Refusals(o.url, o.queueName ?? DEFAULT_QUEUE_NAME);
    try {
      await refusals.clear(o.run);
    } finally {
      refusals.close();
    }
    const jobs = (await queue.getJobs([
      "waiting",
      "prioritized",
      "delayed",
      "completed",
      "failed",
    ])) as ChunkJob[];
    let removed = 0;
    for (const j of jobs)
      if (j?.data?.run === o.run) {
        await j.remove();
        removed++;
      }
    const active = ((await queue.getJobs(["active"])) as ChunkJob[]).filter(
      (j) => j?.data?.run === o.run,
    ).length;
    return { removed, active };
  } finally {
    await queue.close();
  }
}
