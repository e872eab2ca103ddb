/** `steerlab fit`: fit the paper's laws to curve files (the paper's JSON, JSON points, CSV). */
import type { Command } from "commander";
import { SteerlabError } from "../../errors.js";
import { type CurveFitOptions, fitCurve, loadCurve, PAPER_TANH_RANGE } from "../../theory/curves.js";
import type { LawFit } from "../../theory/laws.js";

function range(name: string) {
  return (v: string): [number, number] => {
    const m = /^(-?[\d.]+):(-?[\d.]+)$/.exec(v.trim());
    if (!m || !(Number(m[1]) < Number(m[2])))
      throw new SteerlabError("bad_input", `option --${name} must be lo:hi with lo < hi`, {
        field: name,
        got: v,
      });
    return [Number(m[1]), Number(m[2])];
  };
}

function fmtFit(f: LawFit): string {
  const ps = f.names.map(
    (n, i) =>
      `${n}=${f.values[i]!.toPrecision(4)} [${f.ci[i]![0].toPrecision(3)}, ${f.ci[i]![1].toPrecision(3)}]`,
  );
  const sign = f.kind === "tanh" && f.sign === -1 ? " (negated curve)" : "";
  return `${f.kind.padEnd(15)} ${ps.join("  ")}  R^2=${f.r2.toFixed(4)}  n=${f.n}  r in [${f.range[0]}, ${f.range[1]}]${sign}`;
}

export function registerFit(program: Command): void {
  program
    .command("fit")
    .description(
      "fit tanh (behaviour), Corollary 1 (helpfulness) and local linear/quadratic laws to curve files",
    )
    .argument(
      "<files...>",
      "curve files: the paper's JSON results, JSON [{r_e, value, std?}] or CSV r_e,value[,std]",
    )
    .option("--tanh-range <lo:hi>", "r_e range of the tanh fit (default: all points)", range("tanh-range"))
    .option(
      "--corollary-range <lo:hi>",
      "r_e range of the Corollary-1 fits (default: all points)",
      range("corollary-range"),
    )
    .option("--paper", `the paper-data README's protocol: tanh on r_e in [${PAPER_TANH_RANGE.join(", ")}]`)
    .option("--weighted", "weight points by 1/se^2 (se = std / sqrt(n))")
    .option("--n <n>", "prompts per point, for --weighted", (v) => Number(v), 100)
    .option("--json", "print JSON")
    .addHelpText(
      "after",
      "\nExample:\n  steerlab fit ../shared/paper-data/behavior_harmful_Llama-2-13b_harmfulness.json --paper",
    )
    .action(
      async (
        files: string[],
        o: {
          tanhRange?: [number, number];
          corollaryRange?: [number, number];
          paper?: boolean;
          weighted?: boolean;
          n: number;
          json?: boolean;
        },
      ) => {
        const fo: CurveFitOptions = {
          ...(o.tanhRange ? { tanhRange: o.tanhRange } : o.paper ? { tanhRange: PAPER_TANH_RANGE } : {}),
          ...(o.corollaryRange ? { corollaryRange: o.corollaryRange } : {}),
          ...(o.weighted ? { weightN: o.n } : {}),
        };
        const out: {
          file: string;
          curve: string;
          kind: string;
          points: number;
          fits: LawFit[];
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
              });
            } catch (e) {
              out.push({
                file,
                curve: c.name,
                kind: c.kind,
                points: c.r.length,
                fits: [],
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
          if (c.error) process.stdout.write(`  fit failed: ${c.error}\n`);
        }
        if (out.some((c) => c.error)) process.exitCode = 1;
      },
    );
}
