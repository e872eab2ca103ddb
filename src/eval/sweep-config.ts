/**
 * Sweep configs: a YAML or JSON file (or the same object built from CLI flags), validated once by the zod
 * schemas of sweep-config-schema.ts, collecting every problem into one error. The identity of a run (what its result store is keyed on) is the config with
 * paths made absolute and the contents of its data and vector files hashed, minus run-time knobs that do not
 * change the numbers (batch size, prefix reuse).
 *
 *   model: ./tiny-llama          # HF folder or .gguf
 *   backend: reference           # or onnxruntime (default), ggml
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
import type { Backend } from "../model/backends.js";
import type { CurveFitOptions } from "../theory/curves.js";
import { configProblems, sweepConfigSchema } from "./sweep-config-schema.js";
import type { TaskSpec } from "./tasks.js";

export { MAX_COEFFS, parseCoeffs } from "./sweep-config-schema.js";

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
  /** Where the config came from (a file, or "<flags>"): named by errors found when the sweep is planned. */
  file?: string;
}

/** Validate a parsed config object (from YAML/JSON or flags), collecting every problem into one error. */
export function parseSweepConfig(raw: unknown, baseDir: string, file = "<flags>"): SweepConfig {
  if (!raw || typeof raw !== "object" || Array.isArray(raw))
    throw new SteerlabError("bad_config", "a sweep config is an object", { file });
  const r = sweepConfigSchema.safeParse(raw);
  if (!r.success)
    throw new SteerlabError("bad_config", "invalid sweep config", {
      file,
      problems: configProblems(r.error),
    });
  return { ...r.data, baseDir, file };
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

/**
 * A config error found once the model is known (a layer set out of range, a prompt too long): re-raised as
 * bad_config naming the config's file and the field path (e.g. "layers[0]").
 */
export function configFieldError(e: unknown, c: SweepConfig, field: string): unknown {
  if (!(e instanceof SteerlabError) || (e.code !== "bad_input" && e.code !== "bad_config")) return e;
  const { file: _f, field: _g, ...rest } = e.details;
  return new SteerlabError("bad_config", e.brief, {
    ...(c.file ? { file: c.file } : {}),
    field,
    ...rest,
  });
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
