/**
 * What a worker must hold to run a chunk of someone else's plan: the files of the run identity (model weights by
 * fingerprint, vector and data files by sha256; sweep-config.ts runIdentity, compared without their paths) and
 * the same prompts (tokenizer and chat template) and judge models. The coordinator puts these into every job; a
 * worker computes its own and refuses the sweep when anything differs, so a machine with another checkpoint, judge
 * or an edited data file can never add its numbers to the run.
 */
import { createHash } from "node:crypto";
import { identityChanges } from "../eval/store.js";
import type { SweepPlan } from "../eval/sweep.js";
import { portableIdentity } from "../eval/sweep-config.js";
import type { Tokenizer } from "../io/tokenizer-types.js";
import { loadModel } from "../model/load.js";

/** sha256 of every task's tokenized prompts. */
export function promptsDigest(plan: SweepPlan, tokenizer: Tokenizer | null): string {
  const h = createHash("sha256");
  for (const t of plan.tasks) {
    h.update(`\n${t.spec.id}`);
    for (const it of t.items) {
      h.update(`\n${it.index}:${tokenizer ? tokenizer.encode(it.prompt).join(",") : it.prompt}`);
      // cloze: the scored word is tokenized on its own
      if (it.answer !== undefined)
        h.update(
          `|${tokenizer ? tokenizer.encode(it.answer, { addSpecialTokens: false }).join(",") : it.answer}`,
        );
    }
  }
  return h.digest("hex");
}

/** Task id -> fingerprint of the judge model it names (tasks judged by the swept model itself have none). */
export async function judgeFingerprints(plan: SweepPlan): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const t of plan.tasks) if (t.judgeModel) out[t.spec.id] = (await loadModel(t.judgeModel)).fingerprint;
  return out;
}

/** What the plan and a worker each hold. */
export interface PlanFiles {
  identity: Record<string, unknown>;
  prompts: string;
  judges: Record<string, string>;
}

type Entry = { name?: string; id?: string; sha256?: string; source?: string };

const short = (s: unknown) =>
  typeof s === "string" ? (s.startsWith("random:") ? s : `${s.slice(0, 12)}…`) : "(none)";

/** Per-file lines for a list field (vectors by name, tasks by id) whose sha256 differ. */
function fileLines(what: string, key: "name" | "id", plan: unknown, here: unknown): string[] {
  const a = new Map((plan as Entry[]).map((e) => [e[key], e]));
  const b = new Map((here as Entry[]).map((e) => [e[key], e]));
  const out: string[] = [];
  for (const k of new Set([...a.keys(), ...b.keys()])) {
    const x = a.get(k);
    const y = b.get(k);
    const hx = x?.sha256 ?? x?.source;
    const hy = y?.sha256 ?? y?.source;
    if (hx !== hy) out.push(`${what} ${k}: ${short(hy)} here, the plan's is ${short(hx)}`);
    else if (JSON.stringify(x) !== JSON.stringify(y)) out.push(`${what} ${k}: its settings differ`);
  }
  return out;
}

/** Every way this machine's files differ from the plan's, one line each (empty when they match). */
export function planProblems(plan: PlanFiles, here: PlanFiles): string[] {
  const a = portableIdentity(plan.identity);
  const b = portableIdentity(here.identity);
  const out: string[] = [];
  for (const field of identityChanges(a, b)) {
    if (field === "modelFingerprint")
      out.push(`model weights: fingerprint ${short(b[field])} here, the plan's is ${short(a[field])}`);
    else if (field === "vectors") out.push(...fileLines("vector", "name", a[field], b[field]));
    else if (field === "tasks") out.push(...fileLines("data of task", "id", a[field], b[field]));
    else out.push(`${field}: differs from the plan's`);
  }
  for (const t of new Set([...Object.keys(plan.judges), ...Object.keys(here.judges)]))
    if (plan.judges[t] !== here.judges[t])
      out.push(
        `judge model of task ${t}: fingerprint ${short(here.judges[t])} here, the plan's is ${short(plan.judges[t])}`,
      );
  if (out.length === 0 && plan.prompts !== here.prompts)
    out.push("prompts: the same data tokenizes differently here (another tokenizer or chat template)");
  return out;
}
