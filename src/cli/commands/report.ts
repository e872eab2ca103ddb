/** `steerlab report`: JSON, CSV and a self-contained HTML report of a sweep run folder or of the paper's curves. */
import { existsSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { type Command, Option } from "commander";
import { SteerlabError } from "../../errors.js";
import { RUN_FILE } from "../../eval/store.js";
import { loadSweepConfig } from "../../eval/sweep-config.js";
import { readRunReport } from "../../eval/sweep-plan.js";
import { type BuildOptions, buildReport, REGIME_MIN_R2 } from "../../report/build.js";
import { PAPER_MODELS, PAPER_VECTORS, reportFromPaperData } from "../../report/paper.js";
import type { SweepReport } from "../../report/types.js";
import { writeReport } from "../../report/writers.js";
import { type FitCli, fitOptionsOf, float, withFitOptions } from "../options.js";
import { regimeLine } from "../regime-line.js";
import { storeNotes } from "../store-notes.js";

interface ReportCli extends FitCli {
  config?: string;
  out: string;
  paperModel: (typeof PAPER_MODELS)[number];
  paperVector: (typeof PAPER_VECTORS)[number];
  budget?: number;
  lambda?: number;
  regimeSource?: "auto" | "fit" | "data";
  regimeMinR2?: number;
  weighted?: boolean;
  json?: boolean;
}

export function registerReport(program: Command): void {
  const cmd = program
    .command("report")
    .description(
      "write report.json, CSV tables and report.html (SVG plots) for a sweep run or the paper's data",
    )
    .argument("<dir>", "a sweep run folder (with run.json) or the paper-data folder")
    .requiredOption("-o, --out <dir>", "output folder")
    .addOption(
      new Option("--paper-model <name>", "paper data: which model")
        .choices(PAPER_MODELS)
        .default(PAPER_MODELS[0]),
    )
    .addOption(
      new Option("--paper-vector <name>", "paper data: which vector")
        .choices(PAPER_VECTORS)
        .default(PAPER_VECTORS[0]),
    )
    .option(
      "--budget <loss>",
      "helpfulness loss allowed for the efficient regime (default 0.02)",
      float("budget", { min: 0 }),
    )
    .option(
      "--lambda <w>",
      "weight of helpfulness loss against alignment gain (default 1)",
      float("lambda", { min: 0 }),
    )
    .addOption(
      new Option(
        "--regime-source <s>",
        "efficient regime from each curve's fitted law when it fits well, else its data (auto); or force one",
      )
        .choices(["auto", "fit", "data"])
        .default("auto"),
    )
    .option(
      "--regime-min-r2 <r2>",
      `R^2 a law needs for the auto regime source to use it (default ${REGIME_MIN_R2})`,
      float("regime-min-r2", { max: 1 }),
    )
    .option("--weighted", "weight fits by 1/se^2")
    .option("--config <file>", "the run's sweep config: its fit block sets the fit ranges and local windows");
  withFitOptions(cmd)
    .option("--json", "print the written paths as JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  steerlab report runs/exp -o out/exp\n  steerlab report ../shared/paper-data -o out/paper --paper-model Llama-2-13b-chat",
    )
    .action(async (dir: string, o: ReportCli) => {
      const fit = fitOptionsOf(o, o.config ? (loadSweepConfig(o.config).fit ?? {}) : {});
      const build: BuildOptions = {
        ...(o.weighted ? { weighted: true } : {}),
        ...(Object.keys(fit).length ? { fit } : {}),
        regime: {
          ...(o.budget !== undefined ? { budget: o.budget } : {}),
          ...(o.lambda !== undefined ? { lambda: o.lambda } : {}),
          ...(o.regimeSource ? { source: o.regimeSource } : {}),
          ...(o.regimeMinR2 !== undefined ? { minR2: o.regimeMinR2 } : {}),
        },
      };
      let report: SweepReport;
      if (existsSync(join(dir, RUN_FILE))) {
        const run = readRunReport(dir);
        for (const note of [...storeNotes(run.damage, dir), ...(run.data.warnings ?? [])])
          process.stderr.write(`steerlab: warning: ${note}\n`);
        report = buildReport(run.data, build);
      } else if (existsSync(dir) && readdirSync(dir).some((f) => /^behavior_\w+_.+\.json$/.test(f)))
        report = await reportFromPaperData(dir, { model: o.paperModel, vector: o.paperVector, build });
      else
        throw new SteerlabError("not_found", "not a sweep run folder nor the paper-data folder", {
          file: dir,
          expected: `${RUN_FILE} (from steerlab sweep) or behavior_*.json files`,
        });
      if (report.tasks.length === 0)
        throw new SteerlabError("bad_input", "the run has no results yet", {
          file: dir,
          hint: "run steerlab sweep first",
        });
      const written = await writeReport(report, resolve(o.out));
      if (o.json) {
        process.stdout.write(`${JSON.stringify(written, null, 2)}\n`);
        return;
      }
      process.stdout.write(`${Object.values(written).join("\n")}\n`);
      const g = report.regime;
      if (g) process.stdout.write(`${regimeLine(g)}\n`);
    });
}
