/** `steerlab sweep`: run (or resume) a grid over r_e x tasks into a run folder, from a config file or flags. */
import { basename, resolve } from "node:path";
import { type Command, Option } from "commander";
import { DEFAULT_QUEUE_NAME } from "../../distrib/queue.js";
import { SteerlabError } from "../../errors.js";
import { parseShard } from "../../eval/sweep-chunks.js";
import { loadSweepConfig, parseCoeffs, parseSweepConfig, type SweepConfig } from "../../eval/sweep-config.js";
import { sweepToDir } from "../../eval/sweep-plan.js";
import { TASK_KINDS } from "../../eval/tasks.js";
import { BACKENDS } from "../../model/open.js";
import type { SweepData } from "../../report/types.js";
import { batchSizeOption, collect, int, LIMITS, layerSpec, threadsOption } from "../options.js";
import { progressReporter } from "../progress.js";
import { onStopSignals, signalExitCode } from "../signals.js";
import { warnRecovery } from "../store-notes.js";
import { type QueueCli, queuedSweep } from "./sweep-queue.js";

export interface SweepCli extends QueueCli {
  config?: string;
  model?: string;
  backend?: string;
  threads?: number;
  vector: string[];
  layers: string[];
  coeffs?: string;
  task: string[];
  batchSize?: number;
  diagnostics: boolean;
  reuse: boolean;
  paper?: boolean;
  coeffUnits?: "absolute" | "relative";
  json?: boolean;
  shard?: string;
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
      ? parseSweepConfig({ ...strip(base), ...flags }, base.baseDir ?? process.cwd(), o.config)
      : {}),
  };
}

/** A validated config back to the raw keys parseSweepConfig accepts. */
function strip(c: SweepConfig): Record<string, unknown> {
  const { baseDir: _b, file: _f, ...rest } = c;
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
    .addOption(
      new Option(
        "--backend <name>",
        "compute backend (default onnxruntime: every cell of a run on one engine)",
      ).choices(BACKENDS),
    )
    .option("--threads <n>", "compute threads (default: all cores)", threadsOption)
    .option(
      "--vector <file>",
      "vector file (.safetensors, or a .gguf control vector), or random:<seed> (repeatable)",
      collect,
      [],
    )
    .option(
      "--layers <spec>",
      'layer set to steer, e.g. "8..15" or "-5..-1" (repeatable: one sweep axis value each)',
      (v: string, prev: string[]) => collect(layerSpec("layers")(v), prev),
      [],
    )
    .option("--coeffs <grid>", "r_e grid: start:stop:step or a,b,c")
    .option("--task <kind:file[:id]>", `task (repeatable); kind: ${TASK_KINDS.join(", ")}`, collect, [])
    .option("--batch-size <n>", "prompts per forward", batchSizeOption)
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
    .option(
      "--shard <k/N>",
      "run only share k of N of the chunks (no infrastructure); merge the N folders after",
    )
    .option(
      "--queue <redis-url>",
      "enqueue the chunks on a Redis job queue for `steerlab worker`s and collect them",
    )
    .option("--queue-name <name>", `queue mode: queue name (default ${DEFAULT_QUEUE_NAME})`)
    .option(
      "--attempts <n>",
      "queue mode: attempts per chunk before it is reported failed (default 3)",
      int("attempts", 1, LIMITS.attempts),
    )
    .option("--no-wait", "queue mode: enqueue and return; rerun the same command to collect")
    .option(
      "--report <dir>",
      "queue mode: where the report goes when the last chunk lands (default <out>/report)",
    )
    .addHelpText(
      "after",
      `
Examples:
  steerlab sweep --config exp.yaml -o runs/exp
  steerlab sweep -m ./model --vector refusal.safetensors --layers 8..15 --coeffs -2:2:0.5 \\
    --task mcq:mmlu.csv --task behavior-logprob:harmful.csv -o runs/quick
  steerlab sweep --config exp.yaml --shard 2/4 -o runs/exp-2      # one machine's share; then steerlab merge
  steerlab sweep --config exp.yaml --queue redis://host:6379 -o runs/exp   # with steerlab worker on each machine
Killing a sweep loses nothing already scored: run the same command again to resume.
A run folder is locked while a sweep writes it: a second sweep on it is refused (a killed sweep's lock is taken
over). Resuming after the model's weights changed is refused: use a new -o folder to start fresh.`,
    )
    .action(async (o: SweepCli) => {
      const config = configOf(o);
      if (o.queue) {
        if (o.shard !== undefined)
          throw new SteerlabError("bad_input", "--shard and --queue exclude each other", {
            field: "shard",
            hint: "the queue hands chunks to workers itself",
          });
        return queuedSweep(config, o);
      }
      const shard = o.shard !== undefined ? parseShard(o.shard) : undefined;
      const ac = new AbortController();
      let stoppedBy: NodeJS.Signals = "SIGINT";
      const offSignals = onStopSignals((signal) => {
        stoppedBy = signal;
        ac.abort();
      });
      const bar = progressReporter();
      try {
        const res = await sweepToDir(config, resolve(o.out), {
          signal: ac.signal,
          reuse: o.reuse,
          ...(shard ? { shard } : {}),
          ...(o.threads ? { threads: o.threads } : {}),
          onProgress: (done, total) => bar({ label: "sweep", done, total }),
          onRecovery: warnRecovery,
        });
        bar.end();
        const s = res.stats;
        if (o.json) {
          process.stdout.write(
            `${JSON.stringify({ dir: res.dir, stats: s, data: res.data, recovery: res.recovery }, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v), 2)}\n`,
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
            `steerlab: sweep stopped by ${stoppedBy}; everything scored is in ${resolve(o.out)} (lock released); rerun the same command to resume\n`,
          );
          process.exitCode = signalExitCode(stoppedBy);
          return;
        }
        throw e;
      } finally {
        offSignals();
      }
    });
}
