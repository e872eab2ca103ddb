import { readFileSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { SteerlabError } from "../../errors.js";
import { type ExperimentConfig, type ExperimentResult, runExperiment } from "../../eval/experiment.js";
import { readTextFile } from "../../io/files.js";
import type { TaskSeries } from "../../report/types.js";
import { threadsOption } from "../options.js";
import { progressReporter } from "../progress.js";
import { regimeLine } from "../regime-line.js";
import { onStopSignals } from "../signals.js";
import { warnRecovery } from "../store-notes.js";

/** The package's demo/ folder (from src/cli/commands or dist/src/cli/commands). */
function demoDir(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      readFileSync(join(d, "demo", "experiment.json"));
      return join(d, "demo");
    } catch {
      d = dirname(d);
    }
  }
  throw new SteerlabError("not_found", "the demo folder (demo/experiment.json) is missing from this install");
}

/** demo/experiment.json with its paths made absolute. */
export function demoConfig(dir = demoDir()): ExperimentConfig {
  return loadExperimentConfig(join(dir, "experiment.json"));
}

/** An experiment config (JSON) with its paths made absolute against the file's folder. */
export function loadExperimentConfig(file: string): ExperimentConfig {
  let c: ExperimentConfig;
  try {
    c = JSON.parse(readTextFile(file, "experiment config")) as ExperimentConfig;
  } catch (e) {
    if (e instanceof SteerlabError) throw e;
    throw new SteerlabError("bad_config", `cannot read the experiment config: ${(e as Error).message}`, {
      file,
    });
  }
  const problems = ["title", "models", "pairs", "coeffs", "tasks", "alignmentTask", "helpfulnessTask"]
    .filter((k) => (c as unknown as Record<string, unknown>)[k] === undefined)
    .map((k) => `${k}: missing`);
  if (!Array.isArray(c.models) || !Array.isArray(c.tasks)) problems.push("models and tasks: lists");
  if (problems.length) throw new SteerlabError("bad_config", "invalid experiment config", { file, problems });
  const dir = dirname(resolve(file));
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(dir, p));
  return {
    ...c,
    models: c.models.map((m) => ({ ...m, path: abs(m.path) })),
    pairs: abs(c.pairs),
    tasks: (c.tasks as { data: string; shotsFrom?: string }[]).map((t) => ({
      ...t,
      data: abs(t.data),
      ...(t.shotsFrom ? { shotsFrom: abs(t.shotsFrom) } : {}),
    })),
  };
}

/** Any experiment's summary: per model the alignment and helpfulness series, their fits, and the regime. */
export function experimentSummary(res: ExperimentResult, c: ExperimentConfig): string {
  const out: string[] = [];
  const cols = [c.alignmentTask, `${c.alignmentTask}-soft`, c.helpfulnessTask, `${c.helpfulnessTask}-acc`];
  for (const run of res.runs) {
    const n = run.model.name;
    const s = (id: string) => res.report.tasks.find((t) => t.id === `${n}/${id}`);
    const have = cols.filter((id) => s(id));
    out.push(`\n${n} (${run.model.path}), vector layers ${run.layers.join(",")}`);
    out.push(`${"r_e".padStart(6)} ${have.map((id) => id.padStart(Math.max(10, id.length))).join(" ")}`);
    for (const r of res.report.rGrid)
      out.push(
        `${String(r).padStart(6)} ${have.map((id) => at(s(id), r).padStart(Math.max(10, id.length))).join(" ")}`,
      );
    out.push(
      ...fitLines(
        res,
        n,
        have.filter((id) => !id.endsWith("-acc")),
      ),
    );
  }
  out.push(...regimeLines(res, c));
  return out.join("\n");
}

function fitLines(res: ExperimentResult, model: string, ids: readonly string[]): string[] {
  const out: string[] = [];
  for (const id of ids) {
    const f = res.report.fits.find((x) => x.taskId === `${model}/${id}`);
    const fits = [f?.law, ...(f?.local ?? [])].filter((x) => x !== undefined);
    const txt = fits
      .map(
        (l) =>
          `${l.kind}(${l.names.map((nm, i) => `${nm}=${l.values[i]!.toPrecision(3)}`).join(", ")}) R^2=${Number.isFinite(l.r2) ? l.r2.toFixed(3) : "undefined (constant data)"}${l.converged ? "" : " (not converged)"}`,
      )
      .join("; ");
    out.push(`  fit ${id}: ${txt || "none"}`);
    for (const n of [...(f?.law?.notes ?? []), ...(f?.notes ?? [])]) out.push(`    note: ${n}`);
  }
  return out;
}

function regimeLines(res: ExperimentResult, c: ExperimentConfig): string[] {
  const reg = res.report.regime;
  return reg ? [`\n${regimeLine(reg, c.models[0]!.name)}`] : [];
}

function at(s: TaskSeries | undefined, r: number): string {
  const p = s?.points.find((x) => x.r === r);
  return p && Number.isFinite(p.mean) ? p.mean.toFixed(3) : "-";
}

/** The summary: the measured table, the fits with R^2, the efficient r_e. */
export function summary(res: ExperimentResult, c: ExperimentConfig): string {
  const out: string[] = [];
  const grid = res.report.rGrid;
  const pick = grid.filter((_, i) => i % 2 === 0 || grid.length <= 9);
  for (const run of res.runs) {
    const n = run.model.name;
    const s = (id: string) => res.report.tasks.find((t) => t.id === `${n}/${id}`);
    out.push(`\n${n} (${run.model.path}), vector layers ${run.layers.join(",")}`);
    out.push(
      `${"r_e".padStart(5)} ${"B logprob".padStart(10)} ${"B soft".padStart(8)} ${"B keyword".padStart(10)} ${"unclear".padStart(8)} ${"P(corr)".padStart(8)} ${"P(A-D)".padStart(8)} ${"acc".padStart(6)}`,
    );
    for (const r of pick) {
      const kw = s("refusal-keyword")?.points.find((x) => x.r === r);
      out.push(
        `${String(r).padStart(5)} ${at(s("refusal-logprob"), r).padStart(10)} ${at(s("refusal-logprob-soft"), r).padStart(8)} ${at(s("refusal-keyword"), r).padStart(10)} ${String(kw?.unclear ?? "-").padStart(8)} ${at(s("knowledge"), r).padStart(8)} ${at(s("knowledge-ad"), r).padStart(8)} ${at(s("knowledge-acc"), r).padStart(6)}`,
      );
    }
    out.push(...fitLines(res, n, ["refusal-logprob", "refusal-logprob-soft", "knowledge", "knowledge-ad"]));
  }
  out.push(...regimeLines(res, c));
  return out.join("\n");
}

export function registerDemo(program: Command): void {
  program
    .command("demo")
    .description(
      "run the paper's experiment on the built-in demo models (base and chat) and write the report",
    )
    .option("-o, --out <dir>", "output folder (rerunning resumes the sweeps)", "runs/demo")
    .option("--threads <n>", "compute threads", threadsOption)
    .option("--json", "print the report's JSON path and the efficient regime as JSON")
    .action((o: RunCli) => runAndPrint(demoConfig(), o, summary));
}

export function registerExperiment(program: Command): void {
  program
    .command("experiment")
    .description(
      "run the paper's whole experiment from a config: extract a repe-pca vector per model, sweep, fit, report",
    )
    .argument(
      "<config>",
      "experiment config (JSON; paths relative to it), e.g. experiments/stories260k/experiment.json",
    )
    .option("-o, --out <dir>", "output folder (rerunning resumes the sweeps)", "runs/experiment")
    .option("--threads <n>", "compute threads", threadsOption)
    .option("--json", "print the report's JSON path and the efficient regime as JSON")
    .action((file: string, o: RunCli) => runAndPrint(loadExperimentConfig(file), o, experimentSummary));
}

interface RunCli {
  out: string;
  threads?: number;
  json?: boolean;
}

/** Run an experiment with progress, then print its summary (or, with --json, the report path and the regime). */
async function runAndPrint<C extends Parameters<typeof runExperiment>[0]>(
  c: C,
  o: RunCli,
  print: (res: Awaited<ReturnType<typeof runExperiment>>, c: C) => string,
): Promise<void> {
  const t0 = Date.now();
  const progress = o.json ? null : progressReporter();
  // runExperiment takes no abort signal: a signal releases the sweep's run-folder lock and exits (resumable).
  const offSignals = onStopSignals();
  let res: Awaited<ReturnType<typeof runExperiment>>;
  try {
    res = await runExperiment(c, resolve(o.out), {
      threads: o.threads,
      onProgress: progress ? (label, done, total) => progress({ label, done, total }) : undefined,
      onRecovery: warnRecovery,
    });
  } finally {
    offSignals();
    progress?.end();
  }
  if (o.json) {
    process.stdout.write(
      `${JSON.stringify({ files: res.files, regime: res.report.regime ?? null }, null, 2)}\n`,
    );
    return;
  }
  process.stdout.write(
    `${print(res, c)}\n\nreport: ${res.files.html}\n(${((Date.now() - t0) / 1000).toFixed(0)} s)\n`,
  );
}
