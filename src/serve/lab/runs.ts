/**
 * Sweep run folders under the lab's runs directory: list them, and build one run's report exactly as
 * `steerlab report` does (reportOfRun + buildReport), with its progress for the live view. Run ids are paths
 * relative to the runs directory; resolving one never leaves it.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";
import { SteerlabError } from "../../errors.js";
import { RESULTS_FILE, ResultStore, RUN_FILE } from "../../eval/store.js";
import type { SweepConfig } from "../../eval/sweep-config.js";
import { reportOfRun } from "../../eval/sweep-plan.js";
import { loadTask, type TaskSpec } from "../../eval/tasks.js";
import { loadTokenizerFromHfDir } from "../../io/tokenizer.js";
import { type BuildOptions, buildReport } from "../../report/build.js";
import type { RunProgress, RunSummary, RunView } from "./types.js";

/** How deep below the runs directory run folders are looked for (runs/demo/base-sweep is depth 2). */
const MAX_DEPTH = 3;

function runFolders(root: string, dir = root, depth = 0): string[] {
  if (existsSync(join(dir, RUN_FILE))) return [dir];
  if (depth >= MAX_DEPTH) return [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => !n.startsWith("."))
    .sort()
    .flatMap((n) => {
      const p = join(dir, n);
      try {
        return statSync(p).isDirectory() ? runFolders(root, p, depth + 1) : [];
      } catch {
        return [];
      }
    });
}

function idOf(root: string, dir: string): string {
  return relative(root, dir).split(sep).join("/");
}

/** The folder of run `id`, checked to lie inside `root` and to hold a run. */
export function runDir(root: string, id: string): string {
  const base = resolve(root);
  const dir = resolve(base, ...id.split("/"));
  if (id === "" || (dir !== base && !dir.startsWith(base + sep)) || id.split("/").includes("..")) {
    throw new SteerlabError("bad_input", "run id outside the runs directory", {
      field: "id",
      got: id,
      hint: "use an id from GET /lab/api/runs",
    });
  }
  if (!existsSync(join(dir, RUN_FILE)))
    throw new SteerlabError("not_found", `no sweep run "${id}"`, {
      field: "id",
      hint: "use an id from GET /lab/api/runs",
    });
  return dir;
}

function resultsStat(dir: string): { bytes: number; updated: string } {
  const p = join(dir, RESULTS_FILE);
  if (!existsSync(p)) return { bytes: 0, updated: ResultStore.readInfo(dir).created };
  const s = statSync(p);
  return { bytes: s.size, updated: s.mtime.toISOString() };
}

export function listRuns(root: string): RunSummary[] {
  return runFolders(resolve(root)).map((dir) => {
    const info = ResultStore.readInfo(dir);
    const config = info.config as { model?: unknown; coeffs?: number[] };
    return {
      id: idOf(resolve(root), dir),
      model:
        String(config.model ?? "")
          .split("/")
          .pop() ?? "",
      created: info.created,
      records: ResultStore.readRecords(dir).length,
      updated: resultsStat(dir).updated,
      coeffs: config.coeffs ?? [],
    };
  });
}

/** Records the run's config asks for: items x variants x coeffs per task (null when a task cannot be read). */
async function expectedRecords(config: Record<string, unknown>): Promise<number | null> {
  const c = config as unknown as Pick<SweepConfig, "coeffs" | "layers"> & {
    tasks: TaskSpec[];
    vectors: unknown[];
  };
  const variants = (c.vectors?.length ?? 0) * (c.layers?.length ?? 1);
  let total = 0;
  // Chat-formatted prompts need the model's tokenizer (its chat template); the run records the model's path.
  const model = String(config.model ?? "");
  const tokenizer = statSync(model, { throwIfNoEntry: false })?.isDirectory()
    ? await loadTokenizerFromHfDir(model).catch(() => null)
    : null;
  for (const t of c.tasks ?? []) {
    try {
      total += (await loadTask(t, "/", tokenizer)).items.length * variants * (c.coeffs?.length ?? 0);
    } catch {
      return null; // e.g. a chat template that needs the model's tokenizer: progress shows records only
    }
  }
  return total;
}

const expectedCache = new Map<string, number | null>();

export async function runProgress(dir: string): Promise<RunProgress> {
  const info = ResultStore.readInfo(dir);
  const config = info.config as Record<string, unknown>;
  if (!expectedCache.has(info.hash)) expectedCache.set(info.hash, await expectedRecords(config));
  const st = resultsStat(dir);
  return {
    records: ResultStore.readRecords(dir).length,
    expected: expectedCache.get(info.hash) ?? null,
    coeffs: ((config.coeffs as number[] | undefined) ?? []).length,
    ...st,
  };
}

/** A run's report (fits, regime) as `steerlab report` builds it, and its progress. */
export async function runView(root: string, id: string, build: BuildOptions = {}): Promise<RunView> {
  const dir = runDir(root, id);
  return { id, report: buildReport(reportOfRun(dir), build), progress: await runProgress(dir) };
}

/** The results file's size and time: a cheap check for "did the run change" between polls. */
export function runStamp(root: string, id: string): string {
  const s = resultsStat(runDir(root, id));
  return `${s.bytes}@${s.updated}`;
}
