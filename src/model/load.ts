/**
 * One entry point for every checkpoint format: a folder is a Hugging Face model, a `.gguf` file is GGUF.
 */
import { existsSync, statSync } from "node:fs";
import { SteerlabError } from "../errors.js";
import { checkFiniteTensors, type FiniteOptions, nonFiniteWeights, weightProblem } from "../io/finite.js";
import { loadGgufModel } from "../io/gguf-model.js";
import { loadHfModel } from "../io/hf-model.js";
import type { LoadedModel, LoadOptions } from "./model.js";
import { LazyWeights } from "./weights.js";

/**
 * Load a checkpoint; its weights are checked for NaN/Inf (one error naming every bad tensor) unless allowed.
 * Weights stay lazy and quantized. `finiteCheck: "load"` (default) checks them here, one tensor at a time
 * (quantized ones by their block scales), which costs one extra pass over the file but never a second copy of
 * the model in memory. `"read"` checks each tensor when it is read instead (an engine build reads every tensor
 * once, so the file is read once): the error then comes from the first read of a bad tensor and names that one.
 */
export async function loadModel(
  path: string,
  opts: LoadOptions & FiniteOptions & { finiteCheck?: "load" | "read" } = {},
): Promise<LoadedModel> {
  const m = await loadAnyModel(path, opts);
  const fileName = (n: string) => {
    try {
      return (m.source.format === "hf" ? m.spec.hfName(n) : m.spec.ggufName(n)).split(":")[0]!;
    } catch {
      return n;
    }
  };
  if (opts.allowNonFinite) return m;
  if (opts.finiteCheck === "read" && m.weights instanceof LazyWeights) {
    m.weights.inspectReads((name, w) => {
      const p = weightProblem(name, w, fileName(name));
      if (p) throw nonFiniteWeights([p], path);
    });
  } else {
    checkFiniteTensors(m.weights, path, { ...opts, fileName });
  }
  return m;
}

async function loadAnyModel(path: string, opts: LoadOptions): Promise<LoadedModel> {
  if (!existsSync(path)) {
    throw new SteerlabError("not_found", `model path does not exist: ${path}`, {
      file: path,
      hint: "pass a Hugging Face model folder (config.json + *.safetensors) or a .gguf file",
    });
  }
  if (statSync(path).isDirectory()) {
    if (path.toLowerCase().replace(/\/+$/, "").endsWith(".gguf")) {
      throw new SteerlabError("bad_input", `model path is a directory, not a .gguf file: ${path}`, {
        file: path,
        expected: "a .gguf file (or a Hugging Face folder with config.json)",
        got: "a directory",
      });
    }
    return loadHfModel(path, opts);
  }
  if (path.toLowerCase().endsWith(".gguf")) return loadGgufModel(path, opts);
  throw new SteerlabError("unsupported", `cannot tell the model format of ${path}`, {
    file: path,
    expected: "a Hugging Face model folder or a .gguf file",
    hint: "for a single .safetensors file, pass the folder that holds it and its config.json",
  });
}
