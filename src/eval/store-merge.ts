/**
 * Merge sweep run folders (the shards of `sweep --shard k/N`, or runs made on several machines) into one.
 * Records are deduplicated by record key (store.ts): the first folder that holds a key wins and later copies
 * count as duplicates. Folders made from another config, model or vector/data file are refused, all of them
 * named in one error, before anything is written. Identities are compared without file paths
 * (portableIdentity), so the same files in different folders on different machines merge.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { SteerlabError } from "../errors.js";
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
    return { out, inputs: merged, records: store.size };
  } finally {
    store.close();
  }
}
