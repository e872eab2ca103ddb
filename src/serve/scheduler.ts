/**
 * The request queue: requests wait in arrival order; whenever the engine is free, up to `parallel` of them run
 * as one batch (one forward per step, each row with its own prompt, sampling, stops and steering; see
 * streamGenerateRows). A row whose client went away is dropped at the next step, so the batch ends as soon as
 * its live rows do and the next requests get the engine. A full queue refuses new requests at once.
 */
import type { Tokenizer } from "../io/tokenizer-types.js";
import type { Engine } from "../model/engine.js";
import { type GenerateEvent, type RowRequest, streamGenerateRows } from "../model/generate.js";
import { ApiError } from "./api-error.js";

export interface Job {
  row: RowRequest;
  /** Work to do on the engine before generation (e.g. scoring the prompt for echo + logprobs). */
  before?: () => Promise<void>;
  /** No generation (max_tokens 0): only `before` runs. */
  promptOnly?: boolean;
  /** Called synchronously for each token (event.logits is valid only during the call). */
  onToken(e: GenerateEvent): void;
  /** Called once: the row finished, was aborted, or the batch failed (error set). */
  onEnd(error?: unknown): void;
  /** The request's signal: jobs that share it are the rows of one request (its n choices or its prompts). */
  signal: AbortSignal;
}

export interface SchedulerStats {
  parallel: number;
  maxQueue: number;
  running: number;
  waiting: number;
  batches: number;
  /** Rows run so far and the largest batch seen. */
  rows: number;
  maxBatch: number;
  aborted: number;
  generatedTokens: number;
}

export class Scheduler {
  private readonly queue: Job[] = [];
  private running = 0;
  private pumping = false;
  private readonly counts = { batches: 0, rows: 0, maxBatch: 0, aborted: 0, generatedTokens: 0 };

  constructor(
    private readonly engine: Engine,
    private readonly tokenizer: Tokenizer,
    readonly parallel: number,
    readonly maxQueue: number,
  ) {}

  /** The engine jobs' `before` steps run on (they run inside the queue, so never beside a batch). */
  engineOf(): Engine {
    return this.engine;
  }

  stats(): SchedulerStats {
    return {
      parallel: this.parallel,
      maxQueue: this.maxQueue,
      running: this.running,
      waiting: this.queue.length,
      ...this.counts,
    };
  }

  submit(job: Job): void {
    // The queue holds requests, not rows: the choices and prompts of one request (one signal) are admitted
    // together, so one request with more rows than --max-queue still runs (its rows in successive batches).
    const waiting = new Set(this.queue.map((j) => j.signal));
    // When no batch runs, the first `parallel` requests in the queue are about to start, not waiting.
    const starting = this.running === 0 ? this.parallel : 0;
    if (!waiting.has(job.signal) && waiting.size >= this.maxQueue + starting) {
      throw new ApiError(
        429,
        `the server is busy: ${waiting.size} request(s) are waiting and it queues at most ${this.maxQueue} (--max-queue); retry later`,
        "rate_limit_error",
        "queue_full",
      );
    }
    this.queue.push(job);
    job.signal.addEventListener(
      "abort",
      () => {
        const i = this.queue.indexOf(job);
        if (i >= 0) {
          this.queue.splice(i, 1);
          this.counts.aborted++;
          job.onEnd();
        }
      },
      { once: true },
    );
    if (!this.pumping) {
      this.pumping = true;
      // Let requests that arrive in the same tick join the first batch.
      setImmediate(() => void this.pump());
    }
  }

  private async pump(): Promise<void> {
    try {
      while (this.queue.length) {
        const jobs = this.queue.splice(0, this.parallel);
        this.running = jobs.length;
        await this.runBatch(jobs);
        this.running = 0;
      }
    } finally {
      this.pumping = false;
      this.running = 0;
    }
  }

  private async runBatch(jobs: Job[]): Promise<void> {
    const live: Job[] = [];
    for (const job of jobs) {
      try {
        if (job.signal.aborted) throw new Error("aborted");
        await job.before?.();
        if (job.promptOnly || job.signal.aborted) job.onEnd();
        else live.push(job);
      } catch (e) {
        if (job.signal.aborted) {
          this.counts.aborted++;
          job.onEnd();
        } else job.onEnd(e);
      }
    }
    if (!live.length) return;
    const failedEarly = await this.decode(live);
    // A batch that failed before its first token (e.g. one row's hooks refused by the engine) is rerun one row at
    // a time, so that one bad request cannot fail the others.
    if (failedEarly) for (const job of live) await this.decode([job]);
  }

  /** Decode one batch; returns the error when it failed before any token (nobody was told yet), else null. */
  private async decode(live: Job[]): Promise<{ error: unknown } | null> {
    this.counts.batches++;
    this.counts.rows += live.length;
    this.counts.maxBatch = Math.max(this.counts.maxBatch, live.length);
    const ended = new Array<boolean>(live.length).fill(false);
    let events = 0;
    try {
      for await (const e of streamGenerateRows(
        this.engine,
        this.tokenizer,
        live.map((j) => ({ ...j.row, signal: j.signal })),
      )) {
        events++;
        this.counts.generatedTokens++;
        const job = live[e.row]!;
        if (ended[e.row]) continue;
        try {
          job.onToken(e);
        } catch (err) {
          ended[e.row] = true;
          job.onEnd(err);
          continue;
        }
        if (e.finishReason) {
          ended[e.row] = true;
          job.onEnd();
        }
      }
    } catch (err) {
      if (events === 0 && live.length > 1) return { error: err };
      live.forEach((job, i) => {
        if (!ended[i]) {
          ended[i] = true;
          job.onEnd(err);
        }
      });
    }
    live.forEach((job, i) => {
      if (!ended[i]) {
        if (job.signal.aborted) this.counts.aborted++;
        job.onEnd();
      }
    });
    return null;
  }
}
