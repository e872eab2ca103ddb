/**
 * `grid.json` beside a run's store: the cells the sweep was planned to fill (each task's item indices, the
 * variants, the r_e grid), the batch size that cut them into chunks and, for `--shard k/N`, which share this
 * folder computes. The sweep writes it when it plans the run. `steerlab merge` reads it to refuse shards cut
 * differently (another N or batch size can never tile the grid) and to list the cells a merge still lacks; the
 * report warns about missing cells. Folders written before this file existed have none: nothing is checked.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { SteerlabError } from "../errors.js";
import { readTextFile } from "../io/files.js";
import { writeFileAtomic } from "../io/write-atomic.js";
import { recordKey, type SweepRecord } from "./store.js";
import { chunkKey, type Shard } from "./sweep-chunks.js";
import type { LoadedTask } from "./tasks.js";

export const GRID_FILE = "grid.json";

export interface RunGrid {
  batchSize: number;
  /** This folder's share of the chunks (`sweep --shard k/N`); null for the whole grid. */
  shard: Shard | null;
  tasks: { id: string; items: number[] }[];
  variants: string[];
  coeffs: number[];
}

export interface MissingCells {
  /** Cells of the grid without a record, out of `total`. */
  cells: number;
  total: number;
  /** Keys of the chunks that lack cells (sweep-chunks.ts chunkKey), in the plan's order. */
  chunks: string[];
}

export function gridOf(
  plan: { tasks: readonly LoadedTask[]; variants: readonly { id: string }[]; coeffs: readonly number[] },
  batchSize: number,
  shard?: Shard,
): RunGrid {
  return {
    batchSize,
    shard: shard ?? null,
    tasks: plan.tasks.map((t) => ({ id: t.spec.id, items: t.items.map((it) => it.index) })),
    variants: plan.variants.map((v) => v.id),
    coeffs: [...plan.coeffs],
  };
}

export function writeRunGrid(dir: string, grid: RunGrid): void {
  writeFileAtomic(join(dir, GRID_FILE), `${JSON.stringify(grid)}\n`, {
    hint: "rerun the same command to resume",
  });
}

/** The grid of run folder `dir`, or undefined when it has none (written before grid.json existed). */
export function readRunGrid(dir: string): RunGrid | undefined {
  const f = join(dir, GRID_FILE);
  if (!existsSync(f)) return undefined;
  const bad = (why: string) =>
    new SteerlabError("bad_file", `the grid file ${why}`, {
      file: f,
      hint: "rerun the sweep on this folder: it writes grid.json again when it plans the run",
    });
  let g: Partial<RunGrid>;
  try {
    g = JSON.parse(readTextFile(f, "grid file"));
  } catch (e) {
    if (e instanceof SteerlabError) throw e;
    throw bad(`is not JSON: ${(e as Error).message}`);
  }
  const ints = (x: unknown) => Array.isArray(x) && x.every((i) => Number.isInteger(i));
  if (
    !g ||
    !Number.isInteger(g.batchSize) ||
    !Array.isArray(g.tasks) ||
    !g.tasks.every((t) => typeof t?.id === "string" && ints(t.items)) ||
    !Array.isArray(g.variants) ||
    !Array.isArray(g.coeffs) ||
    (g.shard !== null && !(Number.isInteger(g.shard?.k) && Number.isInteger(g.shard?.n)))
  )
    throw bad("lacks batchSize, shard, tasks (id, items), variants or coeffs");
  return g as RunGrid;
}

/** The same cells cut into the same chunks (the shard aside). */
export function samePlan(a: RunGrid, b: RunGrid): boolean {
  const { shard: _a, ...pa } = a;
  const { shard: _b, ...pb } = b;
  return JSON.stringify(pa) === JSON.stringify(pb);
}

/** How a folder's grid was cut, for messages: "shard 2/4 at batch size 8" or "the whole grid at batch size 8". */
export function cutOf(g: RunGrid): string {
  return `${g.shard ? `shard ${g.shard.k}/${g.shard.n}` : "the whole grid"} at batch size ${g.batchSize}`;
}

/** The cells of `grid` that `records` lack, by chunk. */
export function missingCells(grid: RunGrid, records: readonly SweepRecord[]): MissingCells {
  const have = new Set(records.map((r) => recordKey(r.task, r.variant, r.item, r.r)));
  const out: MissingCells = { cells: 0, total: 0, chunks: [] };
  for (const t of grid.tasks)
    for (const v of grid.variants)
      for (let s = 0; s < t.items.length; s += grid.batchSize) {
        const items = t.items.slice(s, s + grid.batchSize);
        let lack = 0;
        for (const i of items) for (const r of grid.coeffs) if (!have.has(recordKey(t.id, v, i, r))) lack++;
        out.total += items.length * grid.coeffs.length;
        out.cells += lack;
        if (lack) out.chunks.push(chunkKey(t.id, v, items));
      }
  return out;
}

/** One line about a grid's missing cells (the first chunks named), or null when every cell is there. */
export function missingNote(m: MissingCells, max = 5): string | null {
  if (m.cells === 0) return null;
  const named = m.chunks.slice(0, max).join(", ");
  return `${m.cells} of the grid's ${m.total} cells have no result, in ${m.chunks.length} chunk(s): ${named}${m.chunks.length > max ? `, … (${m.chunks.length - max} more)` : ""}`;
}

/** The report's warnings about run folder `dir`: the planned cells its records lack (none without grid.json). */
export function gridWarnings(dir: string, records: readonly SweepRecord[]): string[] {
  const grid = readRunGrid(dir);
  if (!grid) return [];
  const note = missingNote(missingCells(grid, records));
  if (!note) return [];
  const why = grid.shard
    ? `this folder is shard ${grid.shard.k}/${grid.shard.n}: merge every shard (steerlab merge) for the whole grid`
    : "the sweep has not finished (or a merge lacks shards): curves, fits and the regime use only the cells present; rerun the sweep to fill them";
  return [`${note}; ${why}`];
}
