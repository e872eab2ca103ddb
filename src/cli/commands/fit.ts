/** `steerlab fit`: fit the paper's laws to curve files (the paper's JSON, JSON points, CSV). */
import type { Command } from "commander";
import { type CurveFitOptions, fitCurve, loadCurve } from "../../theory/curves.js";
import type { LawFit } from "../../theory/laws.js";
import { type FitCli, fitOptionsOf, int, withFitOptions } from "../options.js";

export function fmtFit(f: LawFit): string {
  const ps = f.names.map(
    (n, i) =>
      `${n}=${f.values[i]!.toPrecision(4)} [${f.ci[i]![0].toPrecision(3)}, ${f.ci[i]![1].toPrecision(3)}]`,
  );
  const sign = f.kind === "tanh" && f.sign === -1 ? " (negated curve)" : "";
  const r2 = Number.isFinite(f.r2) ? f.r2.toFixed(4) : "undefined (constant data)";
  const notes = f.notes?.length ? `\n${f.notes.map((n) => `${"".padEnd(18)}note: ${n}`).join("\n")}` : "";
  return `${f.kind.padEnd(15)} ${ps.join("  ")}  R^2=${r2}  n=${f.n}  r in [${f.range[0]}, ${f.range[1]}]${sign}${f.converged ? "" : "  (did not converge)"}${notes}`;
}

export function registerFit(program: Command): void {
  const cmd = program
    .command("fit")
    .description(
      "fit tanh (behaviour), Corollary 1 (helpfulness) and local linear/quadratic laws to curve files",
    )
    .argument(
      "<files...>",
      "curve files: the paper's JSON results, JSON [{r_e, value, std?}] or CSV r_e,value[,std]",
    );
  withFitOptions(cmd)
    .option("--weighted", "weight points by 1/se^2 (se = std / sqrt(n))")
    .option("--n <n>", "prompts per point, for --weighted", int("n", 1), 100)
    .option("--json", "print JSON")
    .addHelpText(
      "after",
      "\nExample:\n  steerlab fit ../shared/paper-data/behavior_harmful_Llama-2-13b_harmfulness.json --paper",
    )
    .action(
      async (
        files: string[],
        o: FitCli & {
          weighted?: boolean;
          n: number;
          json?: boolean;
        },
      ) => {
        const fo: CurveFitOptions = { ...fitOptionsOf(o), ...(o.weighted ? { weightN: o.n } : {}) };
        const out: {
          file: string;
          curve: string;
          kind: string;
          points: number;
          fits: LawFit[];
          failed: { kind: string; message: string }[];
          error?: string;
        }[] = [];
        for (const file of files) {
          for (const c of await loadCurve(file)) {
            try {
              const f = fitCurve(c, fo);
              out.push({
                file,
                curve: c.name,
                kind: c.kind,
                points: c.r.length,
                fits: [...(f.law ? [f.law] : []), ...f.local],
                failed: [...f.failed],
              });
            } catch (e) {
              out.push({
                file,
                curve: c.name,
                kind: c.kind,
                points: c.r.length,
                fits: [],
                failed: [],
                error: (e as Error).message,
              });
            }
          }
        }
        if (o.json) {
          process.stdout.write(
            `${JSON.stringify(out, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v), 2)}\n`,
          );
          return;
        }
        for (const c of out) {
          process.stdout.write(`${c.curve} [${c.kind}, ${c.points} points]\n`);
          for (const f of c.fits) process.stdout.write(`  ${fmtFit(f)}\n`);
          for (const f of c.failed) process.stdout.write(`  ${f.kind.padEnd(15)} not fitted: ${f.message}\n`);
          if (c.error) process.stdout.write(`  fit failed: ${c.error}\n`);
        }
        if (out.some((c) => c.error || c.fits.length === 0)) process.exitCode = 1;
      },
    );
}
