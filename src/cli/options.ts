/** Parsers for CLI option values: each failure is a SteerlabError naming the option. */
import { type Command, Option } from "commander";
import { SteerlabError } from "../errors.js";
import { BACKENDS, type OpenOptions, parseBackend } from "../model/open.js";
import { LOAD_DTYPES, type LoadDtype } from "../model/weights.js";
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

export function int(name: string, min = Number.NEGATIVE_INFINITY, max = Number.POSITIVE_INFINITY) {
  return (v: string): number => {
    const n = toNumber(v);
    if (!Number.isInteger(n) || n < min || n > max) {
      const range = max === Number.POSITIVE_INFINITY ? `>= ${min}` : `in [${min}, ${max}]`;
      throw new SteerlabError("bad_input", `option --${name} must be an integer ${range}`, {
        field: name,
        got: JSON.stringify(v),
      });
    }
    return n;
  };
}

export function float(name: string) {
  return (v: string): number => {
    const n = toNumber(v);
    if (!Number.isFinite(n))
      throw new SteerlabError("bad_input", `option --${name} must be a number`, {
        field: name,
        got: JSON.stringify(v),
      });
    return n;
  };
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

/** Repeatable string option. */
export function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

/** --model, --backend and --threads, shared by every command that runs a model. */
export function withModelOptions(cmd: Command): Command {
  return cmd
    .requiredOption("-m, --model <path>", "model: a Hugging Face folder or a .gguf file")
    .addOption(new Option("--backend <name>", "compute backend").choices(BACKENDS).default("onnxruntime"))
    .option("--threads <n>", "compute threads (default: all cores)", threadsOption)
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
}): OpenOptions {
  return {
    backend: parseBackend(o.backend ?? "onnxruntime"),
    threads: o.threads,
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
