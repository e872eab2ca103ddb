/** Warnings for what a run folder's results file had wrong (and what opening it repaired), for stderr. */
import type { StoreDamage, StoreRecovery } from "../eval/store.js";

const lineList = (ns: readonly number[]) =>
  ns.length > 10 ? `${ns.slice(0, 10).join(", ")}, … (${ns.length} in all)` : ns.join(", ");

/** One line per problem; empty when the folder was sound. `repaired`: opened for writing (a sweep), not read. */
export function storeNotes(d: StoreDamage | StoreRecovery, dir: string): string[] {
  const out: string[] = [];
  const r = "staleLock" in d ? d : null;
  if (r?.staleLock)
    out.push(
      `took over the lock of ${dir} from pid ${r.staleLock.pid} on ${r.staleLock.host} (started ${r.staleLock.started}), which is no longer running`,
    );
  if (r?.emptyRunFile)
    out.push(`run.json in ${dir} was empty (a crash while writing it) and was written anew`);
  if (d.corruptLines.length)
    out.push(
      `skipped ${d.corruptLines.length} corrupt line(s) of results.jsonl (line ${lineList(d.corruptLines)})${
        r
          ? `; moved to ${r.rejectedFile}, and their cells are computed again`
          : "; a sweep of this folder recomputes them"
      }`,
    );
  if (d.duplicateLines.length)
    out.push(
      `counted ${d.duplicateLines.length} duplicate record(s) once (line ${lineList(d.duplicateLines)})${r ? "; removed from results.jsonl" : ""}`,
    );
  if (d.tornTail)
    out.push(
      `dropped a torn last line of results.jsonl (a write cut short)${r ? "; it is computed again" : ""}`,
    );
  return out;
}

/** A library's onRecovery callback: the notes on stderr when the run folder is opened (a kill may follow). */
export function warnRecovery(r: StoreRecovery, dir: string): void {
  for (const note of storeNotes(r, dir)) process.stderr.write(`steerlab: warning: ${note}\n`);
}
