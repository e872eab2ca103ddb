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
