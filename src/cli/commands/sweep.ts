/** `steerlab sweep`: run (or resume) a grid over r_e x tasks into a run folder, from a config file or flags. */
import { basename, resolve } from "node:path";
import { type Command, Option } from "commander";
import { SteerlabError } from "../../errors.js";
import { loadSweepConfig, parseCoeffs, parseSweepConfig, type SweepConfig } from "../../eval/sweep-config.js";
import { sweepToDir } from "../../eval/sweep-plan.js";
import { TASK_KINDS } from "../../eval/tasks.js";
import { BACKENDS } from "../../model/open.js";
import type { SweepData } from "../../report/types.js";
import { collect, int } from "../options.js";
import { progressReporter } from "../progress.js";

export interface SweepCli {
  config?: string;
  model?: string;
  backend?: string;
  threads?: number;
  vector: string[];
  layers: string[];
  coeffs?: string;
  task: string[];
  out: string;
  batchSize?: number;
  diagnostics: boolean;
  reuse: boolean;
  paper?: boolean;
  coeffUnits?: "absolute" | "relative";
  json?: boolean;
}

/** "<kind>:<path>[:<id>]" -> a task spec object. */
function taskFlag(s: string, i: number): Record<string, unknown> {
  const m = /^([\w-]+):(.+?)(?::([\w.-]+))?$/.exec(s);
  if (!m || !(TASK_KINDS as readonly string[]).includes(m[1]!))
    throw new SteerlabError("bad_input", "bad --task", {
      field: "task",
      expected: `<${TASK_KINDS.join("|")}>:<data file>[:<id>]`,
      got: s,
    });
  return { kind: m[1], data: resolve(m[2]!), id: m[3] ?? `${m[1]}-${i}` };
}

/** The config from --config, with any flag given on the command line taking its place. */
export function configOf(o: SweepCli): SweepConfig {
  const flags: Record<string, unknown> = {};
  if (o.model) flags.model = resolve(o.model);
  if (o.backend) flags.backend = o.backend;
  if (o.vector.length)
    flags.vectors = o.vector.map((v, i) => ({
      name: v.startsWith("random:")
        ? v.replace(":", "")
        : `${basename(v).replace(/\.[^.]+$/, "")}${o.vector.length > 1 ? `-${i}` : ""}`,
      source: v.startsWith("random:") ? v : resolve(v),
    }));
  if (o.layers.length) flags.layers = o.layers;
  if (o.coeffs) flags.coeffs = parseCoeffs(o.coeffs);
  if (o.task.length) flags.tasks = o.task.map(taskFlag);
  if (o.batchSize) flags.batchSize = o.batchSize;
  if (!o.diagnostics) flags.diagnostics = false;
  if (o.paper) flags.protocol = "paper";
  if (o.coeffUnits) flags.coeffUnits = o.coeffUnits;
  if (!o.config) return parseSweepConfig(flags, process.cwd());
  const base = loadSweepConfig(o.config);
  return {
    ...base,
    ...(Object.keys(flags).length
      ? parseSweepConfig({ ...strip(base), ...flags }, base.baseDir ?? process.cwd())
      : {}),
  };
}

/** A validated config back to the raw keys parseSweepConfig accepts. */
function strip(c: SweepConfig): Record<string, unknown> {
  const { baseDir: _b, ...rest } = c;
  return rest;
}

function summaryTable(d: SweepData): string {
  const lines: string[] = [];
  for (const t of d.tasks) {
    lines.push(`${t.title} [${t.kind}]`);
    for (const p of t.points) {
      const unclear = p.unclear !== undefined ? `  unclear ${p.unclear}` : "";
      lines.push(
        `  r_e ${p.r.toFixed(2).padStart(7)}  ${p.mean.toFixed(4).padStart(8)} ± ${p.se.toFixed(4)}  n ${p.n}${unclear}`,
      );
    }
  }
  return `${lines.join("\n")}\n`;
}

export function registerSweep(program: Command): void {
  program
    .command("sweep")
    .description("sweep r_e (x layer sets x vectors) over tasks; results go to a resumable run folder")
    .option("-c, --config <file>", "sweep config (YAML or JSON); flags below override its keys")
    .option("-m, --model <path>", "model: a Hugging Face folder or a .gguf file")
    .addOption(new Option("--backend <name>", "compute backend (default onnxruntime)").choices(BACKENDS))
    .option("--threads <n>", "compute threads (default: all cores)", int("threads", 1))
    .option(
      "--vector <file>",
      "vector file (.safetensors, or a .gguf control vector), or random:<seed> (repeatable)",
      collect,
      [],
    )
    .option(
      "--layers <spec>",
      'layer set to steer, e.g. "8..15" or "-5..-1" (repeatable: one sweep axis value each)',
      collect,
      [],
    )
    .option("--coeffs <grid>", "r_e grid: start:stop:step or a,b,c")
    .option("--task <kind:file[:id]>", `task (repeatable); kind: ${TASK_KINDS.join(", ")}`, collect, [])
    .option("--batch-size <n>", "prompts per forward", int("batch-size", 1))
    .option("--no-diagnostics", "skip the A1/A3 diagnostics of mcq tasks")
    .addOption(
      new Option(
        "--coeff-units <u>",
        "r_e as given (absolute, the paper's) or in units of the residual norm at the steered layers (relative)",
      ).choices(["absolute", "relative"]),
    )
    .option(
      "--paper",
      "the paper's protocol: mcq helpfulness from a 16-token greedy generation, read at the first generated letter",
    )
    .option("--no-reuse", "recompute the unsteered layers for every r_e (the naive sweep)")
    .requiredOption("-o, --out <dir>", "run folder (created; rerun the same config to resume)")
    .option("--json", "print the aggregated results as JSON")
    .addHelpText(
      "after",
      `
Examples:
  steerlab sweep --config exp.yaml -o runs/exp
  steerlab sweep -m ./model --vector refusal.safetensors --layers 8..15 --coeffs -2:2:0.5 \\
    --task mcq:mmlu.csv --task behavior-logprob:harmful.csv -o runs/quick
Killing a sweep loses nothing already scored: run the same command again to resume.`,
    )
    .action(async (o: SweepCli) => {
      const config = configOf(o);
      const ac = new AbortController();
      const onSigint = () => ac.abort();
      process.once("SIGINT", onSigint);
      const bar = progressReporter();
      try {
        const res = await sweepToDir(config, resolve(o.out), {
          signal: ac.signal,
          reuse: o.reuse,
          ...(o.threads ? { threads: o.threads } : {}),
          onProgress: (done, total) => bar({ label: "sweep", done, total }),
        });
        bar.end();
        const s = res.stats;
        if (o.json) {
          process.stdout.write(
            `${JSON.stringify({ dir: res.dir, stats: s, data: res.data }, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v), 2)}\n`,
          );
          return;
        }
        process.stdout.write(summaryTable(res.data));
        process.stdout.write(
          `${s.computed} cells computed, ${s.skipped} resumed, ${s.forwards} forwards${s.reused ? " (prefix reused)" : ""}; run folder ${res.dir}\n`,
        );
      } catch (e) {
        bar.end();
        if ((e as Error).name === "AbortError") {
          process.stderr.write(
            `steerlab: sweep interrupted; everything scored is in ${resolve(o.out)}; rerun the same command to resume\n`,
          );
          process.exitCode = 130;
          return;
        }
        throw e;
      } finally {
        process.off("SIGINT", onSigint);
      }
    });
}
