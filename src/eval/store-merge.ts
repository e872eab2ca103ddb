/**
 * Merge sweep run folders (the shards of `sweep --shard k/N`, or runs made on several machines) into one.
 * Records are deduplicated by record key (store.ts): the first folder that holds a key wins and later copies
 * count as duplicates. Folders made from another config, model or vector/data file are refused, all of them
 * named in one error, before anything is written. Identities are compared without file paths
 * (portableIdentity), so the same files in different folders on different machines merge.
 *
 * Shards cut another way (another N in `--shard k/N`, another batch size) can never tile the grid, so they are
 * refused too, each folder with its cut. A merge of one cut that still lacks shares (merging as shards arrive)
 * goes ahead and says which cells, chunks and shards are missing (run-grid.ts).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { SteerlabError } from "../errors.js";
import {
  cutOf,
  type MissingCells,
  missingCells,
  type RunGrid,
  readRunGrid,
  samePlan,
  writeRunGrid,
} from "./run-grid.js";
import { readRunUnits, writeRunUnits } from "./run-units.js";
import { canonicalJson, identityChanges, keyOf, ResultStore, RUN_FILE, type StoreDamage } from "./store.js";
import { portableIdentity } from "./sweep-config.js";

export interface MergedInput {
  dir: string;
  /** Records in the folder (one per key). */
  records: number;
  /** Records new to the output. */
  added: number;
  /** Records whose key the output already held; `differing` of them with other values. */
  duplicates: number;
  differing: number;
  damage: StoreDamage;
}

export interface MergeResult {
  out: string;
  inputs: MergedInput[];
  /** Records in the output after the merge. */
  records: number;
  /**
   * The grid's cells the output still lacks, and the shares `--shard k/N` not merged yet (k/N strings); null when
   * no input recorded its grid (folders from before grid.json).
   */
  missing: (MissingCells & { shards: string[] }) | null;
}

/** What a mismatching identity field means, for the refusal. */
const FIELD_NAMES: Record<string, string> = {
  modelFingerprint: "model weights (fingerprint)",
  vectors: "vectors or their files",
  tasks: "tasks or their data files",
  coeffs: "r_e grid",
};

export function mergeRuns(inputs: readonly string[], out: string): MergeResult {
  if (inputs.length === 0)
    throw new SteerlabError("bad_input", "nothing to merge", { hint: "name one or more run folders" });
  const infos = inputs.map((d) => ResultStore.readInfo(d));
  // The reference: the output's identity when it exists (merging into it again), else the first input's.
  const refIdentity = existsSync(join(out, RUN_FILE))
    ? (ResultStore.readInfo(out).config as Record<string, unknown>)
    : (infos[0]!.config as Record<string, unknown>);
  const ref = portableIdentity(refIdentity);
  const problems: string[] = [];
  infos.forEach((info, i) => {
    const changed = identityChanges(ref, portableIdentity(info.config as Record<string, unknown>));
    if (changed.length)
      problems.push(`${inputs[i]}: another ${changed.map((f) => FIELD_NAMES[f] ?? f).join(", ")}`);
  });
  if (problems.length)
    throw new SteerlabError("mismatch", "these run folders hold another sweep than the merge's", {
      file: existsSync(join(out, RUN_FILE)) ? join(out, RUN_FILE) : join(inputs[0]!, RUN_FILE),
      problems,
      hint: "merge only folders of one config on the same model, vector and data files; nothing was written",
    });
  const grid = checkGrids(inputs, out);
  const store = ResultStore.open(out, refIdentity);
  try {
    const merged: MergedInput[] = [];
    for (const dir of inputs) {
      const { records, damage } = ResultStore.read(dir);
      const fresh = records.filter((r) => !store.has(r.task, r.variant, r.item, r.r));
      const had = new Map(store.records().map((r) => [keyOf(r), r]));
      let differing = 0;
      for (const r of records) {
        const o = had.get(keyOf(r));
        if (o && canonicalJson(o) !== canonicalJson(r)) differing++;
      }
      store.append(fresh);
      merged.push({
        dir,
        records: records.length,
        added: fresh.length,
        duplicates: records.length - fresh.length,
        differing,
        damage,
      });
    }
    // relative r_e: the unit each shard measured when it planned (the same model and prompts give the same one)
    if (!readRunUnits(out)) {
      const units = inputs.map((d) => readRunUnits(d)).find((u) => u !== undefined);
      if (units) writeRunUnits(out, units);
    }
    let missing: MergeResult["missing"] = null;
    if (grid) {
      const whole: RunGrid = { ...grid.plan, shard: null };
      writeRunGrid(out, whole);
      const n = grid.n;
      const shards = n
        ? Array.from({ length: n }, (_, i) => i + 1)
            .filter((k) => !grid.ks.has(k))
            .map((k) => `${k}/${n}`)
        : [];
      missing = { ...missingCells(whole, store.records()), shards };
    }
    return { out, inputs: merged, records: store.size, missing };
  } finally {
    store.close();
  }
}

/**
 * The one plan every input's grid.json (and the output's, when merging into it) agrees on, with the shard count N
 * and the shares present; refused when the folders were cut differently. null when no folder has a grid.
 */
function checkGrids(
  inputs: readonly string[],
  out: string,
): { plan: RunGrid; n: number | null; ks: Set<number> } | null {
  const dirs = existsSync(join(out, RUN_FILE)) ? [out, ...inputs] : [...inputs];
  const grids = dirs
    .map((dir) => ({ dir, grid: readRunGrid(dir) }))
    .filter((g): g is { dir: string; grid: RunGrid } => g.grid !== undefined);
  if (grids.length === 0) return null;
  const ref = grids[0]!.grid;
  const ns = new Set(grids.flatMap((g) => (g.grid.shard ? [g.grid.shard.n] : [])));
  if (grids.some((g) => !samePlan(g.grid, ref)) || ns.size > 1)
    throw new SteerlabError(
      "mismatch",
      "these run folders were cut into shards differently: they cannot tile the grid",
      {
        file: join(grids[0]!.dir, "grid.json"),
        problems: grids.map(
          (g) =>
            `${g.dir}: ${cutOf(g.grid)}${samePlan(g.grid, ref) ? "" : " (another plan: other items, variants or r_e grid)"}`,
        ),
        expected: "every shard of one --shard k/N run, with the same N and --batch-size",
        hint: "rerun the missing shares with the N and batch size of the others (sweep --shard k/N), then merge; nothing was written",
      },
    );
  const n = ns.size ? [...ns][0]! : null;
  // A folder of the whole grid holds every share.
  const whole = grids.some((g) => g.grid.shard === null);
  const ks = new Set(
    whole && n
      ? Array.from({ length: n }, (_, i) => i + 1)
      : grids.flatMap((g) => (g.grid.shard ? [g.grid.shard.k] : [])),
  );
  return { plan: ref, n, ks };
}
