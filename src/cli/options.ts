/** Parsers for CLI option values: each failure is a SteerlabError naming the option. */

import { extname } from "node:path";
import { type Command, Option } from "commander";
import { SteerlabError } from "../errors.js";
import { parseLayers } from "../model/hooks.js";
import { BACKENDS, type OpenOptions, parseBackend } from "../model/open.js";
import { LOAD_DTYPES, type LoadDtype } from "../model/weights.js";
import { CACHE_TYPES, type CacheType } from "../runtime/ggml/ggml-kv.js";
import { MAX_THREADS } from "../runtime/session.js";
import {
  type CurveFitOptions,
  PAPER_COROLLARY_RANGE,
  PAPER_FIT,
  PAPER_TANH_RANGE,
} from "../theory/curves.js";
import { progressReporter } from "./progress.js";

/** Number("") and Number(" ") are 0: an empty value must not pass as zero. */
function toNumber(v: string): number {
  return v.trim() === "" ? Number.NaN : Number(v);
}

/**
 * The bounds of the CLI's numeric flags, one place for all commands. An integer flag without a bound of its own
 * stops at INT_MAX: beyond it a value is a typo ("1e12"), and Node's timers and buffers overflow there.
 */
export const LIMITS = {
  int: 2 ** 31 - 1,
  /** Seeds feed a 32-bit generator: 2^32 would silently repeat seed 0. */
  seed: 2 ** 32 - 1,
  /** -n: no model steerlab runs has a context this long; the model's own context is checked after loading. */
  maxTokens: 1 << 20,
  /** logprobs --top: the vocabulary is checked after loading. */
  top: 1 << 20,
  /** Prompts or sequences per forward. */
  batchSize: 4096,
  /** worker --concurrency: one engine (a copy of the weights) each. */
  concurrency: 64,
  attempts: 100,
  /** A model with more blocks than this is a typo. */
  nLayers: 4096,
  /** serve: requests per batch and waiting requests. */
  parallel: 256,
  maxQueue: 1 << 20,
  /** serve --body-limit: a JSON body is held in memory whole. */
  bodyLimit: 1 << 30,
} as const;

export function int(name: string, min = Number.NEGATIVE_INFINITY, max: number = LIMITS.int) {
  return (v: string): number => {
    const n = toNumber(v);
    if (!Number.isInteger(n) || n < min || n > max) {
      const range = min === Number.NEGATIVE_INFINITY ? `<= ${max}` : `in [${min}, ${max}]`;
      throw new SteerlabError("bad_input", `option --${name} must be an integer ${range}`, {
        field: name,
        got: JSON.stringify(v),
      });
    }
    return n;
  };
}

/** A seed: an integer in [0, 2^32 - 1]. */
export function seed(name: string) {
  return int(name, 0, LIMITS.seed);
}

/** A finite number, optionally within [min, max] (`open`: the bound itself excluded). */
export function float(name: string, bounds: { min?: number; max?: number; minOpen?: boolean } = {}) {
  const { min = Number.NEGATIVE_INFINITY, max = Number.POSITIVE_INFINITY, minOpen = false } = bounds;
  return (v: string): number => {
    const n = toNumber(v);
    if (!Number.isFinite(n) || (minOpen ? n <= min : n < min) || n > max) {
      const lo = min === Number.NEGATIVE_INFINITY ? "" : `${minOpen ? ">" : ">="} ${min}`;
      const hi = max === Number.POSITIVE_INFINITY ? "" : `<= ${max}`;
      const range = [lo, hi].filter(Boolean).join(" and ");
      throw new SteerlabError("bad_input", `option --${name} must be a number${range ? ` ${range}` : ""}`, {
        field: name,
        got: JSON.stringify(v),
      });
    }
    return n;
  };
}

/**
 * A value checked against the model once it is loaded (its context, its vocabulary): refused with the flag and
 * the model's limit rather than silently capped.
 */
export function atMostForModel(name: string, value: number, max: number, what: string): number {
  if (value > max)
    throw new SteerlabError("bad_input", `option --${name} is more than ${what}`, {
      field: name,
      expected: `at most ${max}`,
      got: String(value),
    });
  return value;
}

/**
 * A layer list as the CLI takes it ("3", "0,2,4", "-8..-1", "all"); a range must run upwards (3..1 is refused,
 * not read as 1..3). Ranges whose ends have different signs are checked against the model with `layersFor`.
 */
export function layerSpec(name: string) {
  return (v: string): string => {
    checkLayerSpec(name, v, null);
    return v;
  };
}

/** The blocks of a layer list on a model of `nLayers` blocks, after checking that every range runs upwards. */
export function layersFor(name: string, spec: string, nLayers: number): number[] {
  checkLayerSpec(name, spec, nLayers);
  return parseLayers(spec, nLayers);
}

function checkLayerSpec(name: string, spec: string, nLayers: number | null): void {
  const s = spec.trim();
  const bad = (why: string, expected: string) =>
    new SteerlabError("bad_input", `option --${name}: ${why}`, {
      field: name,
      expected,
      got: JSON.stringify(spec),
    });
  if (s === "all") return;
  for (const part of s.split(",")) {
    const p = part.trim();
    const m = /^(-?\d+)\s*\.\.\s*(-?\d+)$/.exec(p);
    if (!m) {
      if (/^-?\d+$/.test(p)) continue;
      throw bad(`"${p}" is not a layer or a range`, '"all", "3", "0,2,4" or "-8..-1"');
    }
    const a = Number(m[1]);
    const b = Number(m[2]);
    // Same sign: compare as written; mixed signs: only the model's block count says which end is lower.
    const at = (l: number) => (l < 0 && nLayers !== null ? nLayers + l : l);
    if (a < 0 === b < 0 || nLayers !== null) {
      if (at(a) > at(b))
        throw bad(
          `the range ${p} runs backwards${a < 0 !== b < 0 && nLayers !== null ? ` (blocks ${at(a)}..${at(b)} of ${nLayers})` : ""}`,
          `A..B with A <= B, e.g. ${(a < 0) === (b < 0) ? `${b}..${a}` : `${Math.min(at(a), at(b))}..${Math.max(at(a), at(b))}`}`,
        );
    }
  }
}

/** What a vector file's extension says it is; any other extension is refused (nothing is written). */
export const VECTOR_EXTENSIONS = [".safetensors", ".gguf"] as const;

export function vectorOutput(name: string, path: string): string {
  const lower = path.toLowerCase();
  if (!VECTOR_EXTENSIONS.some((e) => lower.endsWith(e)))
    throw new SteerlabError("bad_input", `the output vector ${path} has an unknown extension`, {
      field: name,
      expected: ".safetensors (a steerlab vector file) or .gguf (a llama.cpp control vector)",
      got: extname(path) || "(none)",
    });
  return path;
}

/** Most values a list option takes (a coefficient grid of more is a typo, and each value is a full run). */
export const MAX_LIST = 10_000;

/** Comma-separated numbers, e.g. "-2,0,2". */
export function floatList(name: string) {
  return (v: string): number[] => {
    const parts = v.split(",");
    if (parts.length > MAX_LIST) {
      throw new SteerlabError("bad_input", `option --${name} has more than ${MAX_LIST} values`, {
        field: name,
        got: `${parts.length} values`,
      });
    }
    return parts.map((x) => float(name)(x.trim()));
  };
}

/** --threads: 1..MAX_THREADS (each is an OS thread in every ONNX Runtime session). */
export const threadsOption = int("threads", 1, MAX_THREADS);

/** Prompts or sequences per forward (sweep, extract). */
export const batchSizeOption = int("batch-size", 1, LIMITS.batchSize);

/** Repeatable string option. */
export function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

/** --model, --backend and --threads, shared by every command that runs a model. */
export function withModelOptions(cmd: Command): Command {
  return cmd
    .requiredOption("-m, --model <path>", "model: a Hugging Face folder or a .gguf file")
    .addOption(
      new Option(
        "--backend <name>",
        "compute backend; auto: ggml for quantized or half-precision weights, onnxruntime for f32",
      )
        .choices([...BACKENDS, "auto"])
        .default("auto"),
    )
    .option("--threads <n>", "compute threads (default: all cores)", threadsOption)
    .addOption(
      new Option(
        "--cache-type <type>",
        "key/value cache type of the ggml backend, for keys and values (llama.cpp's --cache-type-k/-v)",
      )
        .choices(CACHE_TYPES)
        .default("f16"),
    )
    .option("--allow-non-finite", "let NaN/Inf weights, vectors and logits through (debugging)")
    .addOption(
      new Option(
        "--dtype <type>",
        "hold F32/F16/BF16 matrices as f32, or quantized to q8 (Q8_0) / q4 (Q4_0) (default: f32 when it fits in memory, else q8)",
      ).choices(LOAD_DTYPES),
    );
}

/** Loader warnings (e.g. a special-token id that names no token) go to stderr, as llama.cpp prints them. */
export function printWarning(message: string): void {
  process.stderr.write(`steerlab: warning: ${message}\n`);
}

/** Loader notes (what loads, how much memory, a chosen default) go to stderr. */
export function printInfo(message: string): void {
  process.stderr.write(`steerlab: ${message}\n`);
}

const loading = progressReporter();

export function openOptions(o: {
  backend?: string;
  threads?: number;
  allowNonFinite?: boolean;
  dtype?: LoadDtype;
  cacheType?: CacheType;
}): OpenOptions {
  return {
    backend: o.backend === undefined || o.backend === "auto" ? "auto" : parseBackend(o.backend),
    threads: o.threads,
    cacheType: o.cacheType,
    allowNonFinite: o.allowNonFinite === true,
    dtype: o.dtype,
    onWarning: printWarning,
    onInfo: printInfo,
    onProgress: (e) => {
      loading(e);
      if (e.done === e.total) loading.end();
    },
  };
}

export function positive(name: string) {
  return (v: string): number => {
    const x = toNumber(v);
    if (!(x > 0) || !Number.isFinite(x))
      throw new SteerlabError("bad_input", `option --${name} must be a positive number`, {
        field: name,
        got: v,
      });
    return x;
  };
}

export function range(name: string) {
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

export interface FitCli {
  tanhRange?: [number, number];
  corollaryRange?: [number, number];
  linearHalfWidth?: number;
  quadraticHalfWidth?: number;
  paper?: boolean;
}

/** The fit ranges and local windows, shared by `fit` and `report`. */
export function withFitOptions(cmd: Command): Command {
  return cmd
    .option("--tanh-range <lo:hi>", "r_e range of the tanh fit (default: all points)", range("tanh-range"))
    .option(
      "--corollary-range <lo:hi>",
      "r_e range of the Corollary-1 fits (default: all points)",
      range("corollary-range"),
    )
    .option(
      "--linear-half-width <h>",
      "local linear fit on |r_e| <= h (default: 1, or +-2 grid steps on a coarser grid)",
      positive("linear-half-width"),
    )
    .option(
      "--quadratic-half-width <h>",
      "local quadratic fit on |r_e| <= h (default: 2.5, or +-3 grid steps on a coarser grid)",
      positive("quadratic-half-width"),
    )
    .option(
      "--paper",
      `the published protocol: tanh on r_e in [${PAPER_TANH_RANGE.join(", ")}], Corollary 1 (a, b >= 0) on [${PAPER_COROLLARY_RANGE.join(", ")}], local fits on |r_e| <= 1 and 2.5 (explicit flags win)`,
    );
}

/** Fit options from the flags above, over `base` (e.g. a config's fit block). */
export function fitOptionsOf(o: FitCli, base: CurveFitOptions = {}): CurveFitOptions {
  return {
    ...base,
    ...(o.paper ? PAPER_FIT : {}),
    ...(o.tanhRange ? { tanhRange: o.tanhRange } : {}),
    ...(o.corollaryRange ? { corollaryRange: o.corollaryRange } : {}),
    ...(o.linearHalfWidth ? { linearHalfWidth: o.linearHalfWidth } : {}),
    ...(o.quadraticHalfWidth ? { quadraticHalfWidth: o.quadraticHalfWidth } : {}),
  };
}
