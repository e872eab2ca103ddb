/**
 * Sweep configs: a YAML or JSON file (or the same object built from CLI flags), validated once, collecting
 * every problem into one error. The identity of a run (what its result store is keyed on) is the config with
 * paths made absolute and the contents of its data and vector files hashed, minus run-time knobs that do not
 * change the numbers (batch size, prefix reuse).
 *
 *   model: ./tiny-llama          # HF folder or .gguf
 *   backend: reference           # or onnxruntime (default)
 *   vectors: [{ name: refusal, source: refusal.safetensors }]   # or source: random:<seed>
 *   layers: ["-5..-1"]           # layer sets (each a sweep axis value); default: every layer of the vector
 *   coeffs: -2:2:0.5             # or a list
 *   tasks: [{ kind: mcq, data: mmlu.csv }, { kind: behavior-logprob, data: harmful.csv }]
 *   protocol: paper              # optional: the paper's defaults (mcq helpfulness from a generated letter)
 *   coeffUnits: relative         # optional: r_e in units of the residual norm at the steered layers
 *   fit: { tanhRange: [-3, 5], linearHalfWidth: 1 }   # optional: the report's fit ranges (not in the identity)
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { SteerlabError } from "../errors.js";
import { checkFile, readTextFile } from "../io/files.js";
import { BACKENDS, type Backend } from "../model/open.js";
import { type CurveFitOptions, parseFitOptions } from "../theory/curves.js";
import { parseTaskSpec, type TaskSpec } from "./tasks.js";

export interface VectorSpec {
  name: string;
  /** A vector file (.safetensors, or a .gguf control vector) or "random:<seed>". */
  source: string;
}

export interface SweepConfig {
  model: string;
  backend?: Backend;
  vectors: VectorSpec[];
  /** Layer sets, each a layer list ("8..15", "-5..-1", "3,4"); omitted: all layers the vector has. */
  layers?: string[];
  /** The r_e grid. */
  coeffs: number[];
  tasks: TaskSpec[];
  /** Prompts per forward (default 8). Not part of the run identity. */
  batchSize?: number;
  /** Record A1/A3 diagnostics on mcq tasks (default true). */
  diagnostics?: boolean;
  /**
   * "absolute" (default): r_e is the coefficient on the unit vector, the paper's units. "relative": a grid
   * value c steers with r_e = c x the mean residual norm at the steered layers (measured on the unsteered task
   * prompts), so one grid transfers between models; the report shows both units.
   */
  coeffUnits?: "absolute" | "relative";
  /** Fit ranges and local windows the report uses for this run (not part of the run's identity). */
  fit?: CurveFitOptions;
  /** "paper": the published protocol's defaults (mcq helpfulness from a 16-token greedy generation). */
  protocol?: "paper";
  /** Folder relative paths are resolved against (the config file's folder). */
  baseDir?: string;
}

/** Most r_e values one sweep takes: each is a full pass over every task (the paper's grids have 41-51). */
export const MAX_COEFFS = 10_000;

/** "-2:2:0.5" (inclusive range), "-1,0,1" or a single number. Values are rounded to 1e-9 to keep keys stable. */
export function parseCoeffs(spec: string | number | readonly number[], field = "coeffs"): number[] {
  const round = (x: number) => Number(x.toFixed(9)) + 0; // + 0 turns -0 into 0
  if (typeof spec === "number") return [round(spec)];
  if (Array.isArray(spec)) {
    if (spec.length > MAX_COEFFS)
      throw new SteerlabError("bad_config", `too many coefficients (limit ${MAX_COEFFS})`, {
        field,
        got: `${spec.length} values`,
      });
    if (spec.length === 0 || spec.some((x) => typeof x !== "number" || !Number.isFinite(x)))
      throw new SteerlabError("bad_config", "coeffs must be finite numbers", { field });
    return [...new Set(spec.map(round))].sort((a, b) => a - b);
  }
  const s = String(spec).trim();
  const m = /^(-?[\d.]+(?:e-?\d+)?):(-?[\d.]+(?:e-?\d+)?):([\d.]+(?:e-?\d+)?)$/.exec(s);
  if (m) {
    const [a, b, step] = [Number(m[1]), Number(m[2]), Number(m[3])];
    if (!(step > 0) || !(b >= a) || !Number.isFinite(a) || !Number.isFinite(b))
      throw new SteerlabError("bad_config", "bad coefficient range", {
        field,
        expected: "start:stop:step with start <= stop, step > 0",
        got: s,
      });
    const n = Math.floor((b - a) / step + 1e-9);
    if (n + 1 > MAX_COEFFS)
      throw new SteerlabError("bad_config", `coefficient grid too large (limit ${MAX_COEFFS} values)`, {
        field,
        got: `${n + 1} values`,
      });
    return Array.from({ length: n + 1 }, (_, i) => round(a + i * step));
  }
  const parts = s.split(",", MAX_COEFFS + 1).map((x) => (x.trim() === "" ? Number.NaN : Number(x.trim())));
  if (parts.some((x) => !Number.isFinite(x)) || s === "")
    throw new SteerlabError("bad_config", "bad coefficient list", {
      field,
      expected: "start:stop:step or a,b,c",
      got: s,
    });
  return parseCoeffs(parts, field);
}

/** Validate a parsed config object (from YAML/JSON or flags). */
export function parseSweepConfig(raw: unknown, baseDir: string, file = "<flags>"): SweepConfig {
  const problems: string[] = [];
  if (!raw || typeof raw !== "object" || Array.isArray(raw))
    throw new SteerlabError("bad_config", "a sweep config is an object", { file });
  const o = raw as Record<string, unknown>;
  const known = [
    "model",
    "backend",
    "vectors",
    "vector",
    "layers",
    "coeffs",
    "tasks",
    "batchSize",
    "diagnostics",
    "protocol",
    "fit",
    "coeffUnits",
  ];
  for (const k of Object.keys(o))
    if (!known.includes(k)) problems.push(`${k}: unknown key (known: ${known.join(", ")})`);
  if (o.protocol !== undefined && o.protocol !== "paper") problems.push('protocol: "paper" or absent');
  const paper = o.protocol === "paper";
  const fit = parseFitOptions(o.fit, "fit", problems);
  if (o.coeffUnits !== undefined && o.coeffUnits !== "absolute" && o.coeffUnits !== "relative")
    problems.push("coeffUnits: absolute | relative");
  if (typeof o.model !== "string" || o.model === "") problems.push("model: expected a path");
  if (o.backend !== undefined && !(BACKENDS as readonly unknown[]).includes(o.backend))
    problems.push(`backend: ${BACKENDS.join(" | ")}`);
  const vraw = o.vectors ?? (o.vector !== undefined ? [o.vector] : undefined);
  const vectors: VectorSpec[] = [];
  if (!Array.isArray(vraw) || vraw.length === 0)
    problems.push('vectors: expected a list of { name, source } (or "vector: <path>")');
  else
    vraw.forEach((v, i) => {
      if (typeof v === "string")
        vectors.push({ name: v.startsWith("random:") ? v.replace(":", "") : `v${i}`, source: v });
      else if (v && typeof v === "object" && typeof (v as VectorSpec).source === "string") {
        const vs = v as VectorSpec;
        vectors.push({ name: typeof vs.name === "string" ? vs.name : `v${i}`, source: vs.source });
      } else problems.push(`vectors[${i}]: expected a path or { name, source }`);
    });
  if (new Set(vectors.map((v) => v.name)).size !== vectors.length)
    problems.push("vectors: names must be unique");
  let layers: string[] | undefined;
  if (o.layers !== undefined) {
    const l = Array.isArray(o.layers) ? o.layers : [o.layers];
    if (l.some((x) => typeof x !== "string" && typeof x !== "number"))
      problems.push('layers: a list of layer specs like "8..15"');
    else layers = l.map(String);
  }
  let coeffs: number[] = [];
  try {
    if (o.coeffs === undefined) problems.push("coeffs: expected start:stop:step or a list");
    else coeffs = parseCoeffs(o.coeffs as string | number[]);
  } catch (e) {
    problems.push(`coeffs: ${(e as Error).message}`);
  }
  const tasks: TaskSpec[] = [];
  if (!Array.isArray(o.tasks) || o.tasks.length === 0) problems.push("tasks: expected a non-empty list");
  else
    o.tasks.forEach((t, i) => {
      const s = parseTaskSpec(t, i, problems);
      // the paper reads helpfulness from a 16-token greedy generation
      if (s) tasks.push(paper && s.kind === "mcq" && !s.helpfulness ? { ...s, helpfulness: "generated" } : s);
    });
  if (new Set(tasks.map((t) => t.id)).size !== tasks.length) problems.push("tasks: ids must be unique");
  if (o.batchSize !== undefined && (!Number.isInteger(o.batchSize) || (o.batchSize as number) < 1))
    problems.push("batchSize: a positive integer");
  if (o.diagnostics !== undefined && typeof o.diagnostics !== "boolean")
    problems.push("diagnostics: true or false");
  if (problems.length) throw new SteerlabError("bad_config", "invalid sweep config", { file, problems });
  return {
    model: o.model as string,
    ...(o.backend ? { backend: o.backend as Backend } : {}),
    vectors,
    ...(layers ? { layers } : {}),
    coeffs,
    tasks,
    ...(o.batchSize !== undefined ? { batchSize: o.batchSize as number } : {}),
    ...(o.diagnostics !== undefined ? { diagnostics: o.diagnostics as boolean } : {}),
    ...(paper ? { protocol: "paper" as const } : {}),
    ...(fit ? { fit } : {}),
    ...(o.coeffUnits === "relative" ? { coeffUnits: "relative" as const } : {}),
    baseDir,
  };
}

/** Read a .yaml/.yml/.json config file. */
export function loadSweepConfig(path: string): SweepConfig {
  const text = readTextFile(path, "sweep config");
  let raw: unknown;
  try {
    raw = /\.json$/i.test(path) ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new SteerlabError("bad_config", `cannot parse sweep config: ${(e as Error).message}`, {
      file: path,
    });
  }
  return parseSweepConfig(raw, dirname(resolve(path)), path);
}

export function resolvePath(p: string, baseDir: string): string {
  return isAbsolute(p) ? p : resolve(baseDir, p);
}

function fileHash(path: string): string {
  if (!existsSync(path))
    throw new SteerlabError("not_found", "file named by the sweep config is missing", { file: path });
  checkFile(path, "data file");
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/**
 * What identifies a run (run.json): the model's path and fingerprint (model/fingerprint.ts, so weights replaced
 * at the same path are a different run), the backend, the vectors with the sha256 of their files, the layer
 * sets, the r_e grid, the tasks with the sha256 of their data files, and the diagnostics switch.
 */
export function runIdentity(c: SweepConfig, modelFingerprint: string): Record<string, unknown> {
  const base = c.baseDir ?? process.cwd();
  return {
    model: resolvePath(c.model, base),
    modelFingerprint,
    backend: c.backend ?? "onnxruntime",
    vectors: c.vectors.map((v) =>
      v.source.startsWith("random:")
        ? v
        : {
            name: v.name,
            source: resolvePath(v.source, base),
            sha256: fileHash(resolvePath(v.source, base)),
          },
    ),
    layers: c.layers ?? null,
    coeffs: c.coeffs,
    tasks: c.tasks.map((t) => ({
      ...t,
      data: resolvePath(t.data, base),
      sha256: fileHash(resolvePath(t.data, base)),
      ...(t.shotsFrom
        ? {
            shotsFrom: resolvePath(t.shotsFrom, base),
            shotsSha256: fileHash(resolvePath(t.shotsFrom, base)),
          }
        : {}),
    })),
    diagnostics: c.diagnostics ?? true,
    ...(c.coeffUnits === "relative" ? { coeffUnits: "relative" } : {}),
  };
}

/**
 * A run identity without the places of its files (model folder, vector files, data files): what two machines
 * holding the same files in different folders agree on. `steerlab merge` and queue workers compare these.
 */
export function portableIdentity(identity: Record<string, unknown>): Record<string, unknown> {
  const { model: _path, ...rest } = identity;
  const list = (x: unknown) => (Array.isArray(x) ? (x as Record<string, unknown>[]) : []);
  return {
    ...rest,
    vectors: list(rest.vectors).map(({ source, ...v }) => (v.sha256 ? v : { ...v, source })),
    tasks: list(rest.tasks).map(({ data: _data, shotsFrom: _shots, ...t }) => t),
  };
}
