/**
 * The job queue of distributed sweeps: BullMQ on Redis. One queue serves every sweep; a job is one chunk of one
 * run (sweep-chunks.ts) and its id is "<run>/<chunk key>", so enqueueing the same sweep again adds nothing.
 * A job carries the whole plan (config, run identity with the model and file fingerprints, batch size), so any
 * worker can run any sweep whose files it holds; it returns the chunk's records, which the coordinator appends
 * to its one result store.
 */
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { SteerlabError } from "../errors.js";
import type { SweepRecord } from "../eval/store.js";
import type { SweepConfig } from "../eval/sweep-config.js";

/** Queue name used when none is given (the same for coordinator, workers and status). */
export const DEFAULT_QUEUE_NAME = "steerlab-sweeps";
/** Attempts of a chunk before it is reported as failed (a crash or error counts; a refusal does not). */
export const DEFAULT_ATTEMPTS = 3;

export interface QueueOptions {
  /** redis://[user:password@]host:port[/db] or rediss://... */
  url: string;
  /** Default DEFAULT_QUEUE_NAME. */
  name?: string;
}

/** What a job carries: enough for a worker on another machine to plan the sweep and check its files. */
export interface ChunkJobData {
  /** Run id: the first 16 hex digits of the hash of the run identity without paths (portableIdentity). */
  run: string;
  chunk: string;
  /** The config as the coordinator read it; paths are resolved against the worker's base folder. */
  config: SweepConfig;
  /** The coordinator's run identity (runIdentity: model fingerprint, sha256 of vector and data files). */
  identity: Record<string, unknown>;
  /** sha256 of the tokenized prompts (fingerprints.ts promptsDigest). */
  prompts: string;
  /** Task id -> fingerprint of its judge model (fingerprints.ts judgeFingerprints). */
  judges: Record<string, string>;
  batchSize: number;
}

export interface ChunkJobResult {
  records: SweepRecord[];
  /** Worker name and the time spent computing the chunk (model loading excluded). */
  worker: string;
  computeMs: number;
}

/** Why a worker would not run a sweep (its files differ from the plan's, or it could not plan it at all). */
export interface Refusal {
  worker: string;
  /** The SteerlabError code: "mismatch" for other files, "not_found" for files it lacks, ... */
  code: string;
  message: string;
  /** Epoch ms. */
  at: number;
}

/**
 * Refusals of one run live in a Redis hash beside the queue (field = worker name), so that the coordinator learns
 * why a worker left instead of waiting for it forever. They expire after a week.
 */
const REFUSALS_TTL_S = 7 * 24 * 3600;

function refusalsKey(queueName: string, run: string): string {
  return `steerlab:refusals:${queueName}:${run}`;
}

/** The refusal records of one queue, on a connection of their own (BullMQ's connections are not for our keys). */
export class Refusals {
  private client: Promise<Redis> | null = null;

  constructor(
    private readonly url: string,
    private readonly queueName: string,
  ) {}

  private redis(): Promise<Redis> {
    this.client ??= (async () => {
      const r = new Redis(connectionOf(this.url).url, {
        maxRetriesPerRequest: 1,
        commandTimeout: 5000, // a Redis that does not answer fails the call rather than hanging it
        lazyConnect: true,
      });
      r.on("error", () => {}); // surfaces as a rejected command
      await r.connect();
      return r;
    })();
    return this.client;
  }

  async record(run: string, r: Refusal): Promise<void> {
    const c = await this.redis();
    const key = refusalsKey(this.queueName, run);
    await c.hset(key, r.worker, JSON.stringify(r));
    await c.expire(key, REFUSALS_TTL_S);
  }

  /** Forget `worker`'s refusal of `run` (it now holds the files), or every refusal of the run (worker omitted). */
  async clear(run: string, worker?: string): Promise<void> {
    const c = await this.redis();
    const key = refusalsKey(this.queueName, run);
    await (worker === undefined ? c.del(key) : c.hdel(key, worker));
  }

  /** The refusals of `run`, oldest first. */
  async read(run: string): Promise<Refusal[]> {
    const all = await (await this.redis()).hgetall(refusalsKey(this.queueName, run));
    return Object.values(all)
      .map((v) => {
        try {
          return JSON.parse(v) as Refusal;
        } catch {
          return null; // not ours
        }
      })
      .filter((r): r is Refusal => r !== null && typeof r.worker === "string")
      .sort((a, b) => a.at - b.at);
  }

  close(): void {
    const c = this.client;
    this.client = null;
    void c?.then((r) => r.disconnect()).catch(() => {});
  }
}

/** The workers connected to the queue now, by the name they gave (`--name`, default host#pid). */
export async function connectedWorkers(queue: Queue): Promise<{ name: string; address?: string }[]> {
  return (await queue.getWorkers()).map((c) => {
    const raw = c.rawname ?? "";
    const at = raw.indexOf(":w:");
    return { name: at >= 0 ? raw.slice(at + 3) : "(unnamed)", ...(c.addr ? { address: c.addr } : {}) };
  });
}

export function chunkJobId(run: string, chunk: string): string {
  return `${run}/${chunk}`;
}

/** Check the URL's form; BullMQ connections need maxRetriesPerRequest null (workers block on Redis). */
export function connectionOf(url: string): { url: string; maxRetriesPerRequest: null } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    u = new URL("invalid://");
  }
  if (u.protocol !== "redis:" && u.protocol !== "rediss:")
    throw new SteerlabError("bad_input", "bad queue address", {
      field: "queue",
      expected: "redis://host:port[/db] (or rediss:// for TLS)",
      got: url,
    });
  return { url, maxRetriesPerRequest: null };
}

/**
 * Fail fast with a clear error when Redis cannot be reached (BullMQ itself would retry forever), before any
 * queue object is built.
 */
export async function checkRedis(url: string, timeoutMs = 5000): Promise<void> {
  connectionOf(url);
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  let cause = "";
  client.on("error", (e: Error) => (cause ||= e.message)); // the socket's reason (ECONNREFUSED, ...)
  try {
    await client.connect();
    await client.ping();
  } catch (e) {
    throw new SteerlabError("not_found", `cannot reach Redis: ${cause || (e as Error).message}`, {
      field: "queue",
      got: url,
      hint: "start redis-server (Debian: apt-get install redis-server) or pass the right --queue address",
    });
  } finally {
    client.disconnect();
  }
}

export function openQueue(o: QueueOptions): Queue<ChunkJobData, ChunkJobResult> {
  const q = new Queue<ChunkJobData, ChunkJobResult>(o.name ?? DEFAULT_QUEUE_NAME, {
    connection: connectionOf(o.url),
  });
  q.on("error", () => {}); // connection errors surface as rejected calls
  return q;
}
