/**
 * Work units of a sweep: a chunk is one task x one variant x one run of consecutive items (batchSize of them),
 * with every r_e of the grid. Chunks never split the r_e axis: the runner stacks r_e values as rows of one
 * forward and shares the unsteered prefix (and few-shot prefixes) across them, so a chunk is the smallest unit
 * that keeps a sweep fast. A chunk's key names the task id, variant id and item indices only, so it is the same
 * on every machine and in every run of the same config with the same batch size.
 *
 * `--shard k/N` takes every N-th chunk of the plan's order starting at the k-th (round robin: each shard gets a
 * share of every task); the N shards cover the plan exactly once.
 */
import { SteerlabError } from "../errors.js";
import type { LoadedTask } from "./tasks.js";

export interface SweepChunk {
  /** "<task>/<variant>/<first item>-<last item>": stable across machines and runs. */
  key: string;
  task: string;
  variant: string;
  /** Positions in the task's item list: items [start, end). */
  start: number;
  end: number;
  /** Item indices of the chunk (the store's keys). */
  items: number[];
}

export interface Shard {
  /** 1-based share. */
  k: number;
  n: number;
}

export function chunkKey(task: string, variant: string, items: readonly number[]): string {
  return `${task}/${variant}/${items[0]}-${items[items.length - 1]}`;
}

/** Every chunk of a plan, in the runner's order (task, variant, items). */
export function planChunks(
  plan: { tasks: readonly LoadedTask[]; variants: readonly { id: string }[] },
  batchSize: number,
): SweepChunk[] {
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new SteerlabError("bad_input", "batchSize must be a positive integer", {
      field: "batchSize",
      got: String(batchSize),
    });
  const out: SweepChunk[] = [];
  for (const t of plan.tasks) {
    for (const v of plan.variants) {
      for (let s = 0; s < t.items.length; s += batchSize) {
        const end = Math.min(s + batchSize, t.items.length);
        const items = t.items.slice(s, end).map((it) => it.index);
        out.push({
          key: chunkKey(t.spec.id, v.id, items),
          task: t.spec.id,
          variant: v.id,
          start: s,
          end,
          items,
        });
      }
    }
  }
  return out;
}

/** "k/N" with 1 <= k <= N. */
export function parseShard(s: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(s.trim());
  const k = m ? Number(m[1]) : Number.NaN;
  const n = m ? Number(m[2]) : Number.NaN;
  if (!m || !(n >= 1) || !(k >= 1) || k > n)
    throw new SteerlabError("bad_input", "bad --shard", {
      field: "shard",
      expected: "k/N with 1 <= k <= N, e.g. 2/4",
      got: s,
    });
  return { k, n };
}

/** The chunks of one shard: positions k-1, k-1+N, k-1+2N, ... of the plan's order. */
export function shardChunks(chunks: readonly SweepChunk[], shard: Shard): SweepChunk[] {
  return chunks.filter((_, i) => i % shard.n === shard.k - 1);
}
