/**
 * Open a checkpoint and put an engine on it: the one entry the CLI, the lab and the server use.
 * "auto" (the default) picks by what the file stores, from measurements (README, Performance): ggml (llama.cpp's
 * tensor library, through a native addon) runs quantized and half-precision matrices as stored, at llama.cpp's
 * speed; ONNX Runtime runs f32 matrices (its f32 prefill is about 2x llama.cpp's). The plain-TS reference is there
 * for checking and for tiny models. The ggml engine is imported only when chosen, so the web build and ONNX
 * Runtime users never load the addon.
 */
import { totalmem } from "node:os";
import { SteerlabError } from "../errors.js";
import type { Tokenizer } from "../io/tokenizer-types.js";
import { ReferenceEngine } from "../reference/engine.js";
import type { CacheType } from "../runtime/ggml/ggml-kv.js";
import { createOrtEngine, type OrtEngineOptions } from "../runtime/ort-engine.js";
import { BACKENDS, type Backend } from "./backends.js";
import type { Engine } from "./engine.js";
import { loadModel, storedMatrixTypes } from "./load.js";
import type { LoadedModel } from "./model.js";
import type { LoadDtype } from "./weights.js";

export { BACKENDS, type Backend } from "./backends.js";

export interface OpenOptions {
  /** Default "auto" (chooseBackend). */
  backend?: Backend | "auto";
  /** Compute threads for ONNX Runtime and ggml (default: all cores). */
  threads?: number;
  /**
   * Keep the f32 weights in `model.weights` after the ORT engine is built (default false: they are handed to
   * ONNX Runtime and dropped, so memory stays close to one copy of the weights).
   */
  keepWeights?: boolean;
  /** Let NaN/Inf weights load and NaN/Inf logits through (debugging a broken checkpoint). Default false. */
  allowNonFinite?: boolean;
  /** Loader warnings as they happen (also in model.warnings). */
  onWarning?: (message: string) => void;
  /** Loader notes: what loads, how much memory it takes, a chosen default dtype. */
  onInfo?: (message: string) => void;
  /** How dense matrices are held (f32, or quantized at load to q8 / q4); default f32 when it fits. */
  dtype?: LoadDtype;
  /** Progress of the engine build, block by block. */
  onProgress?: (e: { label: string; done: number; total: number }) => void;
  /** How quantized weights multiply on ONNX Runtime (OrtEngineOptions.quantCompute). */
  quantCompute?: "int8" | "f32";
  /**
   * Which hook points the ONNX Runtime engine serves (OrtEngineOptions.granularity): every one ("site", default),
   * resid_pre/resid_post ("block"), or only those of known layers ({ hookLayers }: fewest graph runs).
   */
  granularity?: OrtEngineOptions["granularity"];
  /** The ggml engine's key/value cache type: "f16" (default, as llama.cpp) or "f32". */
  cacheType?: CacheType;
}

export interface OpenedModel {
  model: LoadedModel;
  engine: Engine;
  tokenizer: Tokenizer | null;
}

export function parseBackend(s: string): Backend {
  if (!(BACKENDS as readonly string[]).includes(s)) {
    throw new SteerlabError("bad_input", `unknown backend "${s}"`, {
      field: "backend",
      expected: BACKENDS.join(" | "),
      got: s,
    });
  }
  return s as Backend;
}

/** Options only the ONNX Runtime engine takes: asking for one asks for that engine. */
const ORT_ONLY = ["keepWeights", "quantCompute", "granularity"] as const;

/**
 * The engine "auto" means for this checkpoint: ggml when its matrices are quantized or half precision (ggml runs
 * them as stored; ONNX Runtime would expand or re-quantize them), or when their f32 form would take more than half
 * of this machine's memory (ggml maps the file); ONNX Runtime for f32 matrices that fit, and whenever ggml's addon
 * is not built here or an ONNX Runtime-only option (or a load-time dtype) is asked for.
 */
export async function chooseBackend(path: string, opts: OpenOptions = {}): Promise<Backend> {
  if (opts.backend !== undefined && opts.backend !== "auto") return parseBackend(opts.backend);
  if (ORT_ONLY.some((k) => opts[k] !== undefined) || (opts.dtype !== undefined && opts.dtype !== "f32"))
    return "onnxruntime";
  const types = storedMatrixTypes(path);
  if (!types) return "onnxruntime"; // not a checkpoint: let the loader say what is wrong
  const dense = [...types.types].every((t) => t === "F32");
  if (dense && types.f32Bytes <= totalmem() / 2) return "onnxruntime";
  const { ggmlAvailable } = await import("../runtime/ggml/addon.js");
  const ok = ggmlAvailable();
  if (!ok.ok) {
    opts.onInfo?.(`the ggml engine is not available here (${ok.why}): running on ONNX Runtime`);
    return "onnxruntime";
  }
  return "ggml";
}

export async function openModel(path: string, opts: OpenOptions = {}): Promise<OpenedModel> {
  const backend = await chooseBackend(path, opts);
  const ggml = backend === "ggml";
  const model = await loadModel(path, {
    onWarning: opts.onWarning,
    onInfo: opts.onInfo,
    // ggml runs the file's own types: nothing to choose (and no q8 note) unless asked for.
    dtype: opts.dtype ?? (ggml ? "f32" : undefined),
    allowNonFinite: opts.allowNonFinite,
    // Checked as the engine reads each tensor: one pass over the file, not two. ggml maps the file instead of
    // reading it through the loader: the addon checks what it maps or repacks (checkFinite), natively.
    finiteCheck: "read",
  });
  const engine = ggml
    ? await (await import("../runtime/ggml/ggml-engine.js")).createGgmlEngine(model, {
        threads: opts.threads,
        cacheType: opts.cacheType,
        checkFinite: !opts.allowNonFinite,
        onInfo: opts.onInfo,
        onProgress: opts.onProgress,
      })
    : backend === "reference"
      ? ReferenceEngine.fromModel(model)
      : await createOrtEngine(model, {
          threads: opts.threads,
          consumeWeights: !opts.keepWeights,
          quantCompute: opts.quantCompute,
          granularity: opts.granularity,
          onInfo: opts.onInfo,
          onProgress: opts.onProgress,
        });
  engine.allowNonFinite = opts.allowNonFinite ?? false;
  return { model, engine, tokenizer: model.tokenizer };
}

/** The tokenizer, or an error saying the model folder/file has none. */
export function requireTokenizer(m: OpenedModel | LoadedModel): Tokenizer {
  const tok = m.tokenizer;
  const path = "model" in m ? m.model.source.path : m.source.path;
  if (!tok) {
    throw new SteerlabError("not_found", "this model has no tokenizer", {
      file: path,
      hint: "add tokenizer.json to the model folder (or use a GGUF with tokenizer.ggml.* metadata)",
    });
  }
  return tok;
}
