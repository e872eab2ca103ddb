/** Parsers for CLI option values: each failure is a SteerlabError naming the option. */
import { type Command, Option } from "commander";
import { SteerlabError } from "../errors.js";
import { BACKENDS, type OpenOptions, parseBackend } from "../model/open.js";
import { LOAD_DTYPES, type LoadDtype } from "../model/weights.js";
import { progressReporter } from "./progress.js";

export function int(name: string, min = Number.NEGATIVE_INFINITY) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) {
      throw new SteerlabError("bad_input", `option --${name} must be an integer >= ${min}`, {
        field: name,
        got: v,
      });
    }
    return n;
  };
}

export function float(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n))
      throw new SteerlabError("bad_input", `option --${name} must be a number`, { field: name, got: v });
    return n;
  };
}

/** Comma-separated numbers, e.g. "-2,0,2". */
export function floatList(name: string) {
  return (v: string): number[] => v.split(",").map((x) => float(name)(x.trim()));
}

/** Repeatable string option. */
export function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

/** --model, --backend and --threads, shared by every command that runs a model. */
export function withModelOptions(cmd: Command): Command {
  return cmd
    .requiredOption("-m, --model <path>", "model: a Hugging Face folder or a .gguf file")
    .addOption(new Option("--backend <name>", "compute backend").choices(BACKENDS).default("onnxruntime"))
    .option("--threads <n>", "compute threads (default: all cores)", int("threads", 1))
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

export function openOptions(o: { backend?: string; threads?: number; dtype?: LoadDtype }): OpenOptions {
  return {
    backend: parseBackend(o.backend ?? "onnxruntime"),
    threads: o.threads,
    dtype: o.dtype,
    onWarning: printWarning,
    onInfo: printInfo,
    onProgress: (e) => {
      loading(e);
      if (e.done === e.total) loading.end();
    },
  };
}
