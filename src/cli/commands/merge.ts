/** `steerlab merge`: combine sweep run folders (shards, or runs from several machines) into one. */
import { resolve } from "node:path";
import type { Command } from "commander";
import { missingNote } from "../../eval/run-grid.js";
import { mergeRuns } from "../../eval/store-merge.js";
import { storeNotes } from "../store-notes.js";

export function registerMerge(program: Command): void {
  program
    .command("merge")
    .description(
      "merge sweep run folders of one config into one (dedup by record key; other configs, models or files are refused)",
    )
    .argument("<runs...>", "run folders to merge")
    .requiredOption("-o, --out <dir>", "the merged run folder (created, or merged into again)")
    .option("--json", "print what was merged as JSON")
    .addHelpText(
      "after",
      "\nExample:\n  steerlab merge runs/exp-1 runs/exp-2 runs/exp-3 -o runs/exp\n  steerlab report runs/exp -o out/exp",
    )
    .action((runs: string[], o: { out: string; json?: boolean }) => {
      const res = mergeRuns(
        runs.map((r) => resolve(r)),
        resolve(o.out),
      );
      for (const i of res.inputs)
        for (const note of storeNotes(i.damage, i.dir)) process.stderr.write(`steerlab: warning: ${note}\n`);
      const m = res.missing;
      const note = m ? missingNote(m) : null;
      if (m && note)
        process.stderr.write(
          `steerlab: warning: the merged run is incomplete: ${note}${m.shards.length ? `; shards not merged yet: ${m.shards.join(", ")} (run sweep --shard ${m.shards[0]} and merge again)` : "; rerun a sweep on the folder that lacks them, then merge again"}\n`,
        );
      else if (!m)
        process.stderr.write(
          "steerlab: warning: no input records its grid (grid.json, written by sweeps since this version): whether the merge is complete is not checked\n",
        );
      if (o.json) {
        process.stdout.write(`${JSON.stringify(res, null, 2)}\n`);
        return;
      }
      for (const i of res.inputs)
        process.stdout.write(
          `${i.dir}: ${i.records} records, ${i.added} added, ${i.duplicates} already there${i.differing ? ` (${i.differing} with other values: the first kept)` : ""}\n`,
        );
      process.stdout.write(`${res.out}: ${res.records} records\n`);
    });
}
