/**
 * What a worker must hold to run a chunk of someone else's plan: the same model weights, vector files, data files
 * and prompts (tokenizer and chat template included). The coordinator puts these fingerprints into every job; a
 * worker computes its own from its files and refuses the sweep when any differs, so a machine with another
 * checkpoint or an edited data file can never add its numbers to the run.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { SteerlabError } from "../errors.js";
import type { SweepPlan } from "../eval/sweep.js";
import { resolvePath, type SweepConfig } from "../eval/sweep-config.js";
import type { Tokenizer } from "../io/tokenizer-types.js";

export interface PlanFingerprints {
  /** LoadedModel.fingerprint (config, tensor names/shapes, sampled weights). */
  model: string;
  /** Vector name -> sha256 of its file ("random:<seed>" for drawn vectors). */
  vectors: Record<string, string>;
  /** Task id -> sha256 of its data file. */
  data: Record<string, string>;
  /** sha256 of every task's tokenized prompts (catches another tokenizer or chat template). */
  prompts: string;
}

function sha256File(path: string): string {
  try {
    return createHash("sha256").update(readFileSync(path)).digest("hex");
  } catch (e) {
    throw new SteerlabError("not_found", `cannot read a file of the sweep: ${(e as Error).message}`, {
      file: path,
    });
  }
}

/** Fingerprints of a planned sweep (config paths resolved against its baseDir). */
export function planFingerprints(
  config: SweepConfig,
  plan: SweepPlan,
  modelFingerprint: string,
  tokenizer: Tokenizer | null,
): PlanFingerprints {
  const base = config.baseDir ?? process.cwd();
  const vectors: Record<string, string> = {};
  for (const v of config.vectors)
    vectors[v.name] = v.source.startsWith("random:") ? v.source : sha256File(resolvePath(v.source, base));
  const data: Record<string, string> = {};
  for (const t of config.tasks) data[t.id] = sha256File(resolvePath(t.data, base));
  const h = createHash("sha256");
  for (const t of plan.tasks) {
    h.update(`\n${t.spec.id}`);
    for (const it of t.items)
      h.update(`\n${it.index}:${tokenizer ? tokenizer.encode(it.prompt).join(",") : it.prompt}`);
  }
  return { model: modelFingerprint, vectors, data, prompts: h.digest("hex") };
}

/** Every fingerprint that differs, as "what: expected X, got Y" lines (empty when all match). */
export function fingerprintProblems(expected: PlanFingerprints, got: PlanFingerprints): string[] {
  const short = (s: string | undefined) =>
    s === undefined ? "(none)" : s.startsWith("random:") ? s : s.slice(0, 12);
  const out: string[] = [];
  if (expected.model !== got.model)
    out.push(`model weights: fingerprint ${short(got.model)}, the plan's is ${short(expected.model)}`);
  for (const [what, e, g] of [
    ["vector", expected.vectors, got.vectors],
    ["data of task", expected.data, got.data],
  ] as const)
    for (const k of new Set([...Object.keys(e), ...Object.keys(g)]))
      if (e[k] !== g[k]) out.push(`${what} ${k}: sha256 ${short(g[k])}, the plan's is ${short(e[k])}`);
  if (out.length === 0 && expected.prompts !== got.prompts)
    out.push("prompts: the same data tokenizes differently here (another tokenizer or chat template)");
  return out;
}
