/**
 * Curves of a metric against r_e, read from the files people have: the paper's JSON result files
 * (`{behavior_x_mean, behavior_x_std}`, `{p_mean, p_std, p_mean_relative, p_std_relative}`), a JSON list or
 * columns of (r_e, value[, std]), or a CSV of the same. `fitCurve` fits the laws that belong to the curve's kind.
 */
import { parse } from "csv-parse/sync";
import { SteerlabError } from "../errors.js";
import { readTextFile } from "../io/files.js";
import {
  fitCorollary,
  fitLocalLinear,
  fitLocalQuadratic,
  fitTanh,
  type LawFit,
  type LawKind,
} from "./laws.js";

/** What a curve measures, which decides the laws fitted to it. */
export type CurveKind = "behavior" | "helpfulness-full" | "helpfulness-ad" | "generic";

export interface Curve {
  readonly name: string;
  readonly kind: CurveKind;
  /** r_e, ascending. */
  readonly r: readonly number[];
  readonly value: readonly number[];
  /** Spread over prompts at each r_e (std, not standard error) when the file has it. */
  readonly std?: readonly number[];
  readonly source?: string;
}

type Num = Record<string, unknown>;

function bad(
  file: string,
  message: string,
  extra: { field?: string; expected?: string; got?: string } = {},
): SteerlabError {
  return new SteerlabError("bad_file", message, { file, ...extra });
}

/** `{ "r": value }` map to sorted arrays; every key and value must be a finite number. */
function fromMap(file: string, field: string, m: unknown): { r: number[]; v: number[] } {
  if (!m || typeof m !== "object" || Array.isArray(m))
    throw bad(file, "expected an object of r_e -> value", { field });
  const pairs = Object.entries(m as Num).map(([k, v]) => {
    const r = Number(k);
    if (!Number.isFinite(r) || typeof v !== "number" || !Number.isFinite(v)) {
      throw bad(file, "entry is not a number pair", { field: `${field}.${k}`, got: JSON.stringify(v) });
    }
    return [r, v] as const;
  });
  pairs.sort((a, b) => a[0] - b[0]);
  return { r: pairs.map((p) => p[0]), v: pairs.map((p) => p[1]) };
}

function stdFor(file: string, field: string, m: unknown, r: readonly number[]): number[] | undefined {
  if (m === undefined) return undefined;
  const s = fromMap(file, field, m);
  if (s.r.length !== r.length || s.r.some((x, i) => Math.abs(x - r[i]!) > 1e-9)) {
    throw bad(file, "std has other r_e values than the mean", { field });
  }
  return s.v;
}

/** Kind of a generic curve from its values: negative values mean a behaviour in [-1, 1], [0, 1] a probability. */
function guessKind(v: readonly number[]): CurveKind {
  const lo = Math.min(...v);
  const hi = Math.max(...v);
  if (lo < 0 && lo >= -1 && hi <= 1) return "behavior";
  if (lo >= 0 && hi <= 1) return "helpfulness-full";
  return "generic";
}

const R_KEYS = ["r_e", "r", "coeff", "coefficient", "x"];
const V_KEYS = ["value", "y", "mean", "b", "p"];
const S_KEYS = ["std", "sd", "stderr", "se"];

function pick(keys: readonly string[], cands: readonly string[]): string | undefined {
  const lower = keys.map((k) => k.toLowerCase());
  for (const c of cands) {
    const i = lower.indexOf(c);
    if (i >= 0) return keys[i];
  }
  return undefined;
}

function fromRows(
  file: string,
  name: string,
  rows: { r: number; v: number; s?: number }[],
  kind?: CurveKind,
): Curve {
  rows.sort((a, b) => a.r - b.r);
  const hasStd = rows.every((x) => x.s !== undefined);
  const value = rows.map((x) => x.v);
  return {
    name,
    kind: kind ?? guessKind(value),
    r: rows.map((x) => x.r),
    value,
    ...(hasStd ? { std: rows.map((x) => x.s!) } : {}),
    source: file,
  };
}

/** Parse the JSON forms listed at the top of this file. */
export function parseCurveJson(text: string, file: string, name = file): Curve[] {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw bad(file, `invalid JSON: ${(e as Error).message}`);
  }
  if (Array.isArray(j)) {
    const rows = j.map((o, i) => {
      if (!o || typeof o !== "object") throw bad(file, "expected an object per point", { field: `[${i}]` });
      const keys = Object.keys(o);
      const rk = pick(keys, R_KEYS);
      const vk = pick(keys, V_KEYS);
      const sk = pick(keys, S_KEYS);
      const rec = o as Num;
      if (!rk || !vk || typeof rec[rk] !== "number" || typeof rec[vk] !== "number") {
        throw bad(file, "point needs numeric r_e and value", {
          field: `[${i}]`,
          expected: "{r_e, value[, std]}",
          got: JSON.stringify(o),
        });
      }
      return { r: rec[rk] as number, v: rec[vk] as number, ...(sk ? { s: Number(rec[sk]) } : {}) };
    });
    return [fromRows(file, name, rows)];
  }
  if (!j || typeof j !== "object") throw bad(file, "expected an object or an array of points");
  const o = j as Num;
  const behaviorKey = Object.keys(o).find((k) => /^behavior_.+_mean$/.test(k));
  if (behaviorKey) {
    const m = fromMap(file, behaviorKey, o[behaviorKey]);
    const std = stdFor(
      file,
      behaviorKey.replace(/_mean$/, "_std"),
      o[behaviorKey.replace(/_mean$/, "_std")],
      m.r,
    );
    return [{ name, kind: "behavior", r: m.r, value: m.v, ...(std ? { std } : {}), source: file }];
  }
  if ("p_mean" in o || "p_mean_relative" in o) {
    const out: Curve[] = [];
    for (const [mk, sk, kind, suffix] of [
      ["p_mean", "p_std", "helpfulness-full", "P(correct)"],
      ["p_mean_relative", "p_std_relative", "helpfulness-ad", "P(correct | A-D)"],
    ] as const) {
      if (!(mk in o)) continue;
      const m = fromMap(file, mk, o[mk]);
      const std = stdFor(file, sk, o[sk], m.r);
      out.push({
        name: `${name} ${suffix}`,
        kind,
        r: m.r,
        value: m.v,
        ...(std ? { std } : {}),
        source: file,
      });
    }
    return out;
  }
  const rk = pick(Object.keys(o), R_KEYS);
  const vk = pick(Object.keys(o), V_KEYS);
  if (rk && vk && Array.isArray(o[rk]) && Array.isArray(o[vk])) {
    const rs = o[rk] as unknown[];
    const vs = o[vk] as unknown[];
    const sk = pick(Object.keys(o), S_KEYS);
    const ss = sk && Array.isArray(o[sk]) ? (o[sk] as unknown[]) : undefined;
    if (rs.length !== vs.length || (ss && ss.length !== rs.length))
      throw bad(file, "columns have different lengths", { field: vk });
    const rows = rs.map((r, i) => {
      const v = vs[i];
      if (typeof r !== "number" || typeof v !== "number")
        throw bad(file, "non-numeric entry", { field: `${vk}[${i}]` });
      return { r, v, ...(ss ? { s: Number(ss[i]) } : {}) };
    });
    const kind = typeof o.kind === "string" ? (o.kind as CurveKind) : undefined;
    return [fromRows(file, name, rows, kind)];
  }
  throw bad(file, "unrecognised curve JSON", {
    expected: "behavior_<x>_mean, p_mean / p_mean_relative, [{r_e, value}] or {r_e: [...], value: [...]}",
    got: `keys ${Object.keys(o).slice(0, 6).join(", ")}`,
  });
}

/** Parse a CSV of r_e, value[, std], with or without a header row. Errors name the line. */
export function parseCurveCsv(text: string, file: string, name = file): Curve[] {
  let records: string[][];
  try {
    records = parse(text, { skip_empty_lines: true, trim: true, relax_column_count: false }) as string[][];
  } catch (e) {
    const err = e as Error & { lines?: number };
    throw bad(file, `invalid CSV: ${err.message}`, err.lines ? { field: `line ${err.lines}` } : {});
  }
  if (records.length === 0) throw bad(file, "empty CSV");
  let ri = 0;
  let vi = 1;
  let si: number | undefined = records[0]!.length >= 3 ? 2 : undefined;
  let start = 0;
  if (records[0]!.some((c) => c !== "" && !Number.isFinite(Number(c)))) {
    const header = records[0]!;
    const rk = pick(header, R_KEYS);
    const vk = pick(header, V_KEYS);
    if (!rk || !vk)
      throw bad(file, "CSV header needs r_e and value columns", { field: "line 1", got: header.join(",") });
    ri = header.indexOf(rk);
    vi = header.indexOf(vk);
    const sk = pick(header, S_KEYS);
    si = sk ? header.indexOf(sk) : undefined;
    start = 1;
  }
  const rows = records.slice(start).map((rec, k) => {
    const line = k + start + 1;
    const r = Number(rec[ri]);
    const v = Number(rec[vi]);
    const s = si !== undefined ? Number(rec[si]) : undefined;
    if (!Number.isFinite(r) || !Number.isFinite(v) || (s !== undefined && !Number.isFinite(s))) {
      throw bad(file, "non-numeric value", { field: `line ${line}`, got: rec.join(",") });
    }
    return { r, v, ...(s !== undefined ? { s } : {}) };
  });
  return [fromRows(file, name, rows)];
}

/** Read a curve file (JSON or CSV, by extension, else by content). */
export async function loadCurve(path: string): Promise<Curve[]> {
  const text = readTextFile(path, "curve file");
  const name = path
    .split("/")
    .pop()!
    .replace(/\.(json|csv)$/i, "");
  const isJson = /\.json$/i.test(path) || (!/\.csv$/i.test(path) && /^\s*[[{]/.test(text));
  return isJson ? parseCurveJson(text, path, name) : parseCurveCsv(text, path, name);
}

export interface CurveFitOptions {
  /** r range of the tanh fit. Default: all points. The paper-data README uses [-3, 5] (PAPER_TANH_RANGE). */
  tanhRange?: readonly [number, number];
  /** r range of the Corollary-1 fits. Default: all points. The authors fit [-5, 5] (PAPER_COROLLARY_RANGE). */
  corollaryRange?: readonly [number, number];
  /** Weight points by 1/se^2 with se = std / sqrt(n) (n prompts per point). Default unweighted. */
  weightN?: number;
  /** Half widths of the local fits; default scaled to the grid (localHalfWidths). */
  linearHalfWidth?: number;
  quadraticHalfWidth?: number;
}

/** The README's fitting range for behaviour curves of the paper. */
export const PAPER_TANH_RANGE: readonly [number, number] = [-3, 5];
/** The authors' range of the Corollary-1 fits (their plotting notebook fits r_e in [-5, 5]). */
export const PAPER_COROLLARY_RANGE: readonly [number, number] = [-5, 5];

/** Everything `fit --paper` sets: the published protocol. */
export const PAPER_FIT: CurveFitOptions = {
  tanhRange: PAPER_TANH_RANGE,
  corollaryRange: PAPER_COROLLARY_RANGE,
  linearHalfWidth: 1,
  quadraticHalfWidth: 2.5,
};

/**
 * Default half widths of the local fits for a grid: the paper's (1 for linear, 2.5 for quadratic: 5 steps of
 * its grids of step 0.2 and 0.5, 11 points each), kept between 2 and 5 grid steps (linear) and 3 and 5 steps
 * (quadratic), so a coarse grid still gives 5 / 7 points and a fine grid in other units (e.g. r_e relative to
 * the residual norm) stays near 0. The step is the median spacing of the grid.
 */
export function localHalfWidths(r: readonly number[]): { linear: number; quadratic: number } {
  const xs = [...new Set(r)].sort((a, b) => a - b);
  const gaps = xs.slice(1).map((x, i) => x - xs[i]!);
  gaps.sort((a, b) => a - b);
  const step = gaps.length ? gaps[gaps.length >> 1]! : 0;
  if (!(step > 0)) return { linear: 1, quadratic: 2.5 };
  const w = (lo: number, paper: number) => Math.min(Math.max(paper, lo * step), 5 * step) * (1 + 1e-9);
  return { linear: w(2, 1), quadratic: w(3, 2.5) };
}

export interface CurveFits {
  readonly curve: Curve;
  /** Global law (tanh or Corollary 1) when the kind has one and it could be fitted. */
  readonly law?: LawFit;
  /** Local linear (behaviour) or quadratic (helpfulness) fit near r = 0; both for generic curves. */
  readonly local: readonly LawFit[];
  /** Laws that could not be fitted, each with why; one failing never removes another. */
  readonly failed: readonly { readonly kind: LawKind; readonly message: string }[];
}

/**
 * Fit the laws of the curve's kind, each on its own: behaviour -> tanh + local linear; helpfulness ->
 * Corollary 1 + local quadratic; generic -> local linear + quadratic.
 */
export function fitCurve(c: Curve, o: CurveFitOptions = {}): CurveFits {
  const sigma = o.weightN && c.std ? c.std.map((s) => s / Math.sqrt(o.weightN!)) : undefined;
  const base = { ...(sigma ? { sigma } : {}) };
  const hw = localHalfWidths(c.r);
  const failed: { kind: LawKind; message: string }[] = [];
  const attempt = (kind: LawKind, f: () => LawFit): LawFit | undefined => {
    try {
      return f();
    } catch (e) {
      failed.push({ kind, message: (e as Error).message });
      return undefined;
    }
  };
  const lin = () =>
    attempt("poly1", () =>
      fitLocalLinear(c.r, c.value, { ...base, halfWidth: o.linearHalfWidth ?? hw.linear }),
    );
  const quad = () =>
    attempt("poly2", () =>
      fitLocalQuadratic(c.r, c.value, { ...base, halfWidth: o.quadraticHalfWidth ?? hw.quadratic }),
    );
  const tanhOpts = { ...base, ...(o.tanhRange ? { range: o.tanhRange } : {}) };
  const corOpts = { ...base, ...(o.corollaryRange ? { range: o.corollaryRange } : {}) };
  let law: LawFit | undefined;
  let local: (LawFit | undefined)[];
  switch (c.kind) {
    case "behavior":
      law = attempt("tanh", () => fitTanh(c.r, c.value, tanhOpts));
      local = [lin()];
      break;
    case "helpfulness-full":
    case "helpfulness-ad": {
      const kind = c.kind === "helpfulness-full" ? "corollary-full" : "corollary-ad";
      law = attempt(kind, () => fitCorollary(c.r, c.value, kind, corOpts));
      local = [quad()];
      break;
    }
    case "generic":
      local = [lin(), quad()];
  }
  return {
    curve: c,
    ...(law ? { law } : {}),
    local: local.filter((f): f is LawFit => f !== undefined),
    failed,
  };
}
