/**
 * `units.json` beside a run's store: the residual norm per variant that a grid value is multiplied by under
 * `coeffUnits: relative` (r_e in units of ||h||). The sweep writes it when it plans the run; the report reads it
 * to label its axes, and `steerlab merge` carries it into the merged folder.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { SteerlabError } from "../errors.js";
import { readTextFile } from "../io/files.js";
import { writeFileAtomic } from "../io/write-atomic.js";

export const UNITS_FILE = "units.json";

/** Variant id -> mean residual norm, or undefined when the run is in absolute units (no file). */
export function readRunUnits(dir: string): Record<string, number> | undefined {
  const f = join(dir, UNITS_FILE);
  if (!existsSync(f)) return undefined;
  const hint = "rerun the sweep: it writes units.json again when it plans the run";
  let units: { residNorm?: unknown };
  try {
    units = JSON.parse(readTextFile(f, "units file"));
  } catch (e) {
    if (e instanceof SteerlabError) throw e;
    throw new SteerlabError("bad_file", `the units file is not JSON: ${(e as Error).message}`, {
      file: f,
      hint,
    });
  }
  const n = units?.residNorm;
  if (
    !n ||
    typeof n !== "object" ||
    Array.isArray(n) ||
    !Object.values(n).every((x) => typeof x === "number" && x > 0 && Number.isFinite(x))
  )
    throw new SteerlabError(
      "bad_file",
      "the units file has no valid residNorm (a positive number per variant)",
      {
        file: f,
        hint,
      },
    );
  return n as Record<string, number>;
}

export function writeRunUnits(dir: string, residNorm: Record<string, number>): void {
  writeFileAtomic(
    join(dir, UNITS_FILE),
    `${JSON.stringify({ coeffUnits: "relative", residNorm }, null, 2)}\n`,
    { hint: "rerun the same command to resume" },
  );
}
